//! # Seeing a stuck worker from outside: the running slot
//!
//! Scheduling is cooperative, so a uthread that never reaches a scheduling
//! point keeps its worker for as long as it likes. Two observers must name
//! it from another thread: [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout)
//! (and `Drop`) when time is up, and the watchdog (`watchdog.rs`).
//!
//! Each worker publishes, in its [`RunningSlot`], a pointer to the uthread it
//! is running (null between resumes) and a heartbeat counter bumped at every
//! resume and at every `yield_now` / `maybe_yield`. Both are written by the
//! worker only; the fast path costs a release store before the resume, and a
//! `SeqCst` store plus a load after it.
//!
//! A reader turns the pointer into a strong reference (an `Uthread`) with a
//! Dekker-style pair, so that the worker never frees a uthread a reader is
//! looking at:
//!
//! ```text
//!   reader                               worker, after the resume
//!   readers += 1          (SeqCst)       running = null       (SeqCst)
//!   p = running           (SeqCst)       while readers != 0   (SeqCst) spin
//!   if p: strong count += 1              ... may drop its Arc<Thread>
//!   readers -= 1          (Release)
//! ```
//!
//! If the reader saw `p`, its increment precedes its load, which precedes the
//! worker's null store in the single SeqCst order, so the worker's load of
//! `readers` sees the reader (or its decrement, after the strong count was
//! taken): the `Thread` is alive while the count is taken. A reader that
//! comes later sees null.

use crate::thread::{Thread, Uthread};
use percore_cpu::loom::Ordering::{Relaxed, Release, SeqCst};
use percore_cpu::loom::{AtomicPtr, AtomicU64, AtomicUsize};
use std::sync::Arc;

/// One worker's running uthread and heartbeat (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct RunningSlot {
    running: AtomicPtr<Thread>,
    readers: AtomicUsize,
    /// Bumped by the worker at each resume and each yield point.
    heartbeat: AtomicU64,
}

impl RunningSlot {
    /// The worker resumes `t` (which it keeps alive until [`leave`](Self::leave)).
    #[inline]
    pub(crate) fn enter(&self, t: &Arc<Thread>) {
        self.beat();
        // ORDERING: release: a reader that sees the pointer sees the thread
        // record initialised.
        self.running.store(Arc::as_ptr(t) as *mut Thread, Release);
    }

    /// The worker is back from the resume; after this it may drop the
    /// uthread.
    #[inline]
    pub(crate) fn leave(&self) {
        // ORDERING: SeqCst store and load, paired with the reader's SeqCst
        // increment and load (the Dekker pair of the module doc); acquire/
        // release cannot order a store before a later load.
        self.running.store(std::ptr::null_mut(), SeqCst);
        while self.readers.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
    }

    /// A scheduling point without a switch (a yield that found no one).
    #[inline]
    pub(crate) fn beat(&self) {
        // ORDERING: relaxed: a sample for the watchdog; single writer.
        self.heartbeat.store(self.heartbeat.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// The heartbeat count (any thread).
    pub(crate) fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Relaxed)
    }

    /// The uthread the worker is running now, if any (any thread).
    pub(crate) fn running(&self) -> Option<Uthread> {
        // ORDERING: SeqCst: the reader's half of the Dekker pair (see `leave`).
        self.readers.fetch_add(1, SeqCst);
        let p = self.running.load(SeqCst);
        let t = if p.is_null() {
            None
        } else {
            // SAFETY: the worker does not drop the uthread before it has
            // seen `readers` back at zero (module doc), and it holds a
            // strong count while `running` names it.
            Some(Uthread(unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            }))
        };
        // ORDERING: release: our strong count is taken before the worker
        // may see zero.
        self.readers.fetch_sub(1, Release);
        t
    }
}

/// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) ran out of
/// time: some workers never reached a scheduling point, because the uthreads
/// they run never yield, block or return.
///
/// The workers are detached (their OS threads go on; each stops at its
/// running uthread's next scheduling point, and the runtime's memory is
/// freed then, or never).
///
/// ```
/// use percore_lwkt::Runtime;
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::time::Duration;
///
/// static GO: AtomicBool = AtomicBool::new(false);
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let h = percore_lwkt::Builder::new().name("spinner").spawn_on(rt.handle(), || {
///     GO.store(true, SeqCst);
///     while GO.load(SeqCst) { std::hint::spin_loop() } // never yields
/// }).unwrap();
/// while !GO.load(SeqCst) { std::thread::yield_now() }
/// let e = rt.shutdown_timeout(Duration::from_millis(50)).unwrap_err();
/// assert_eq!(e.running()[0].name(), Some("spinner"));
/// GO.store(false, SeqCst); // let it go; the detached worker stops
/// assert!(h.join().is_ok());
/// ```
#[derive(Clone)]
pub struct ShutdownTimeout {
    pub(crate) timeout: std::time::Duration,
    pub(crate) running: Vec<Uthread>,
}

impl ShutdownTimeout {
    /// The uthreads still running on their workers when time was up (empty
    /// when a worker is stuck outside any uthread, in an IPI function or a
    /// driver hook).
    pub fn running(&self) -> &[Uthread] {
        &self.running
    }

    /// The time that was given.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }
}

impl std::fmt::Display for ShutdownTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the runtime did not shut down within {:?}: ", self.timeout)?;
        if self.running.is_empty() {
            return write!(f, "a worker is stuck outside any uthread (an IPI function or driver hook)");
        }
        for (i, u) in self.running.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "uthread '{}' (id {}) on worker {}", u.name().unwrap_or("<unnamed>"), u.id(), u.worker())?;
        }
        write!(f, " never reached a scheduling point; its workers are detached")
    }
}

impl std::fmt::Debug for ShutdownTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownTimeout").field("timeout", &self.timeout).field("running", &self.running).finish()
    }
}

impl std::error::Error for ShutdownTimeout {}
