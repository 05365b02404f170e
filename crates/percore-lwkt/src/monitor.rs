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
//! worker only; the fast path costs a release store before the resume and
//! another after it. (A `SeqCst` store after every resume, as this slot used
//! to do, cost 11-12 ns on the 2-vCPU EPYC VM: a third of a yield. Issue 15.)
//!
//! A reader turns the pointer into a strong reference (an `Uthread`) with a
//! Dekker-style pair, so that the worker never frees a uthread a reader is
//! looking at:
//!
//! ```text
//!   reader                               worker
//!   readers += 1          (SeqCst)       after each resume (`leave`):
//!   fence                 (SeqCst)
//!   p = running           (SeqCst)         running = null      (Release)
//!   if p: strong count += 1              before it drops its own reference
//!   readers -= 1          (Release)      (`quiesce`, in `unadopt`):
//!                                          fence               (SeqCst)
//!                                          while readers != 0  (SeqCst) spin
//!                                        ... may drop its Arc<Thread>
//! ```
//!
//! Between a `leave` and the `quiesce` the uthread stays alive regardless:
//! the worker's list of its uthreads (`allq`) holds a strong reference to
//! each until `unadopt` (it exited, migrates or is given away) or shutdown,
//! and both call `quiesce` first. So a reader only has to be kept off a
//! uthread the worker is about to drop. This is the store-buffering pattern
//! with a `SeqCst` fence on each side: the reader's fence comes after its
//! increment and before its load of `running`, the worker's after its null
//! store and before its load of `readers`. One fence precedes the other in
//! the single `SeqCst` order. If the worker's comes first, the reader's
//! load sees the null (or a later store). If the reader's comes first, the
//! worker's load of `readers` sees the increment, and zero only after the
//! decrement, whose release orders the strong count before the worker's
//! drop. A reader that comes later sees null, or a uthread resumed since
//! (alive by the same argument). What the worker gives up is freshness:
//! without the `SeqCst` store, a reader may still see a uthread that
//! switched out a moment ago (a stale name in a report, never a freed one).
//! `tests/loom_monitor.rs` checks this.

// NOTE: `pub` items here are reached by the loom model (`crate::__loom`).
#![allow(unreachable_pub)]

use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::{Relaxed, Release, SeqCst};
use percore_cpu::loom::{fence, AtomicPtr, AtomicU64, AtomicUsize};

/// One worker's running uthread and heartbeat (see the module doc).
#[derive(Debug)]
pub struct RunningSlot<T> {
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
    pub fn enter(&self, t: &Arc<T>) {
        self.beat();
        // ORDERING: release: a reader that sees the pointer sees the thread
        // record initialised.
        self.running.store(Arc::as_ptr(t) as *mut T, Release);
    }

    /// The worker is back from the resume. It must still hold the uthread
    /// (in its `allq`) until it calls [`quiesce`](Self::quiesce).
    #[inline]
    pub fn leave(&self) {
        // ORDERING: release only; what keeps a reader off a uthread about to
        // be dropped is `quiesce`'s fence, which this store happens before
        // (module doc).
        self.running.store(std::ptr::null_mut(), Release);
    }

    /// The worker is about to drop its own reference to a uthread it ran
    /// here: wait until no reader that may have seen it is still taking its
    /// strong count.
    #[inline]
    pub fn quiesce(&self) {
        // ORDERING: a SeqCst fence, then a SeqCst load, paired with the
        // reader's SeqCst increment and load (the Dekker pair of the module
        // doc): the fence orders the earlier release stores of `leave`
        // before this load, which acquire/release cannot.
        fence(SeqCst);
        while self.readers.load(SeqCst) != 0 {
            percore_cpu::loom::spin_loop();
        }
    }

    /// A scheduling point without a switch (a yield that found no one).
    #[inline]
    pub fn beat(&self) {
        // ORDERING: relaxed: a sample for the watchdog; single writer.
        self.heartbeat.store(self.heartbeat.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// The heartbeat count (any thread).
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Relaxed)
    }

    /// The uthread the worker is running now, if any (any thread).
    pub fn running(&self) -> Option<Arc<T>> {
        // ORDERING: SeqCst: the reader's half of the Dekker pair (see
        // `quiesce`). The fence between the increment and the load is what
        // the worker's fence pairs with (two SeqCst fences order each side's
        // earlier access before the other's later one); it also lets loom
        // check the pair, as loom models SeqCst fences but treats SeqCst
        // loads and stores as acquire / release. Readers are rare (the
        // watchdog, a shutdown timeout), so its cost does not matter.
        self.readers.fetch_add(1, SeqCst);
        fence(SeqCst);
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
