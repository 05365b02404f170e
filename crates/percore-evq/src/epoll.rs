//! # `Epoll`: an epoll interest set that many uthreads wait on at once
//!
//! Akaros's user-level epoll gathers kernel readiness on a CEQ and lets
//! uthreads block on it; its bug (seed 004) was that timed waiters shared one
//! alarm queue and consumed each other's timeouts. Here:
//!
//! * The interest set is a kernel epoll instance of its own (the *inner*
//!   one), so readable / writable / edge-triggered / one-shot / hang-up /
//!   error semantics are exactly the kernel's, and each kernel event is
//!   returned by exactly one `epoll_wait` call.
//! * The inner instance's descriptor is itself registered (edge triggered)
//!   on the epoll instance of a worker (`io.rs`); when it becomes readable
//!   the worker posts to the set's wake queue, a one-id [`Ceq`], so wake-ups
//!   coalesce and each one wakes one waiter.
//! * [`Epoll::wait`] polls the inner instance without blocking; if nothing
//!   is ready it blocks on the wake queue **and on an alarm of its own**
//!   (from the runtime's shared alarm zone, see `alarm.rs`). Woken by the
//!   wake queue it polls again; woken by its alarm it returns 0. Before it
//!   returns it cancels its alarm, which waits for a firing in flight, so the
//!   alarm object goes back to the zone with no event in flight: the seed's
//!   protocol, with the grace period the seed left as a TODO.
//! * A waiter that got a full buffer (more may be ready) or a level-triggered
//!   event (still ready for the others) hands the wake-up on to the next
//!   waiter, as the kernel wakes every waiter of a level-triggered source.
//!   The hand-on is a post to the wake queue even when nobody waits there
//!   yet: polling the inner instance re-queues a level-triggered source
//!   without a new edge for the worker, so a waiter that polled before the
//!   readiness and links only afterwards would otherwise sleep through it.
//!
//! ## Closing a registered descriptor
//!
//! The kernel drops a descriptor from an epoll set when the last descriptor
//! of its open file is closed; so does this set, at the next
//! [`add`](Epoll::add) of the same number or [`delete`](Epoll::delete). If
//! the file stays open through a `dup`, the kernel keeps reporting it under
//! the closed number: [`delete`](Epoll::delete) before closing, as with
//! epoll(7).

use crate::alarm::Alarm;
use crate::error::Error;
use crate::io::Registration;
use crate::queue::{wait_any, Ceq, Coalesce};
use crate::stats::stats;
use crate::sys::epoll::{self as sys, Ctl};
use crate::wait;
use percore_cpu::loom::{Mutex, MutexGuard};
use percore_lwkt::Handle;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

bitflags::bitflags! {
    /// Interest and event bits (the kernel's `EPOLL*` values), a `bitflags`
    /// type: `|`, `&`, `contains`, `intersects`, `bits`, and `Debug` /
    /// `Display` that print flag names (`Interest(READABLE | EDGE)`).
    /// Bits without a name (as the kernel may report) are kept, and printed
    /// in hex.
    ///
    /// ```
    /// use percore_evq::Interest;
    /// let i = Interest::READABLE | Interest::ONESHOT;
    /// assert!(i.contains(Interest::READABLE) && !i.contains(Interest::EDGE));
    /// assert_eq!(format!("{i:?}"), "Interest(READABLE | ONESHOT)");
    /// assert_eq!(i.to_string(), "READABLE | ONESHOT");
    /// assert_eq!(Interest::from_bits_retain(libc::EPOLLIN as u32), Interest::READABLE);
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Interest: u32 {
        /// Readable (`EPOLLIN`).
        const READABLE = sys::IN;
        /// Writable (`EPOLLOUT`).
        const WRITABLE = sys::OUT;
        /// Urgent data (`EPOLLPRI`).
        const PRIORITY = sys::PRI;
        /// The peer shut down its writing half (`EPOLLRDHUP`).
        const READ_HANGUP = sys::RDHUP;
        /// Hang-up (`EPOLLHUP`): always reported, needs no interest.
        const HANGUP = sys::HUP;
        /// Error (`EPOLLERR`): always reported, needs no interest.
        const ERROR = sys::ERR;
        /// Edge triggered (`EPOLLET`): report transitions only.
        const EDGE = sys::ET;
        /// One-shot (`EPOLLONESHOT`): disarm after one event until
        /// [`modify`](Epoll::modify).
        const ONESHOT = sys::ONESHOT;
    }
}

impl std::fmt::Display for Interest {
    /// The flag names joined by ` | ` (bitflags' text format).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        bitflags::parser::to_writer(self, f)
    }
}

/// One ready descriptor, as [`Epoll::wait`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent {
    /// What is ready ([`Interest::READABLE`], [`Interest::HANGUP`], ...).
    pub events: Interest,
    /// The value given to [`Epoll::add`] / [`Epoll::modify`].
    pub data: u64,
}

