//! The one door to the atomics, locks and thread-locals of the alarm and
//! event-queue protocols.
//!
//! The alarm state machine (`alarm/state.rs`) and the event queues
//! (`queue.rs`: the mailbox lock, the waiter slot's `claimed` flag, its
//! `Arc`, the per-thread slot cache) import them from here, so that
//! `RUSTFLAGS="--cfg loom"` swaps them for loom's model-checked versions
//! (tokio's `loom` module, crossbeam's `primitive`). How a waiter blocks is
//! the other half of the swap, in `waiter.rs`. Under loom only those are
//! compiled: the rest of the crate runs on percore-lwkt's workers, which
//! switch stacks and which loom cannot model; the stress tests in `tests/`
//! cover it instead.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread_local;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
/// loom's `thread_local!`, taking the `const { .. }` initialiser that the
/// production declaration uses (loom's macro does not).
#[cfg(loom)]
macro_rules! loom_thread_local {
    ($(#[$a:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        ::loom::thread_local! { $(#[$a])* static $name: $t = $init; }
    };
}
#[cfg(loom)]
pub(crate) use loom_thread_local as thread_local;
