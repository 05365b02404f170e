//! # I/O sources: readiness from a worker's epoll instance to blocked uthreads
//!
//! Every descriptor a uthread does I/O on (a socket, an [`Epoll`]'s own
//! kernel epoll instance) is non-blocking and registered once, edge
//! triggered, on the epoll instance of the worker that created it, with the
//! address of its [`Source`] as the token. The worker hands readiness to
//! `Source::on_ready` (`driver.rs`), which records it and wakes the uthreads
//! waiting for that direction; they retry their system call.
//!
//! ## Not losing an edge
//!
//! The readiness word holds the `EPOLL*` bits seen so far and, above them, a
//! tick bumped by every event. An operation snapshots the word, tries the
//! system call, and on `EAGAIN` clears its direction's bits only if the
//! tick did not move (compare-and-swap against the snapshot), because an
//! edge that arrived during the call must not be erased. A short read or
//! write clears them the same way (the socket is most likely drained, as
//! tokio assumes too), and an operation whose bits are clear waits without
//! trying the system call. A short transfer leaves hang-up and error bits
//! set (no new edge would bring them back); only `EAGAIN` clears them. It then links itself
//! as a waiter under the source's lock and re-checks the bits before
//! blocking; the worker sets the bits before taking that lock to wake
//! waiters, so one of the two always sees the other.
//!
//! ## Closing
//!
//! [`Registration::close`] (a socket's `close`) marks the source closed and
//! wakes every waiter: it sets the flag and takes both waiter lists under
//! the source's lock, and a waiter checks the flag under that same lock
//! before it blocks, so no waiter sleeps through a close. Every operation
//! checks the flag before each try and fails with [`Error::Closed`]. The
//! descriptor stays registered and open until the registration is dropped.
//!
//! ## Freeing
//!
//! Dropping a [`Registration`] removes the descriptor from the epoll
//! instance, then retires the source through the driver's SMR domain: an
//! event the worker already took out of the kernel may still name it, and
//! the worker dispatches inside a read section.
//!
//! [`Epoll`]: crate::Epoll

use crate::driver::{self, EvqDriver};
use crate::error::Error;
use crate::queue::Ceq;
use crate::sys::epoll as sys;
use crate::waiter::{self, Waiter};
use percore_cpu::loom::{Arc, AtomicBool, AtomicU64, Mutex};
use percore_lwkt::Handle;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Instant;

/// How many waiters `on_ready` takes per lock section to wake outside it.
const WAKE_BATCH: usize = 8;

const TICK: u64 = 1 << 32;
const BITS: u64 = TICK - 1;

/// Which way an operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

impl Dir {
    /// The readiness bits that let an operation of this direction proceed
    /// (errors and hang-ups included: the retried call reports them).
    fn mask(self) -> u64 {
        let m = match self {
            Dir::Read => sys::IN | sys::RDHUP | sys::HUP | sys::ERR | sys::PRI,
            Dir::Write => sys::OUT | sys::HUP | sys::ERR,
        };
        m as u64
    }
}

/// The uthreads (and threads) waiting on one source, by direction; under
/// the source's lock.
#[derive(Default)]
struct Waiters {
    /// Linked by a reader in `Source::wait`, which removes itself after it
    /// wakes; taken all at once by a worker's `on_ready` with read bits.
    read: Vec<Waiter>,
    /// The same for writers and write bits.
    write: Vec<Waiter>,
}

/// A registered descriptor's readiness and waiters. Shared by the owning
/// [`Registration`] (any thread that holds the socket) and the worker that
/// dispatches its events (through the token, inside an SMR read section).
pub(crate) struct Source {
    /// The `EPOLL*` bits seen and not yet cleared, plus the event tick above
    /// them (see the module essay): set by the worker in `on_ready`,
    /// snapshotted and cleared by compare-and-swap by operations.
    ready: AtomicU64,
    /// Who waits, under the lock: operations link and unlink themselves,
    /// the worker takes them to wake them.
    waiters: Mutex<Waiters>,
    /// Also post readiness here (an [`Epoll`](crate::Epoll)'s wake queue):
    /// set at registration, posted to by the worker.
    notify: Option<(Ceq, u32)>,
    /// Set once by `close` (under the waiters' lock), never cleared; read by
    /// every operation before it tries, and under the lock before it blocks.
    closed: AtomicBool,
}

