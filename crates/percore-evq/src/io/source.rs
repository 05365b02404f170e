//! # An I/O source: readiness bits, waiters, and the wait that loses nothing
//!
//! One `Source` per registered descriptor (`io.rs` registers it and frees
//! it): the worker that collects the descriptor's events records them here
//! (`on_ready`) and wakes the operations waiting for them; an operation
//! tries its system call while the bits say it may succeed (`try_io`) and
//! otherwise waits (`wait`).
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
//! set (no new edge would bring them back); only `EAGAIN` clears them.
//! An operation that must wait links itself as a waiter under the source's
//! lock and re-checks the bits before blocking; the worker sets the bits before taking that lock to wake
//! waiters, so one of the two always sees the other.
//!
//! ## Closing
//!
//! [`Source::close`] (a socket's `close`) marks the source closed and
//! wakes every waiter: it sets the flag and takes both waiter lists under
//! the source's lock, and a waiter checks the flag under that same lock
//! before it blocks, so no waiter sleeps through a close. Every operation
//! checks the flag before each try and fails with [`Error::Closed`]. The
//! descriptor stays registered and open until the registration is dropped.
//!
//! ## Waking
//!
//! `on_ready` takes the waiters of the ready directions in batches of
//! `WAKE_BATCH` from a stack array and wakes them outside the lock, so a
//! wake-up allocates nothing. It takes at most as many as were linked at
//! its first look: one that wakes, fails its retry and links again waits
//! for the next edge. Each waiter is linked with a ticket (unique per
//! source) by which it unlinks itself after it wakes.
//!
//! ## Checked under loom
//!
//! This file compiles under `--cfg loom` unchanged (its atomics and lock
//! from `percore_cpu::loom`, its waiters loom threads, `WAKE_BATCH` shrunk
//! to 1); `tests/loom_io.rs` models an operation racing an edge (no lost
//! wake-up), a close racing a waiter, and one edge for two waiters across
//! batches.

use crate::error::Error;
use crate::queue::Ceq;
use crate::sys::epoll as sys;
use percore_cpu::loom::{AtomicBool, AtomicU64, Mutex};
use percore_lwkt::Waiter;
use std::io;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Instant;

/// How many waiters `on_ready` takes per lock section to wake outside it
/// (shrunk under loom, so that a model crosses batches).
#[cfg(not(loom))]
const WAKE_BATCH: usize = 8;
#[cfg(loom)]
const WAKE_BATCH: usize = 1;

const TICK: u64 = 1 << 32;
const BITS: u64 = TICK - 1;

/// Which way an operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Reading, receiving, accepting.
    Read,
    /// Writing, sending, connecting.
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
    /// The next ticket: taken by each `wait` as it links.
    next: u64,
    /// Linked by a reader in `Source::wait` with its ticket, which it
    /// unlinks itself by after it wakes; taken by a worker's `on_ready`
    /// with read bits, and by `close`.
    read: Vec<(u64, Waiter)>,
    /// The same for writers and write bits.
    write: Vec<(u64, Waiter)>,
}

/// A registered descriptor's readiness and waiters. Shared by the owning
/// `Registration` (any thread that holds the socket) and the worker that
/// dispatches its events (through the token, inside an SMR read section).
pub struct Source {
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
    /// A source that starts "ready both ways" (the first operation just
    /// tries), posting its readiness to `notify` too if given.
    pub fn new(notify: Option<(Ceq, u32)>) -> Source {
        let all = (Dir::Read.mask() | Dir::Write.mask()) & !(sys::ERR | sys::HUP) as u64;
        Source { ready: AtomicU64::new(all), waiters: Mutex::default(), notify, closed: AtomicBool::new(false) }
    }

