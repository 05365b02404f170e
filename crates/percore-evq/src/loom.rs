//! The one door to the atomics and locks of the alarm protocol.
//!
//! The alarm state machine (`alarm/state.rs`) imports its atomic and its
//! lock from here, so that `RUSTFLAGS="--cfg loom"` swaps them for loom's
//! model-checked versions (tokio's `loom` module, crossbeam's `primitive`).
//! Under loom only that state machine is compiled: the rest of the crate
//! runs on percore-lwkt's workers, which switch stacks and which loom cannot
//! model; the stress tests in `tests/` cover it instead.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