impl Source {
    /// Worker side: `events` arrived.
    pub(crate) fn on_ready(&self, events: u32) {
        let bits = events as u64;
        // ORDERING: AcqRel: release publishes the bits to an operation's
        // snapshot; the tick makes its clearing compare-and-swap fail.
        let mut cur = self.ready.load(Relaxed);
        loop {
            let new = (cur & !BITS).wrapping_add(TICK) | (cur & BITS) | bits;
            match self.ready.compare_exchange_weak(cur, new, AcqRel, Relaxed) {
                Ok(_) => break,
                Err(c) => cur = c,
            }
        }
        let (read, write) = (bits & Dir::Read.mask() != 0, bits & Dir::Write.mask() != 0);
        // NOTE: woken in batches from a stack array, outside the lock, so a
        // wake-up allocates nothing (a `Vec` per event did: issue 15). Only
        // the waiters linked at the first look are taken: one that wakes,
        // fails its retry and links again waits for the next edge.
        let mut left = usize::MAX;
        while left > 0 {
            let mut batch: [Option<Waiter>; WAKE_BATCH] = Default::default();
            let n = {
                let mut w = self.waiters.lock();
                if left == usize::MAX {
                    left = if read { w.read.len() } else { 0 } + if write { w.write.len() } else { 0 };
                }
                let mut n = 0;
                while n < WAKE_BATCH.min(left) {
                    let next = if read { w.read.pop() } else { None };
                    match next.or_else(|| if write { w.write.pop() } else { None }) {
                        Some(x) => batch[n] = Some(x),
                        None => break,
                    }
                    n += 1;
                }
                n
            };
            for x in batch[..n].iter().flatten() {
                x.wake();
            }
            // NOTE: fewer than asked for: the rest left on their own.
            left = if n < WAKE_BATCH.min(left) { 0 } else { left - n };
        }
        if let Some((q, id)) = &self.notify {
            let _ = q.post(*id, bits);
        }
    }

    /// Clear `dir`'s bits if no event came since `snap`; returns whether
    /// they were cleared (else the caller retries at once). After `EAGAIN`
    /// every bit goes (`all`); after a short transfer (a guess that the
    /// socket is drained) hang-up and error bits stay: no later edge would
    /// set them again, and the system call reports them every time.
    fn clear(&self, dir: Dir, snap: u64, all: bool) -> bool {
        let sticky = if all { 0 } else { (sys::RDHUP | sys::HUP | sys::ERR) as u64 };
        // ORDERING: acquire: a failed swap means a new event, whose bits
        // the retry must see.
        self.ready.compare_exchange(snap, snap & !(dir.mask() & !sticky), AcqRel, Acquire).is_ok()
    }

    /// Mark the source closed and wake every waiter (see the module essay).
    fn close(&self) {
        let (read, write) = {
            let mut w = self.waiters.lock();
            // ORDERING: release pairs with the acquire load in
            // `Registration::io` (a lock-free early exit); a waiter about to
            // block reads the flag under this lock, which orders it anyway.
            self.closed.store(true, Release);
            (std::mem::take(&mut w.read), std::mem::take(&mut w.write))
        };
        for w in read.iter().chain(&write) {
            w.wake();
        }
    }

    /// Whether `close` was called.
    fn is_closed(&self) -> bool {
        // ORDERING: acquire pairs with the release store in `close`.
        self.closed.load(Acquire)
    }

    /// Block until `dir` may be ready, the source is closed, or `deadline`
    /// passes.
    fn wait(&self, dir: Dir, deadline: Option<Instant>) -> Result<(), Error> {
        let me = Waiter::current();
        {
            let mut w = self.waiters.lock();
            // ORDERING: acquire: the worker sets the bits before it takes
            // this lock (see the module essay).
            if self.ready.load(Acquire) & dir.mask() != 0 || self.is_closed() {
                return Ok(());
            }
            let list = if dir == Dir::Read { &mut w.read } else { &mut w.write };
            list.push(me.clone());
        }
        let r = waiter::block(deadline);
        let mut w = self.waiters.lock();
        let list = if dir == Dir::Read { &mut w.read } else { &mut w.write };
        list.retain(|x| !x.same(&me));
        r
    }
}

/// A descriptor registered on a worker's epoll instance (see the module
/// docs). Drop it *before* closing the descriptor.
pub(crate) struct Registration {
    /// The source, leaked in `new` and retired through `driver.smr` in
    /// `drop`; its address is the epoll token, so the worker reaches it too
    /// (read sections only). Used through `&Source` by every holder.
    src: NonNull<Source>,
    /// The registered descriptor; owned by the caller, who closes it only
    /// after dropping this (deregistration needs it open). Fixed.
    fd: RawFd,
    /// Whose epoll instance it is on: the creating uthread's worker
    /// (worker 0 from a foreign thread). Fixed.
    worker: usize,
    /// The runtime; fixed. Every operation checks `is_shutdown` on it.
    handle: Handle,
    /// The runtime's evq driver, kept for its SMR domain; fixed.
    driver: Arc<EvqDriver>,
}

