//! # The watchdog's nap: no ticks while every worker sleeps
//!
//! The watchdog (`watchdog.rs`) samples every worker four times per
//! threshold, 40 times a second by default. While every worker sleeps in the
//! kernel nothing can stall, so those wake-ups only cost CPU (0.15-0.6% of
//! one on the 2-vCPU VM, the whole of an idle runtime's CPU). Like Go's
//! `sysmon`, which sleeps on a note once every P is idle, the watchdog naps:
//! it parks without a timeout until the first worker wakes.
//!
//! All of it is decided on one 64-bit word per runtime:
//!
//! | bits | field | changed by |
//! | --- | --- | --- |
//! | 0..32 | `asleep`: workers in `Worker::sleep_idle` | each worker, +1 before its sleep, -1 after |
//! | 32 | `NAP`: the watchdog is parked | set by the watchdog (`try_nap`), cleared by the first worker to wake |
//! | 33..64 | `wakes`: a count of sleeps ended (wraps) | each worker, after its sleep |
//!
//! * Worker ([`Nap::sleep_begins`], [`Nap::sleep_ends`]): around its sleep,
//!   one RMW each. The one that ends a sleep clears `NAP` in the same RMW;
//!   if it was set, this worker unparks the watchdog. Only one worker sees
//!   it set.
//! * Watchdog ([`Nap::try_nap`]): at a tick, if the word it read at the
//!   previous tick is unchanged and has every worker asleep, nobody has
//!   woken or fallen asleep in between (`wakes` moved otherwise). It sets
//!   `NAP` by a compare-exchange against exactly that value and parks until
//!   unparked with `NAP` clear (std's park has a token: an unpark between
//!   the exchange and the park is not lost; spurious returns re-check).
//!
//! ## Why no stall goes unseen
//!
//! Every transition is an RMW of the same word, so they are totally ordered.
//! If the watchdog's exchange comes first, the worker's `sleep_ends` that
//! follows reads `NAP` and unparks it, before that worker runs anything. If
//! a `sleep_ends` comes first, `wakes` changed (or `asleep` is below the
//! count) and the exchange fails. A worker can run a uthread only after its
//! sleep ended, so while `NAP` is set no worker runs one.
//! `crates/percore-lwkt/tests/loom_nap.rs` checks that a napping watchdog is
//! always woken.
//!
//! Cost: two RMWs on a shared line per worker sleep (a futex or `epoll_wait`
//! system call each anyway), and one `unpark` (a futex wake) for the first
//! worker to wake after the runtime was wholly idle for a tick or more.

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use percore_cpu::loom::AtomicU64;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed};

const ASLEEP_MASK: u64 = (1 << 32) - 1;
const NAP: u64 = 1 << 32;
const WAKE: u64 = 1 << 33;

/// The sleep count, the nap bit and the wake count (module docs).
#[derive(Debug, Default)]
pub struct Nap {
    word: AtomicU64,
}

impl Nap {
    /// No worker asleep, the watchdog awake.
    pub fn new() -> Nap {
        Nap { word: AtomicU64::new(0) }
    }

    /// Worker side: it is about to sleep.
    #[inline]
    pub fn sleep_begins(&self) {
        // ORDERING: relaxed: publishes nothing; the word's modification
        // order alone decides the race with `try_nap` (module docs).
        self.word.fetch_add(1, Relaxed);
    }

    /// Worker side: its sleep ended. `true`: the watchdog was napping, and
    /// this caller must unpark it.
    #[inline]
    pub fn sleep_ends(&self) -> bool {
        // ORDERING: acquire pairs with the release exchange in `try_nap`, so
        // the caller sees the watchdog's thread handle set before it napped.
        let prev =
            self.word.fetch_update(AcqRel, Relaxed, |w| Some((w - 1).wrapping_add(WAKE) & !NAP)).unwrap_or_else(|w| w);
        prev & NAP != 0
    }

    /// Watchdog side: the word now, to pass to the next tick's `try_nap`.
    pub fn snapshot(&self) -> u64 {
        // ORDERING: relaxed: only compared by value (`try_nap`'s exchange).
        self.word.load(Relaxed)
    }

    /// Watchdog side: nap if `seen` (the previous tick's snapshot) is still
    /// the word and has all `workers` asleep. `true`: `NAP` is set; the
    /// caller parks until [`Nap::napping`] is false.
    pub fn try_nap(&self, seen: u64, workers: usize) -> bool {
        if seen & NAP != 0 || seen & ASLEEP_MASK != workers as u64 {
            return false;
        }
        // ORDERING: release publishes what the watchdog wrote before (its
        // thread handle) to the worker whose `sleep_ends` clears the bit.
        self.word.compare_exchange(seen, seen | NAP, AcqRel, Relaxed).is_ok()
    }

    /// Watchdog side: whether it should go on napping.
    pub fn napping(&self) -> bool {
        // ORDERING: acquire pairs with the clearing RMW of `sleep_ends`.
        self.word.load(Acquire) & NAP != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn naps_only_on_an_unchanged_word_with_everyone_asleep() {
        let n = Nap::new();
        n.sleep_begins();
        let one = n.snapshot();
        assert!(!n.try_nap(one, 2), "one of two asleep");
        n.sleep_begins();
        let two = n.snapshot();
        assert!(!n.try_nap(one, 2), "the word moved since");
        // A worker wakes and sleeps again between two ticks: same count,
        // but the wake count moved, so no nap on the stale snapshot.
        assert!(!n.sleep_ends());
        n.sleep_begins();
        assert!(!n.try_nap(two, 2));
        let again = n.snapshot();
        assert!(n.try_nap(again, 2));
        assert!(n.napping());
        assert!(!n.try_nap(n.snapshot(), 2), "already napping");
        // The first to wake clears the bit and is told to unpark; the
        // second is not.
        assert!(n.sleep_ends());
        assert!(!n.napping());
        assert!(!n.sleep_ends());
        assert_eq!(n.snapshot() & ASLEEP_MASK, 0);
    }

    #[test]
    fn the_wake_count_wraps() {
        let n = Nap { word: AtomicU64::new(!(NAP | ASLEEP_MASK)) };
        n.sleep_begins();
        assert!(!n.sleep_ends());
        assert_eq!(n.snapshot(), 0);
    }
}
