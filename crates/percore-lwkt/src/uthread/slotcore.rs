//! # The protocol core of a one-value slot: the state word and its waiter
//!
//! [`SlotCore`] is the protocol of `oneshot.rs` (read its module doc: the
//! state word `OPEN -> WAITING -> DONE`, and why no wake-up is lost,
//! checked by `tests/loom_join.rs`) without the value: `Oneshot` adds a
//! typed value, the record's join slot (`joinslot.rs`) a type-erased one.
//! The waiter is kept as a [`Waker`] (a uthread's is made by
//! `Waiter::into_waker` without an allocation), so that this file, which
//! the record reaches through its join slot, names nothing that reaches
//! the record back.

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed, Release};
use percore_cpu::loom::{AtomicU32, UnsafeCell};
use std::task::Waker;

const OPEN: u32 = 0;
const WAITING: u32 = 1;
const DONE: u32 = 2;

/// The protocol of a one-value slot without the value: the state word and
/// the one waiter (module doc). [`Oneshot`] adds a typed value; a uthread's
/// record adds a type-erased one (`joinslot.rs`, the join slot, which
/// lives in the recycled record so that a spawn allocates none).
pub struct SlotCore {
    state: AtomicU32,
    waiter: UnsafeCell<Option<Waker>>,
}

// SAFETY: `waiter` is written before `WAITING` is published and read after
// it is observed (module protocol); the value around the core has its own
// rule (written before `DONE`, read after).
unsafe impl Send for SlotCore {}
// SAFETY: as above.
unsafe impl Sync for SlotCore {}

impl Default for SlotCore {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotCore {
    /// Open, no waiter.
    pub fn new() -> Self {
        SlotCore { state: AtomicU32::new(OPEN), waiter: UnsafeCell::new(None) }
    }

    /// Whether the value is published (`DONE`).
    #[inline]
    pub fn is_done(&self) -> bool {
        // ORDERING: acquire pairs with the release half of `publish`'s swap:
        // the value written before it is visible.
        self.state.load(Acquire) == DONE
    }

    /// The completer's half: the value is written; publish it and wake the
    /// waiter, if one registered. Called at most once per life of the slot.
    #[inline]
    pub fn publish(&self) {
        // ORDERING: release publishes the value; acquire pairs with the release
        // CAS to `WAITING` in `wait_done` / `poll_done`, making `waiter` readable.
        if self.state.swap(DONE, AcqRel) == WAITING {
            // SAFETY: the waiter wrote it before publishing `WAITING` and
            // no longer touches it.
            if let Some(w) = self.waiter.with_mut(|p| unsafe { (*p).take() }) {
                w.wake();
            }
        }
    }

    /// Block until `DONE` (seen with acquire: the value is readable), with
    /// `current` the caller as a waker and `wait_once` one block of the
    /// caller until woken (spurious returns allowed). The caller checked
    /// that it may block.
    ///
    /// NOTE: the two are passed in (`oneshot.rs` and `join.rs` pass
    /// `Waiter::current` and `block.rs`'s `wait_once`), so that this file
    /// names nothing of the scheduler: the record holds a join slot, and a
    /// slot that named the waiter's uthread type would close an import loop
    /// through the record (ci/structure.sh).
    #[inline]
    pub fn wait_done(&self, current: impl Fn() -> Waker, wait_once: impl Fn()) {
        // Whether `waiter` is ours (this call's), not a waker left by an
        // earlier `poll`.
        let mut registered = false;
        loop {
            // ORDERING: acquire, as in `is_done`.
            match self.state.load(Acquire) {
                DONE => return,
                OPEN => {
                    let w = current();
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(w) });
                    // ORDERING: release publishes `waiter` to `publish`.
                    registered = self.state.compare_exchange(OPEN, WAITING, Release, Acquire).is_ok();
                    continue;
                }
                _ if registered => wait_once(),
                _ => {
                    // A stale registration from `poll`: take the slot back
                    // (fails only if `publish` won, then `DONE` is seen).
                    // ORDERING: acquire, as for the `DONE` load above.
                    let _ = self.state.compare_exchange(WAITING, OPEN, Acquire, Acquire);
                }
            }
        }
    }

    /// `Ready` once `DONE` (seen with acquire), otherwise register `cx`'s
    /// waker (replacing an earlier one) and return `Pending`. Never blocks.
    pub fn poll_done(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        loop {
            // ORDERING: acquire, as in `is_done`.
            match self.state.load(Acquire) {
                DONE => return Poll::Ready(()),
                OPEN => {
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(cx.waker().clone()) });
                    // ORDERING: release publishes `waiter` to `publish`;
                    // on failure `publish` won and the loop sees `DONE`.
                    if self.state.compare_exchange(OPEN, WAITING, Release, Acquire).is_ok() {
                        return Poll::Pending;
                    }
                }
                _ => {
                    // Registered before, maybe with another waker: take the
                    // slot back and register again. `publish` reads
                    // `waiter` only if it swaps `WAITING` away, so once this
                    // CAS succeeds the slot is ours.
                    // ORDERING: acquire, as for the `DONE` load above.
                    let _ = self.state.compare_exchange(WAITING, OPEN, Acquire, Acquire);
                }
            }
        }
    }

    /// Open again, for a new life of the slot (a recycled record); drops a
    /// waiter left registered.
    #[inline]
    pub fn reset(&mut self) {
        // SAFETY: `&mut self`: nobody else can reach the cell.
        self.waiter.with_mut(|p| unsafe { *p = None });
        // ORDERING: relaxed: `&mut self`; the slot is shared again only
        // through a release (the record's Spawn IPI).
        self.state.store(OPEN, Relaxed);
    }
}
