//! # Seeing a stuck worker from outside: the running slot
//!
//! Scheduling is cooperative, so a uthread that never reaches a scheduling
//! point keeps its worker for as long as it likes. Two observers must name
//! it from another thread: [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout)
//! (and `Drop`) when time is up, and the watchdog (`worker/watchdog.rs`).
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

use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::{Relaxed, Release, SeqCst};
use percore_cpu::loom::{AtomicPtr, AtomicU64, AtomicUsize};

/// One worker's running uthread and heartbeat (see the module doc).
#[derive(Debug)]
pub(crate) struct RunningSlot<T> {
    running: AtomicPtr<T>,
    readers: AtomicUsize,
    /// Bumped by the worker at each resume and each yield point.
    heartbeat: AtomicU64,
}

impl<T> Default for RunningSlot<T> {
    fn default() -> Self {
        RunningSlot {
            running: AtomicPtr::new(std::ptr::null_mut()),
            readers: AtomicUsize::new(0),
            heartbeat: AtomicU64::new(0),
        }
    }
}

impl<T> RunningSlot<T> {
    /// The worker resumes `t` (which it keeps alive until [`leave`](Self::leave)).
    #[inline]
    pub(crate) fn enter(&self, t: &Arc<T>) {
        self.beat();
        // ORDERING: release: a reader that sees the pointer sees the thread
        // record initialised.
        self.running.store(Arc::as_ptr(t) as *mut T, Release);
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
    pub(crate) fn running(&self) -> Option<Arc<T>> {
        // ORDERING: SeqCst: the reader's half of the Dekker pair (see `leave`).
        self.readers.fetch_add(1, SeqCst);
        let p = self.running.load(SeqCst);
        let t = if p.is_null() {
            None
        } else {
            // SAFETY: the worker does not drop the uthread before it has
            // seen `readers` back at zero (module doc), and it holds a
            // strong count while `running` names it.
            Some(unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            })
        };
        // ORDERING: release: our strong count is taken before the worker
        // may see zero.
        self.readers.fetch_sub(1, Release);
        t
    }
}
