//! # Time: sleeping, timeouts, alarms
//!
//! * [`sleep`] blocks the calling uthread (its worker runs others meanwhile)
//!   on the worker's own timer; on a foreign thread it sleeps the OS thread.
//! * [`timeout`] runs a closure on a new uthread and waits for it at most
//!   so long.
//! * [`Alarm`] is a re-armable timer that posts to its own event queue, to
//!   wait on together with other queues ([`sync::wait_any`](crate::sync::wait_any)).
//!
//! Most blocking calls also take a timeout of their own
//! ([`sync::tsleep`](crate::sync::tsleep), [`sync::wait_msg`](crate::sync::wait_msg),
//! [`EventQueue::recv`](crate::sync::EventQueue::recv), the sockets'
//! `set_read_timeout`): prefer those where they exist, they need no extra
//! uthread.
//!
//! ```
//! use percore::time::{sleep, Duration, Instant};
//!
//! percore::run(|| {
//!     let t0 = Instant::now();
//!     sleep(Duration::from_millis(5)).unwrap();
//!     assert!(t0.elapsed() >= Duration::from_millis(5));
//! });
//! ```

use crate::{Error, JoinError, JoinHandle};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `std::time`'s, re-exported so that one `use percore::time::...` suffices.
///
/// ```
/// let d: percore::time::Duration = std::time::Duration::from_secs(1);
/// let t: percore::time::Instant = std::time::Instant::now();
/// assert!(t.elapsed() < d * 3600);
/// ```
pub use std::time::{Duration, Instant};

/// A re-armable timer of the runtime that fires into its own event queue
/// ([`evq::Alarm`](crate::evq::Alarm); its docs describe set, cancel and
/// reuse).
///
/// ```
/// use percore::sync::{wait_any, EventQueue};
/// use percore::time::{Alarm, Duration};
///
/// percore::run(|| {
///     let work = EventQueue::new();
///     let mut alarm = Alarm::new().unwrap();
///     alarm.set_after(Duration::from_millis(5)).unwrap();
///     // Nothing arrives on `work`: the alarm's queue (index 1) wins.
///     let (_, which) = wait_any(&[&work, alarm.queue()], None).unwrap();
///     assert_eq!(which, 1);
/// });
/// ```
pub use percore_evq::Alarm;

/// Block the caller for `d`: a uthread parks on its worker's timer (the
/// worker runs other uthreads meanwhile), a foreign thread sleeps. Refused
/// inside a critical or SMR section ([`Error::InCritical`],
/// [`Error::InSmrSection`]). This is [`lwkt::sleep`](crate::lwkt::sleep);
/// use it, never `std::thread::sleep`, on a uthread.
///
/// ```
/// use percore::time::{sleep, Duration};
/// use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
/// use std::sync::Arc;
///
/// let ticks = percore::run(|| {
///     let ticks = Arc::new(AtomicU32::new(0));
///     let t = ticks.clone();
///     // Same worker: it can tick only while the sleeper is parked.
///     let ticker = percore::spawn(move || while t.load(SeqCst) < 3 {
///         t.fetch_add(1, SeqCst);
///         percore::lwkt::yield_now();
///     }).unwrap();
///     sleep(Duration::from_millis(20)).unwrap();
///     ticker.join().unwrap();
///     ticks.load(SeqCst)
/// });
/// assert_eq!(ticks, 3);
/// ```
#[inline]
pub fn sleep(d: Duration) -> Result<(), Error> {
    percore_lwkt::sleep(d)
}