    /// Worker side: `events` arrived.
    pub fn on_ready(&self, events: u32) {
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
                        Some((_, x)) => batch[n] = Some(x),
                        None => break,
                    }
                    n += 1;
                }
                n
            };
            for x in batch[..n].iter_mut().filter_map(Option::take) {
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
    /// Idempotent.
    pub fn close(&self) {
        let (read, write) = {
            let mut w = self.waiters.lock();
            // ORDERING: release pairs with the acquire load in `is_closed`
            // (`try_io`'s lock-free early exit); a waiter about to
            // block reads the flag under this lock, which orders it anyway.
            self.closed.store(true, Release);
            (std::mem::take(&mut w.read), std::mem::take(&mut w.write))
        };
        for (_, w) in read.into_iter().chain(write) {
            w.wake();
        }
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        // ORDERING: acquire pairs with the release store in `close`.
        self.closed.load(Acquire)
    }

    /// Try the non-blocking `op` while `dir`'s bits say it may succeed:
    /// `Some` with its result (or [`Error::Closed`] once closed), `None`
    /// when the caller must [`wait`](Source::wait) for an edge (the bits
    /// were clear, or `op` said `WouldBlock` and no event came meanwhile).
    /// `drained` says whether a result shows the socket drained (a partial
    /// transfer): the direction's bits are then cleared at once, so the
    /// next call waits for an edge instead of paying for an `EAGAIN` system
    /// call (tokio does the same).
    pub fn try_io<R>(
        &self,
        dir: Dir,
        drained: &impl Fn(&R) -> bool,
        op: &mut impl FnMut() -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        loop {
            if self.is_closed() {
                return Some(Err(Error::Closed.into()));
            }
            // ORDERING: acquire pairs with the release half of the worker's
            // compare-and-swap in `on_ready`: the bits seen are the
            // kernel's news before this try.
            let snap = self.ready.load(Acquire);
            if snap & dir.mask() == 0 {
                return None;
            }
            match op() {
                Ok(r) => {
                    if drained(&r) {
                        self.clear(dir, snap, false);
                    }
                    return Some(Ok(r));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.clear(dir, snap, true) {
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Block until `dir` may be ready, the source is closed, or `deadline`
    /// passes (spurious returns are possible: callers loop on `try_io`).
    pub fn wait(&self, dir: Dir, deadline: Option<Instant>) -> Result<(), Error> {
        let Some(ticket) = self.link(dir, Waiter::current) else { return Ok(()) };
        let r = percore_lwkt::park_until(deadline);
        self.unlink(dir, ticket);
        r.map_err(Error::from)
    }

    /// The `Future`-style side of [`wait`](Source::wait), for a select:
    /// `Ready` if the source is closed, or if `dir`'s bits are set and
    /// `ready_now` (the caller's exact check, the kernel's `poll`) agrees;
    /// otherwise clear the stale bits, link `waker` as a waiter of `dir`
    /// (woken by the next edge or `close`, like a blocked waiter) and
    /// return `Pending`. `key` holds the link's ticket between calls: a
    /// registration from an earlier call is replaced. Never blocks.
    pub fn poll_ready(
        &self,
        dir: Dir,
        key: &mut Option<u64>,
        waker: &std::task::Waker,
        ready_now: impl Fn() -> bool,
    ) -> std::task::Poll<()> {
        if let Some(t) = key.take() {
            self.unlink(dir, t);
        }
        loop {
            // ORDERING: acquire: as in `try_io` (the worker's bits).
            let snap = self.ready.load(Acquire);
            if self.is_closed() {
                return std::task::Poll::Ready(());
            }
            if snap & dir.mask() != 0 {
                if ready_now() {
                    return std::task::Poll::Ready(());
                }
                // Stale bits (nothing to read after all): clear them, or
                // retry if an event came meanwhile.
                if !self.clear(dir, snap, true) {
                    continue;
                }
            }
            // Bits set between the load and the link: look again.
            if let Some(t) = self.link(dir, || Waiter::from_waker(waker.clone())) {
                *key = Some(t);
                return std::task::Poll::Pending;
            }
        }
    }

    /// Take back the registration `key` of [`poll_ready`](Source::poll_ready), if any.
    pub fn forget(&self, dir: Dir, key: &mut Option<u64>) {
        if let Some(t) = key.take() {
            self.unlink(dir, t);
        }
    }

    /// Link the waiter `make` makes as a waiter of `dir` and return its
    /// ticket; `None` (and nothing linked) if `dir` may be ready or the
    /// source is closed already. The check and the link are under the lock
    /// that `on_ready` takes after setting the bits, and `close` after
    /// setting its flag: a waiter linked is woken by whatever comes later.
    fn link(&self, dir: Dir, make: impl FnOnce() -> Waiter) -> Option<u64> {
        let mut w = self.waiters.lock();
        // ORDERING: acquire: the worker sets the bits before it takes
        // this lock (see the module essay).
        if self.ready.load(Acquire) & dir.mask() != 0 || self.is_closed() {
            return None;
        }
        let ticket = w.next;
        w.next += 1;
        let list = if dir == Dir::Read { &mut w.read } else { &mut w.write };
        list.push((ticket, make()));
        Some(ticket)
    }

    /// Unlink the waiter `ticket` of `dir`, if it is still linked (a wake-up
    /// takes it out).
    fn unlink(&self, dir: Dir, ticket: u64) {
        let mut w = self.waiters.lock();
        let list = if dir == Dir::Read { &mut w.read } else { &mut w.write };
        list.retain(|(t, _)| *t != ticket);
    }
}