/// What the set knows of one registered descriptor.
struct Entry {
    /// The caller's value, reported with its events.
    data: u64,
    /// The interest given to the kernel (to tell level-triggered entries).
    interest: Interest,
}

/// The set's registrations, under `Epoll::table`'s lock (`add`, `modify`,
/// `delete`, and `poll` to translate kernel events). The kernel's data for
/// a descriptor is its slot index, so a closed and re-added descriptor
/// number never reports the old entry's data.
#[derive(Default)]
struct Table {
    /// Entries by slot index; `None` for a free slot.
    slots: Vec<Option<Entry>>,
    /// The free slot indices.
    free: Vec<usize>,
    /// Each registered descriptor's slot.
    by_fd: HashMap<RawFd, usize>,
}

/// An epoll interest set for uthreads (see the module docs): any number of
/// uthreads (and foreign threads) may [`wait`](Epoll::wait) on it at once,
/// each with its own timeout.
///
/// ```
/// use percore_evq::{Epoll, EpollEvent, Interest};
/// use std::io::Write;
/// use std::time::Duration;
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let n = rt.block_on(move || {
///     let ep = Epoll::new().unwrap();
///     ep.add(&a, Interest::READABLE, 7).unwrap();
///     let mut evs = [EpollEvent::default(); 8];
///     assert_eq!(ep.wait(&mut evs, Some(Duration::from_millis(5))).unwrap(), 0); // timed out
///     b.write_all(b"x").unwrap();
///     let n = ep.wait(&mut evs, None).unwrap();
///     assert!(evs[0].events.contains(Interest::READABLE));
///     (n, evs[0].data)
/// }).unwrap();
/// assert_eq!(n, (1, 7));
/// ```
pub struct Epoll {
    // NOTE: field order is drop order: deregister before closing `epfd`.
    /// `epfd`'s registration on a worker's epoll instance; fixed.
    reg: Registration,
    /// The wake queue (one id): posted to by the worker when `epfd` becomes
    /// readable, and by a waiter handing a wake-up on; waited on by `wait`.
    wake: Ceq,
    /// The registrations (see [`Table`]).
    table: Mutex<Table>,
    /// The inner kernel epoll instance; fixed, closed last.
    epfd: OwnedFd,
}

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll").field("epfd", &self.epfd.as_raw_fd()).finish()
    }
}

impl Epoll {
    /// A new, empty set on the calling uthread's runtime.
    pub fn new() -> Result<Epoll, Error> {
        let h = Handle::current().ok_or(Error::NoRuntime)?;
        Self::new_in(&h)
    }

    /// A new, empty set on `handle`'s runtime (usable from any thread).
    /// [`Error::Shutdown`] once the runtime has shut down.
    pub fn new_in(handle: &Handle) -> Result<Epoll, Error> {
        if handle.is_shutdown() {
            return Err(Error::Shutdown);
        }
        let epfd = sys::create()?;
        let wake = Ceq::new(1, Coalesce::Or);
        let reg = Registration::new(handle, epfd.as_raw_fd(), sys::IN, Some((wake.clone(), 0)))?;
        Ok(Epoll { reg, wake, table: Mutex::default(), epfd })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock()
    }

    fn ctl(&self, op: Ctl, fd: RawFd, interest: Interest, slot: usize) -> io::Result<()> {
        sys::ctl(&self.epfd, op, fd, interest.bits(), slot as u64)
    }

    /// Add `fd` with `interest`; events report `data`. [`Error::Io`] with
    /// `AlreadyExists` if it is in the set; with the kernel's errors
    /// otherwise (`EPERM` for regular files, `EBADF`...). The same error
    /// type as [`wait`](Epoll::wait), so one `?` serves both.
    pub fn add(&self, fd: &impl AsRawFd, interest: Interest, data: u64) -> Result<(), Error> {
        let fd = fd.as_raw_fd();
        let mut t = self.table();
        let slot = t.free.pop().unwrap_or_else(|| {
            t.slots.push(None);
            t.slots.len() - 1
        });
        if let Err(e) = self.ctl(Ctl::Add, fd, interest, slot) {
            t.free.push(slot);
            return Err(e.into());
        }
        // A stale entry under this number: its descriptor was closed.
        if let Some(old) = t.by_fd.insert(fd, slot) {
            t.slots[old] = None;
            t.free.push(old);
        }
        t.slots[slot] = Some(Entry { data, interest });
        Ok(())
    }

    /// Change `fd`'s interest and data (re-arms a one-shot registration).
    /// [`Error::Io`] with `NotFound` if it is not in the set.
    pub fn modify(&self, fd: &impl AsRawFd, interest: Interest, data: u64) -> Result<(), Error> {
        let fd = fd.as_raw_fd();
        let mut t = self.table();
        let slot = *t.by_fd.get(&fd).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        self.ctl(Ctl::Modify, fd, interest, slot)?;
        t.slots[slot] = Some(Entry { data, interest });
        Ok(())
    }

