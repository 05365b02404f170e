//! # The park word: one uthread's wake-up state
//!
//! Every blocking operation of a uthread ends in the same three steps on
//! this word, and every waker does one swap on it. It decides, without a
//! lock, whether a wake-up is consumed by the uthread itself (it was not
//! asleep yet) or must put it back on its owner's run queue (it was).
//!
//! | value | meaning | set by |
//! | --- | --- | --- |
//! | `EMPTY` | running, no wake-up pending | the uthread ([`ParkWord::take_notified`], [`ParkWord::prepare_park`] failing, [`ParkWord::finish_park`]) |
//! | `PARKED` | blocked, or about to switch out to block | the uthread ([`ParkWord::prepare_park`]) |
//! | `NOTIFIED` | a wake-up arrived that the uthread has not consumed | a waker ([`ParkWord::unpark`]) |
//!
//! ```text
//!            prepare_park (CAS)               unpark (swap): returns true,
//!   EMPTY ----------------------> PARKED -----------------------------> NOTIFIED
//!     ^  \                                     the waker schedules it       |
//!     |   `--- unpark (swap) ---> NOTIFIED                                   |
//!     |                              | take_notified (CAS) / prepare_park   |
//!     `------------------------------'   failing (swap)                      |
//!     `------------------------------------ finish_park (swap) -------------'
//! ```
//!
//! ## Invariants
//!
//! * Only the waker whose swap replaces `PARKED` schedules the uthread, so a
//!   uthread is put back on a run queue at most once per block (no double
//!   resume).
//! * A wake-up is never lost: a waker that comes before the uthread's
//!   `prepare_park` leaves `NOTIFIED`, which makes `prepare_park` fail (the
//!   uthread does not switch out); one that comes after finds `PARKED` and
//!   schedules it.
//! * A schedule that reaches the owner while the uthread is still running
//!   (it set `PARKED` but has not switched out yet) is recorded in the
//!   record's `resched`, and the switch-out requeues instead of blocking:
//!   DragonFly's "the target cpu will deal with it" in `_lwkt_schedule`.
//! * Every transition the uthread makes after a waker may have written is a
//!   read-modify-write with acquire, so whatever the waker published before
//!   its swap (the condition the uthread waits for) is visible when it runs.
//!
//! `tests/loom_park.rs` checks the first two against every interleaving of
//! a parking uthread, an unparker and a timer (whose expiry is an unpark).

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use percore_cpu::loom::AtomicU32;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed, Release};

const EMPTY: u32 = 0;
const PARKED: u32 = 1;
const NOTIFIED: u32 = 2;

/// A uthread's park word (see the module documentation). Any thread may
/// call [`unpark`](ParkWord::unpark); the other transitions are the
/// uthread's own, made on its worker.
#[derive(Debug)]
pub struct ParkWord(AtomicU32);

impl Default for ParkWord {
    fn default() -> Self {
        Self::new()
    }
}

impl ParkWord {
    /// Running, no wake-up pending.
    pub fn new() -> ParkWord {
        ParkWord(AtomicU32::new(EMPTY))
    }

    /// A waker's transition: leave a wake-up. Returns `true` when the
    /// uthread was parked: the caller must then schedule it (exactly once).
    #[inline]
    pub fn unpark(&self) -> bool {
        // ORDERING: release publishes whatever the waker changed before the
        // wake-up (pairs with the acquire of `take_notified`, of
        // `prepare_park`'s failure swap and of `finish_park`); acquire pairs
        // with the release CAS to `PARKED` in `prepare_park`, so the
        // `owner` read that follows in `schedule` is the one the uthread
        // parked on.
        self.0.swap(NOTIFIED, AcqRel) == PARKED
    }

    /// The uthread's first look: consume a pending wake-up. Returns
    /// whether there was one.
    #[inline]
    pub fn take_notified(&self) -> bool {
        // NOTE: a plain load first: a failing compare-exchange is still a
        // locked instruction, and the common case is "no wake-up pending".
        // ORDERING: relaxed: a stale `EMPTY` only sends us on to
        // `prepare_park`, whose compare-exchange sees the real value.
        if self.0.load(Relaxed) != NOTIFIED {
            return false;
        }
        // ORDERING: acquire pairs with the release half of `unpark`'s swap.
        self.0.compare_exchange(NOTIFIED, EMPTY, Acquire, Relaxed).is_ok()
    }

    /// The uthread announces its switch-out to block. Fails (and consumes
    /// the wake-up) if one arrived meanwhile: then it must not switch out.
    #[inline]
    pub fn prepare_park(&self) -> bool {
        // ORDERING: release pairs with the acquire in `unpark` (see there).
        match self.0.compare_exchange(EMPTY, PARKED, Release, Acquire) {
            Ok(_) => true,
            Err(_) => {
                // NOTE: a swap, not a store: a second `unpark` landing after
                // the failed compare-exchange would otherwise be erased
                // without our acquiring its release (see `finish_park`).
                // ORDERING: acquire pairs with the release of the latest
                // `unpark` swap.
                self.0.swap(EMPTY, Acquire);
                false
            }
        }
    }

    /// The uthread runs again after a block (its waker's schedule, or a
    /// timer's, resumed it).
    #[inline]
    pub fn finish_park(&self) {
        // NOTE: this must stay a read-modify-write. A load and a store
        // would let an `unpark` land between them unseen: its notification
        // erased without our acquiring its release, so its waiter's
        // condition could read stale and the uthread park for good.
        // ORDERING: acquire pairs with the waker's release in `unpark`.
        self.0.swap(EMPTY, Acquire);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_before_the_park_is_consumed_without_a_schedule() {
        let p = ParkWord::new();
        assert!(!p.unpark()); // not parked: nobody schedules
        assert!(p.take_notified());
        assert!(!p.take_notified());
        assert!(!p.unpark());
        assert!(!p.prepare_park()); // pending: no switch-out
        assert!(p.prepare_park());
    }

    #[test]
    fn only_the_first_waker_of_a_park_schedules() {
        let p = ParkWord::new();
        assert!(p.prepare_park());
        assert!(p.unpark());
        assert!(!p.unpark());
        p.finish_park();
        assert!(!p.take_notified());
    }
}
