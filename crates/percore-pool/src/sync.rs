//! The loom shim: every lock, condition variable and atomic of the pool and
//! job protocols comes from here, so that the same source runs under
//! `--cfg loom` (see `tests/loom_pool.rs`).
//!
//! `Arc` is always `std`'s: it manages memory, not the protocol (a job's
//! protocol references are the counted `refs` of `job.rs`), and loom's `Arc`
//! cannot be coerced to `Arc<dyn Task>`.
//!
//! Poisoning is ignored on purpose. Job functions run outside the pool lock,
//! and a job function that panics while holding its job's lock leaves the
//! protocol fields consistent (each is changed in one statement); the user
//! data it guards is the user's business, as with `parking_lot`.

#[cfg(loom)]
use loom::sync as imp;
#[cfg(not(loom))]
use std::sync as imp;

use std::time::Duration;

pub(crate) use imp::atomic::{AtomicBool, AtomicU64, AtomicUsize};
pub(crate) use imp::MutexGuard;

/// A mutex whose `lock` ignores poisoning (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(imp::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(imp::Mutex::new(value))
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A condition variable paired with one [`Mutex`], poisoning ignored.
#[derive(Debug, Default)]
pub(crate) struct Condvar(imp::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar(imp::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Wait at most `dur`. NOTE: under loom the timeout is not modelled (the
    /// wait is untimed), so models only use this where a notification comes.
    pub(crate) fn wait_timeout<'a, T>(&self, guard: MutexGuard<'a, T>, dur: Duration) -> MutexGuard<'a, T> {
        match self.0.wait_timeout(guard, dur) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    #[inline]
    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    #[inline]
    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// Let another thread run (loom: a scheduling point).
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Catch a panic, under loom too (loom's threads propagate panics, but a job
/// that panics inside a model must be caught exactly as outside one).
pub(crate) fn catch_unwind<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// Drop a caught panic's payload without letting a panicking payload
/// destructor escape (a payload whose `Drop` panics is leaked instead).
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(move || drop(payload)) {
        std::mem::forget(again);
    }
}

/// The identity of the calling thread, to detect a job waiting for itself.
#[cfg(not(loom))]
pub(crate) fn current_thread() -> std::thread::ThreadId {
    std::thread::current().id()
}

/// The identity of the calling thread, to detect a job waiting for itself.
#[cfg(loom)]
pub(crate) fn current_thread() -> loom::thread::ThreadId {
    loom::thread::current().id()
}

/// The thread identity type of [`current_thread`].
#[cfg(not(loom))]
pub(crate) type ThreadId = std::thread::ThreadId;
/// The thread identity type of [`current_thread`].
#[cfg(loom)]
pub(crate) type ThreadId = loom::thread::ThreadId;
