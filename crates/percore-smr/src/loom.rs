//! The one door to atomics and thread-locals for the SMR protocol.
//!
//! Every atomic the protocol relies on is imported from here, so that
//! `RUSTFLAGS="--cfg loom"` swaps them for loom's model-checked versions
//! (tokio's `loom` module, crossbeam's `primitive`). Owner-only data (a
//! participant's nesting count and batch) lives in plain `Cell`s: it is
//! touched by one thread only, and its hand-over between threads is ordered
//! by the slot's `state` atomic, which loom does see.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{compiler_fence, fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

/// Under loom the reader's compiler fence is modelled as a full fence: that
/// is exactly what the writer's `membarrier` turns it into (see `sys`).
#[cfg(loom)]
pub(crate) fn compiler_fence(_: std::sync::atomic::Ordering) {
    fence(std::sync::atomic::Ordering::SeqCst);
}

/// Spin hint for wait loops; under loom, a yield so the model makes progress.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Give the CPU away while waiting for a reader that may be descheduled.
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Thread-locals, modelled per loom thread under loom.
#[cfg(not(loom))]
macro_rules! smr_thread_local {
    ($($t:tt)*) => { std::thread_local!($($t)*); };
}
#[cfg(loom)]
macro_rules! smr_thread_local {
    ($(#[$m:meta])* static $name:ident: $ty:ty = const { $init:expr };) => {
        loom::thread_local!($(#[$m])* static $name: $ty = $init);
    };
    ($(#[$m:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        loom::thread_local!($(#[$m])* static $name: $ty = $init);
    };
}
pub(crate) use smr_thread_local;
