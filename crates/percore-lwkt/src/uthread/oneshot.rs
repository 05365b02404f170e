//! # The one-value slot: one value, one waiter
//!
//! `Oneshot` carries a message's reply, a give-away's answer or a pool
//! job's result, and its protocol core ([`SlotCore`]) a uthread's result in
//! the record's join slot (`joinslot.rs`), from its one completer to its
//! one waiter, which is a blocked uthread or thread
//! ([`wait`](Oneshot::wait)) or an async task ([`poll`](Oneshot::poll),
//! [`poll_done`](Oneshot::poll_done), re-polled with a new waker at will).
//!
//! The state word goes `OPEN -> WAITING -> DONE`, or `OPEN -> DONE`:
//!
//! * The waiter writes `waiter` while the word is `OPEN` (nobody else
//!   touches it then), and publishes it with a release CAS `OPEN ->
//!   WAITING`. To replace it (a re-poll with a new waker, a `wait` after a
//!   `poll`) it first takes the slot back with a CAS `WAITING -> OPEN`.
//! * The completer writes `value`, then swaps the word to `DONE`
//!   ([`SlotCore::publish`]; release: publishes `value`; acquire: makes
//!   `waiter` readable). Only if the swap
//!   saw `WAITING` does it take `waiter` and wake it: from then on the
//!   waiter's CAS `WAITING -> OPEN` fails and it sees `DONE`.
//!
//! So a registered waiter is woken or sees `DONE`, never neither: the
//! waiter's CAS and the completer's swap are on the one word, and whichever
//! comes second sees the other. `tests/loom_join.rs` checks this against
//! every interleaving (complete racing a poll, a re-poll with a new waker
//! racing complete, a poll then a blocking wait). Tried: the completer's
//! swap split into a load and a store fails all three models (a lost
//! wake-up); a re-poll that keeps the old waker instead of taking the slot
//! back fails the re-poll model.

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use crate::error::Error;
#[cfg(not(loom))]
use crate::uthread::block::wait_once;
pub use crate::uthread::slotcore::SlotCore;
#[cfg(loom)]
use crate::uthread::waiter::wait_once;
use crate::uthread::waiter::Waiter;
use percore_cpu::loom::UnsafeCell;

/// A single-value slot with one waiter: message replies, give-away answers,
/// pool jobs' results (a uthread's own result uses the record's join slot).
pub struct Oneshot<T> {
    core: SlotCore,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: `value` is written once before `DONE` is published and read after
// it is observed (module protocol); the core is `Send + Sync`.
unsafe impl<T: Send> Send for Oneshot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Oneshot<T> {}

impl<T> Oneshot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Oneshot { core: SlotCore::new(), value: UnsafeCell::new(None) }
    }

    /// Whether the value is there (or was taken).
    pub fn is_done(&self) -> bool {
        self.core.is_done()
    }

    /// Store the value and wake the waiter. Called at most once.
    pub fn complete(&self, v: T) {
        // SAFETY: only the single completer writes `value`, before `DONE`.
        self.value.with_mut(|p| unsafe { *p = Some(v) });
        self.core.publish();
    }

    /// Wait for the value (once per slot). The caller checked that it may
    /// block.
    pub fn wait(&self) -> Result<T, Error> {
        self.core.wait_done(|| Waiter::current().into_waker(), || wait_once(None));
        // SAFETY: `DONE` was observed with acquire: `value` is written and
        // nobody else reads it.
        self.value.with_mut(|p| unsafe { (*p).take() }).ok_or_else(|| Error::Shutdown)
    }

    /// The `Future` side of [`Oneshot::wait`]: the value if it is there,
    /// otherwise register `cx`'s waker (replacing an earlier one) and
    /// return `Pending`. Never blocks.
    // NOTE: `poll` and `poll_done` are the loom models' (`tests/loom_join.rs`)
    // way into `SlotCore::poll_done`, which `JoinHandle` polls through the
    // record's join slot; no `Oneshot` user polls now.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<T, Error>> {
        std::task::ready!(self.core.poll_done(cx));
        // SAFETY: `poll_done` saw `DONE` with acquire: `value` is written and
        // nobody else reads it (as in `wait`).
        std::task::Poll::Ready(self.value.with_mut(|p| unsafe { (*p).take() }).ok_or_else(|| Error::Shutdown))
    }

    /// `Ready` once the value is there (without taking it), otherwise
    /// register `cx`'s waker (replacing an earlier one) and return
    /// `Pending`. Never blocks.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn poll_done(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.core.poll_done(cx)
    }
}