    /// Remove `fd`. [`Error::Io`] with `NotFound` if it is not in the set.
    pub fn delete(&self, fd: &impl AsRawFd) -> Result<(), Error> {
        let fd = fd.as_raw_fd();
        let mut t = self.table();
        let slot = t.by_fd.remove(&fd).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        t.slots[slot] = None;
        t.free.push(slot);
        match self.ctl(Ctl::Delete, fd, Interest::empty(), 0) {
            // Closed meanwhile: the kernel dropped it already.
            Err(e) if sys::is_gone(&e) => Ok(()),
            r => Ok(r?),
        }
    }

    /// Take ready events without blocking.
    fn poll(&self, out: &mut [EpollEvent]) -> usize {
        let mut buf = [sys::Event::default(); sys::POLL_MAX];
        let max = out.len().min(buf.len());
        // NOTE: on an instance this set owns, with a valid buffer and no
        // wait, the one possible error is `EINTR`: nothing was taken, and
        // the caller's loop polls again at the next wake-up or deadline.
        let n = sys::poll(&self.epfd, &mut buf[..max]).unwrap_or(0);
        if n == 0 {
            return 0;
        }
        let t = self.table();
        let mut k = 0;
        let mut level = false;
        for e in &buf[..n] {
            let (slot, events) = (e.data as usize, e.events);
            if let Some(Some(en)) = t.slots.get(slot) {
                out[k] = EpollEvent { events: Interest::from_bits_retain(events), data: en.data };
                level |= !en.interest.intersects(Interest::EDGE | Interest::ONESHOT);
                k += 1;
            }
        }
        drop(t);
        if n == max || level {
            // NOTE: post even if nobody is linked on the wake queue yet: a
            // waiter that polled (empty) before this readiness and links
            // only now must find the hand-on pending, or it sleeps while a
            // level-triggered (or not yet taken) event is ready: the inner
            // instance gives no new edge for either. Costs the next waiter
            // at most one extra poll; the wake queue coalesces.
            let _ = self.wake.post(0, 0);
        }
        k
    }

    /// Wait for events: fills `events` from the front and returns how many;
    /// `0` when `timeout` passed first (`Some(Duration::ZERO)` only polls).
    /// Each kernel event goes to exactly one caller; level-triggered ones
    /// again to the next caller while still ready. Refused inside a critical
    /// or SMR section; `Invalid` for an empty `events`.
    ///
    /// Returns by its deadline even on a foreign thread whose runtime's
    /// workers are all busy (it then blocks in slices of a few tens of
    /// milliseconds and polls the set itself between them), and fails with
    /// [`Error::Shutdown`] when nothing is ready and the runtime has shut
    /// down (or shuts down while a foreign thread waits).
    pub fn wait(&self, events: &mut [EpollEvent], timeout: Option<Duration>) -> Result<usize, Error> {
        if events.is_empty() {
            return Err(Error::Invalid("Epoll::wait needs room for at least one event".into()));
        }
        stats().epoll_waits.inc();
        let n = self.poll(events);
        if n > 0 || timeout == Some(Duration::ZERO) {
            return Ok(n);
        }
        let handle = self.reg.handle();
        if handle.is_shutdown() {
            return Err(Error::Shutdown);
        }
        let deadline = wait::deadline(timeout);
        let uthread = percore_lwkt::current().is_some();
        let mut alarm = match timeout {
            Some(d) => {
                let mut a = Alarm::new_in(self.reg.handle())?;
                a.set_after(d)?;
                Some(a)
            }
            None => None,
        };
        let r = loop {
            // NOTE: the alarm is the waiter's own (the seed's protocol) and
            // ends a uthread's wait; the slice bounds a foreign thread's
            // wait when no worker fires the alarm or dispatches readiness.
            let slice = if uthread { None } else { wait::slice(deadline) };
            let woke = match &alarm {
                Some(a) => wait_any(&[&self.wake, a.queue()], slice),
                None => wait_any(&[&self.wake], slice),
            };
            match woke {
                Ok((_, 0)) => {
                    let n = self.poll(events);
                    if n > 0 {
                        break Ok(n);
                    }
                }
                Ok(_) => break Ok(self.poll(events)), // our own alarm fired
                Err(Error::TimedOut) => {
                    // A slice or the deadline ended: look at the set itself
                    // (a busy worker may not have dispatched its readiness).
                    let n = self.poll(events);
                    if n > 0 || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                        break Ok(n);
                    }
                    if handle.is_shutdown() {
                        break Err(Error::Shutdown);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if let Some(a) = alarm.as_mut() {
            // The seed's protocol: cancel, and if it was already firing,
            // wait for that to finish before the object goes back.
            a.cancel();
        }
        drop(alarm);
        r
    }
}

impl AsRawFd for Epoll {
    /// The inner kernel epoll instance (for nesting it elsewhere).
    fn as_raw_fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }
}