// SAFETY: the source is only used through `&Source` (thread-safe fields).
unsafe impl Send for Registration {}
// SAFETY: as above.
unsafe impl Sync for Registration {}

impl Registration {
    /// Register `fd` (already non-blocking) edge triggered for `events` on
    /// the calling uthread's worker (worker 0 of `handle` from elsewhere).
    pub(crate) fn new(handle: &Handle, fd: RawFd, events: u32, notify: Option<(Ceq, u32)>) -> Result<Self, Error> {
        let driver = driver::get(handle)?;
        let worker = handle.local_worker().unwrap_or(0);
        // NOTE: start "ready both ways": the first operation just tries.
        let all = (Dir::Read.mask() | Dir::Write.mask()) & !(sys::ERR | sys::HUP) as u64;
        let closed = AtomicBool::new(false);
        let src = Box::new(Source { ready: AtomicU64::new(all), waiters: Mutex::default(), notify, closed });
        let src = NonNull::from(Box::leak(src));
        let token = src.as_ptr() as usize as u64;
        if let Err(e) = handle.io_register(worker, fd, events | sys::ET, token) {
            // SAFETY: never published (registration failed).
            drop(unsafe { Box::from_raw(src.as_ptr()) });
            return Err(e.into());
        }
        Ok(Registration { src, fd, worker, handle: handle.clone(), driver })
    }

    /// The runtime it is registered with.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Close it to its users: every operation waiting now or started later
    /// fails with [`Error::Closed`] (see the module essay). The descriptor
    /// stays registered until drop. Idempotent.
    pub(crate) fn close(&self) {
        self.source().close();
    }

    pub(crate) fn source(&self) -> &Source {
        // SAFETY: owned until drop.
        unsafe { self.src.as_ref() }
    }

    /// Run the non-blocking `op` until it does not return `WouldBlock`,
    /// waiting for `dir` readiness in between; `TimedOut` after `deadline`.
    /// Once the runtime has shut down no worker reports readiness any more,
    /// so every call fails at once with an `io::Error` of kind `Other`
    /// wrapping [`Error::Shutdown`] (checked before each try, and a foreign
    /// waiter re-checks every `FOREIGN_SLICE`). After [`close`](Self::close)
    /// it fails with [`Error::Closed`], waiting or not.
    /// When `drained` says a result shows the socket drained (a partial
    /// read or write), the direction's readiness is cleared at once, so the
    /// next call waits for an edge instead of paying for an `EAGAIN`
    /// system call (tokio does the same).
    pub(crate) fn io<R>(
        &self,
        dir: Dir,
        deadline: Option<Instant>,
        drained: impl Fn(&R) -> bool,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        let src = self.source();
        let foreign = percore_lwkt::current().is_none();
        loop {
            if src.is_closed() {
                return Err(Error::Closed.into());
            }
            if self.handle.is_shutdown() {
                return Err(Error::Shutdown.into());
            }
            // ORDERING: acquire pairs with the release half of the worker's
            // compare-and-swap in `on_ready`: the bits seen are the
            // kernel's news before this try.
            let snap = src.ready.load(Acquire);
            if snap & dir.mask() != 0 {
                match op() {
                    Ok(r) => {
                        if drained(&r) {
                            src.clear(dir, snap, false);
                        }
                        return Ok(r);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if !src.clear(dir, snap, true) {
                            continue;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            }
            // NOTE: a uthread's wait ends with its runtime (it is cancelled);
            // a foreign thread's wakes in slices to see the shutdown.
            let until = match (foreign, deadline) {
                (false, d) => d,
                (true, d) => {
                    let slice = Instant::now() + crate::waiter::FOREIGN_SLICE;
                    Some(d.map_or(slice, |d| d.min(slice)))
                }
            };
            src.wait(dir, until).map_err(io::Error::from)?;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = self.handle.io_deregister(self.worker, self.fd);
        // SAFETY: created by `Box::leak` in `new`; now unreachable for new
        // events (deregistered); in-flight dispatches are SMR readers, so
        // the pointer stays raw until their grace period ends.
        unsafe { self.driver.smr.retire(self.src.as_ptr()) };
    }
}