/// Run `f` on a new uthread (on the caller's worker) and wait at most `d`
/// for its value.
///
/// percore cannot stop a running uthread from outside (no preemption, no
/// asynchronous unwinding), so when the time is up `f` **keeps running**:
/// [`TimeoutError::Elapsed`] gives back its [`JoinHandle`], to join later or
/// to drop (which detaches it). A uthread that must stop should itself wait
/// with a timeout, or watch a flag.
///
/// Must be called from a uthread ([`TimeoutError::Spawn`] with
/// [`Error::NotUthread`] otherwise), outside critical and SMR sections.
///
/// ```
/// use percore::time::{sleep, timeout, Duration, TimeoutError};
///
/// percore::run(|| {
///     assert_eq!(timeout(Duration::from_secs(10), || 6 * 7).unwrap(), 42);
///
///     let slow = timeout(Duration::from_millis(5), || sleep(Duration::from_millis(200)));
///     let Err(TimeoutError::Elapsed(handle)) = slow else { panic!("{slow:?}") };
///     handle.join().unwrap().unwrap(); // it ran on, and finishes
/// });
/// ```
pub fn timeout<F, T>(d: Duration, f: F) -> Result<T, TimeoutError<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // Refuse before spawning, so that a refused wait leaves no uthread behind.
    if percore_smr::in_section() {
        return Err(TimeoutError::Spawn(Error::InSmrSection));
    }
    if percore_lwkt::in_critical() {
        return Err(TimeoutError::Spawn(Error::InCritical));
    }
    let me = percore_lwkt::current().ok_or(TimeoutError::Spawn(Error::NotUthread))?;
    let done = Arc::new(AtomicBool::new(false));
    /// Says "finished" as `f` returns or unwinds (a panic, a cancellation).
    struct Finished {
        done: Arc<AtomicBool>,
        waiter: crate::Uthread,
    }
    impl Drop for Finished {
        fn drop(&mut self) {
            // ORDERING: release pairs with the waiter's acquire load; only the
            // flag is published (the value travels through the JoinHandle).
            self.done.store(true, Ordering::Release);
            self.waiter.unpark();
        }
    }
    let finished = Finished { done: done.clone(), waiter: me };
    let handle = crate::spawn(move || {
        let _finished = finished;
        f()
    })
    .map_err(TimeoutError::Spawn)?;
    let deadline = Instant::now().checked_add(d);
    // NOTE: an unpark that lands between the load and the park leaves the
    // park word notified, so the park returns at once: no wake-up is lost.
    while !done.load(Ordering::Acquire) {
        let parked = match deadline {
            None => percore_lwkt::park(),
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => percore_lwkt::park_timeout(left),
                _ => return Err(TimeoutError::Elapsed(handle)),
            },
        };
        if let Err(e) = parked {
            // Shutdown: the uthread is being cancelled too.
            drop(handle);
            return Err(TimeoutError::Spawn(e));
        }
    }
    handle.join().map_err(TimeoutError::Join)
}

/// Why [`timeout`] returned no value.
#[non_exhaustive]
pub enum TimeoutError<T> {
    /// The time passed first. The uthread runs on: join its handle for the
    /// value, or drop it to detach.
    Elapsed(JoinHandle<T>),
    /// The uthread could not be started or waited for: not called from a
    /// uthread, inside a critical or SMR section, or the runtime shut down.
    Spawn(Error),
    /// The uthread finished in time without a value: it panicked, or was
    /// cancelled by shutdown.
    Join(JoinError),
}

impl<T> TimeoutError<T> {
    /// Whether the time passed first.
    ///
    /// ```
    /// use percore::time::{sleep, timeout, Duration};
    /// percore::run(|| {
    ///     let e = timeout(Duration::ZERO, || sleep(Duration::from_millis(50))).unwrap_err();
    ///     assert!(e.is_elapsed());
    /// });
    /// ```
    pub fn is_elapsed(&self) -> bool {
        matches!(self, TimeoutError::Elapsed(_))
    }
}

impl<T> fmt::Debug for TimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Elapsed(h) => f.debug_tuple("Elapsed").field(h).finish(),
            TimeoutError::Spawn(e) => f.debug_tuple("Spawn").field(e).finish(),
            TimeoutError::Join(e) => f.debug_tuple("Join").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for TimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Elapsed(_) => write!(f, "timed out (the uthread runs on)"),
            TimeoutError::Spawn(e) => write!(f, "cannot run with a timeout: {e}"),
            TimeoutError::Join(e) => write!(f, "the uthread gave no value: {e}"),
        }
    }
}

impl<T> std::error::Error for TimeoutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TimeoutError::Elapsed(_) => None,
            TimeoutError::Spawn(e) => Some(e),
            TimeoutError::Join(e) => Some(e),
        }
    }
}
