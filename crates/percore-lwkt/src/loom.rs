//! The one door to atomics and cells for the IPI and idle protocols.
//!
//! Every atomic those protocols rely on is imported from here, so that
//! `RUSTFLAGS="--cfg loom"` swaps them for loom's model-checked versions
//! (tokio's `loom` module, crossbeam's `primitive`). Under loom only the
//! protocol modules (`ipi`, `idle`) are compiled; the scheduler itself switches
//! stacks, which loom cannot model, and is tested by the stress tests instead.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize};

/// An `UnsafeCell` with loom's closure-based API, so that loom can check
/// every access of a ring slot for data races.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(v: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }

    /// Run `f` with a raw pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Spin hint for bounded wait loops; under loom, a yield so the model makes
/// progress.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
