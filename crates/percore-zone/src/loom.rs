//! The one door through which the zone protocol reaches atomics, cells, locks
//! and thread-locals, so that the same source runs under `--cfg loom`
//! (STYLE.md: tokio's `loom/` module, crossbeam's `primitive`).
//!
//! Under loom the constants that decide when a bucket is full shrink (see
//! [`BUCKET_MIN`], [`BUCKET_MAX`]) so that a model with two threads and a
//! handful of items already fills, exchanges and refills buckets.
//!
//! Statistics counters are *not* routed through here: they order nothing and
//! loom has no need to see them.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};

    /// A cell whose accesses loom can check for races; here a plain
    /// `UnsafeCell` with loom's closure-style API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        /// Run `f` with a raw pointer to the value, for exclusive use.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    std::thread_local! {
        /// This thread's participant index, or `UNSET` / `DEAD`
        /// (see `participant.rs`). Constant-initialised and without a
        /// destructor, so it stays readable while the thread tears down.
        pub(crate) static INDEX: std::cell::Cell<usize> =
            const { std::cell::Cell::new(crate::participant::UNSET) };
    }

    pub(crate) use std::thread_local;

    /// Smallest bucket (magazine) capacity.
    pub(crate) const BUCKET_MIN: usize = 16;
    /// Largest bucket capacity the contention heuristic may grow to.
    pub(crate) const BUCKET_MAX: usize = 256;
    /// SMR zones start with large buckets: one `advance` per bucket of
    /// frees, and one poll scan per `SCAN_SLACK` buckets.
    pub(crate) const SMR_BUCKET_START: usize = 128;
    /// Tagged buckets that must wait in the depot before `alloc` polls.
    pub(crate) const SCAN_SLACK: usize = 4;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread_local;
    pub(crate) use std::sync::TryLockError;

    loom::thread_local! {
        pub(crate) static INDEX: std::cell::Cell<usize> =
            std::cell::Cell::new(crate::participant::UNSET);
    }

    /// Shrunk so that two or three frees fill a bucket.
    pub(crate) const BUCKET_MIN: usize = 2;
    /// Shrunk with it.
    pub(crate) const BUCKET_MAX: usize = 3;
    /// Shrunk with it.
    pub(crate) const SMR_BUCKET_START: usize = 2;
    /// Poll at once under loom.
    pub(crate) const SCAN_SLACK: usize = 1;
}

pub(crate) use imp::*;

/// Lock `m`, treating poison as harmless: no user code (hook) ever runs while
/// a zone lock is held, and every critical section leaves its data
/// consistent at each step, so a panic elsewhere cannot tear it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
