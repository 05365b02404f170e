//! # The join slot: one value, one waiter
//!
//! `Oneshot` carries a uthread's result (and a message's reply, a
//! give-away's answer) from its one completer to its one waiter, which is a
//! blocked uthread or thread ([`wait`](Oneshot::wait)) or an async task
//! ([`poll`](Oneshot::poll), [`poll_done`](Oneshot::poll_done), re-polled
//! with a new waker at will).
//!
//! The state word goes `OPEN -> WAITING -> DONE`, or `OPEN -> DONE`:
//!
//! * The waiter writes `waiter` while the word is `OPEN` (nobody else
//!   touches it then), and publishes it with a release CAS `OPEN ->
//!   WAITING`. To replace it (a re-poll with a new waker, a `wait` after a
//!   `poll`) it first takes the slot back with a CAS `WAITING -> OPEN`.
//! * The completer writes `value`, then swaps the word to `DONE` (release:
//!   publishes `value`; acquire: makes `waiter` readable). Only if the swap
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
#[cfg(loom)]
use crate::uthread::waiter::wait_once;
use crate::uthread::waiter::Waiter;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Release};
use percore_cpu::loom::{AtomicU32, UnsafeCell};

const OPEN: u32 = 0;
const WAITING: u32 = 1;
const DONE: u32 = 2;

/// A single-value slot with one waiter: join results and message replies.
pub struct Oneshot<T> {
    state: AtomicU32,
    waiter: UnsafeCell<Option<Waiter>>,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: `value` is written once before `DONE` is published and read after
// it is observed; `waiter` is written before `WAITING` is published and read
// after it is observed (module protocol below).
unsafe impl<T: Send> Send for Oneshot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Oneshot<T> {}

impl<T> Oneshot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Oneshot { state: AtomicU32::new(OPEN), waiter: UnsafeCell::new(None), value: UnsafeCell::new(None) }
    }

    /// Whether the value is there (or was taken).
    pub fn is_done(&self) -> bool {
        self.state.load(Acquire) == DONE
    }

    /// Store the value and wake the waiter. Called at most once.
    pub fn complete(&self, v: T) {
        // SAFETY: only the single completer writes `value`, before `DONE`.
        self.value.with_mut(|p| unsafe { *p = Some(v) });
        // ORDERING: release publishes `value`; acquire pairs with the release
        // CAS to `WAITING` in `wait`, making `waiter` readable.
        if self.state.swap(DONE, AcqRel) == WAITING {
            // SAFETY: the waiter wrote it before publishing `WAITING` and
            // no longer touches it.
            if let Some(w) = self.waiter.with_mut(|p| unsafe { (*p).take() }) {
                w.wake();
            }
        }
    }

    /// Wait for the value (once per slot). The caller checked that it may
    /// block.
    pub fn wait(&self) -> Result<T, Error> {
        // Whether `waiter` is ours (this call's), not a waker left by an
        // earlier `poll`.
        let mut registered = false;
        loop {
            match self.state.load(Acquire) {
                DONE => {
                    // SAFETY: `DONE` was observed with acquire: `value` is
                    // written and nobody else reads it.
                    return self.value.with_mut(|p| unsafe { (*p).take() }).ok_or_else(|| Error::Shutdown);
                }
                OPEN => {
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(Waiter::current()) });
                    // ORDERING: release publishes `waiter` to `complete`.
                    registered = self.state.compare_exchange(OPEN, WAITING, Release, Acquire).is_ok();
                    continue;
                }
                _ if registered => wait_once(None),
                _ => {
                    // A stale registration from `poll`: take the slot back
                    // (fails only if `complete` won, then `DONE` is seen).
                    // ORDERING: acquire, as for the `DONE` load above.
                    let _ = self.state.compare_exchange(WAITING, OPEN, Acquire, Acquire);
                }
            }
        }
    }

    /// The `Future` side of [`Oneshot::wait`]: the value if it is there,
    /// otherwise register `cx`'s waker (replacing an earlier one) and
    /// return `Pending`. Never blocks.
    pub fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<T, Error>> {
        std::task::ready!(self.poll_done(cx));
        // SAFETY: `poll_done` saw `DONE` with acquire: `value` is written and
        // nobody else reads it (as in `wait`).
        std::task::Poll::Ready(self.value.with_mut(|p| unsafe { (*p).take() }).ok_or_else(|| Error::Shutdown))
    }

    /// `Ready` once the value is there (without taking it), otherwise
    /// register `cx`'s waker (replacing an earlier one) and return
    /// `Pending`. Never blocks.
    pub fn poll_done(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        loop {
            match self.state.load(Acquire) {
                DONE => return Poll::Ready(()),
                OPEN => {
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(Waiter::from_waker(cx.waker().clone())) });
                    // ORDERING: release publishes `waiter` to `complete`;
                    // on failure `complete` won and the loop sees `DONE`.
                    if self.state.compare_exchange(OPEN, WAITING, Release, Acquire).is_ok() {
                        return Poll::Pending;
                    }
                }
                _ => {
                    // Registered before, maybe with another waker: take the
                    // slot back and register again. `complete` reads
                    // `waiter` only if it swaps `WAITING` away, so once this
                    // CAS succeeds the slot is ours.
                    // ORDERING: acquire, as for the `DONE` load above.
                    let _ = self.state.compare_exchange(WAITING, OPEN, Acquire, Acquire);
                }
            }
        }
    }
}
