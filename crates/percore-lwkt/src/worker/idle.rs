//! # Worker sleep and wake-up: one word, no lost wake-ups
//!
//! A worker with nothing to run must sleep, and a sender that queued an IPI
//! for it must wake it, but only when it really sleeps: a wake-up is a system
//! call, far dearer than the message. All of it is decided on one 32-bit word
//! per worker:
//!
//! | bit | name | set by | cleared by |
//! | --- | --- | --- | --- |
//! | 0 | `PENDING` | a sender, after pushing a message | the worker, before draining |
//! | 1 | `SLEEPING` | the worker, about to sleep | the worker, after waking |
//! | 2 | `POLLING` | the worker, with `SLEEPING`, when it sleeps in its kernel epoll instead of the futex | the worker, after waking |
//!
//! * Sender ([`Idle::notify`]): push the message, then `fetch_or(PENDING)`.
//!   If the old value was `SLEEPING` without `PENDING`, this sender is the
//!   one that must `futex_wake` the worker (later senders see `PENDING` and
//!   skip the system call).
//! * Worker at a scheduling point ([`Idle::take_pending`]): if `PENDING` is
//!   set, `swap(0)` then drain every inbox.
//! * Worker going to sleep ([`Idle::sleep`]): `compare_exchange(0,
//!   SLEEPING)`; it fails if a message arrived since the last drain, and the
//!   worker drains instead. Otherwise `futex_wait(word, SLEEPING)`: the kernel
//!   re-checks the word, so a `PENDING` set in between makes it return at once.
//!   On return the worker clears `SLEEPING`.
//!
//! ## Why no wake-up is lost
//!
//! Every transition is a read-modify-write of the same word, so they are
//! totally ordered. Take a message `m` pushed before its sender's `fetch_or`.
//! If the `fetch_or` comes before the worker's `compare_exchange`, the
//! exchange fails (`PENDING` is set) and the worker drains. If it comes after,
//! it sees `SLEEPING` and either the futex wait has not compared yet (it will
//! see `PENDING` and not sleep) or the sender's `futex_wake` wakes it. The
//! drain after `swap(0)` sees `m`: the swap reads a value at or after the
//! sender's `fetch_or`, whose release orders the push before it (acquire on
//! the swap). `tests/loom_idle.rs` checks exactly this.
//!
//! ## Two ways to sleep
//!
//! Without an I/O driver (`driver/mod.rs`) a worker sleeps on the futex. With
//! one, it sleeps in `epoll_wait` on its own epoll instance, so that I/O
//! readiness wakes it too; it then sets `SLEEPING | POLLING` in the same
//! `compare_exchange`, and the sender that sees exactly that value must kick
//! the worker's eventfd instead of the futex ([`Notified::Poller`]). Which
//! primitive to wake is thus read from the same word as whether to wake, so
//! a worker that switches from one to the other cannot miss a wake-up.
//!
//! The worker spins a bounded number of short rounds before it sleeps
//! (`worker::SPIN_ROUNDS` of a few `spin_loop` hints, checking for work
//! after each): a message that arrives during the spin costs no
//! system call on either side.

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use crate::sys::Futex;
use percore_cpu::loom::AtomicU32;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed};
use std::time::Duration;

const PENDING: u32 = 1;
const SLEEPING: u32 = 2;
const POLLING: u32 = 4;

/// What [`Idle::notify`] did, or left for its caller to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notified {
    /// The worker was awake (or another sender wakes it): nothing to do.
    Awake,
    /// The worker slept on the futex; this call woke it.
    Futex,
    /// The worker sleeps in its epoll instance: the caller must kick it.
    Poller,
}

/// The per-worker sleep / pending word and its futex.
#[derive(Debug)]
pub struct Idle {
    state: AtomicU32,
    futex: Futex,
}

impl Default for Idle {
    fn default() -> Self {
        Self::new()
    }
}

impl Idle {
    /// Awake, nothing pending.
    pub fn new() -> Self {
        Idle { state: AtomicU32::new(0), futex: Futex::new() }
    }

    /// Sender side: a message was pushed; wake the worker if it sleeps on
    /// the futex, or tell the caller to kick its poller.
    #[inline]
    pub fn notify(&self) -> Notified {
        // ORDERING: release publishes the message pushed before this call to
        // the worker's acquire `swap` in `take_pending`; acquire is not
        // needed, but an RMW is (see the module essay), so AcqRel.
        let prev = self.state.fetch_or(PENDING, AcqRel);
        if prev == SLEEPING {
            self.futex.wake(&self.state);
            return Notified::Futex;
        }
        if prev == SLEEPING | POLLING {
            return Notified::Poller;
        }
        Notified::Awake
    }

    /// Worker side: whether messages may be pending (and if so, the flag is
    /// consumed: the caller must drain every inbox now).
    #[inline]
    pub fn take_pending(&self) -> bool {
        // ORDERING: relaxed: a first look; the acquire `fetch_and` below is what orders the drain.
        if self.state.load(Relaxed) & PENDING == 0 {
            return false;
        }
        // ORDERING: acquire pairs with the release `fetch_or` in `notify`, so
        // the drain that follows sees the pushed message.
        self.state.fetch_and(!PENDING, Acquire);
        true
    }

    /// Worker side: whether a message is pending, without consuming it.
    #[inline]
    pub fn peek_pending(&self) -> bool {
        // ORDERING: relaxed: a hint for the spin; `take_pending` acquires.
        self.state.load(Relaxed) & PENDING != 0
    }

    /// Worker side: sleep until notified or `timeout`. Returns `false`
    /// without sleeping when a message is already pending (then the caller
    /// drains). Spurious returns are possible.
    pub fn sleep(&self, timeout: Option<Duration>) -> bool {
        // ORDERING: relaxed: no data is published by going to sleep; the
        // word's modification order alone decides the race (module essay).
        if self.state.compare_exchange(0, SLEEPING, Relaxed, Relaxed).is_err() {
            return false;
        }
        self.futex.wait(&self.state, SLEEPING, timeout);
        // ORDERING: acquire, so that a message whose `PENDING` we now see is
        // visible even if the caller skips `take_pending`'s own acquire.
        self.state.fetch_and(!SLEEPING, Acquire);
        true
    }

    /// Worker side: like [`Idle::sleep`], but the sleep itself is `wait`
    /// (an `epoll_wait` that a sender ends by kicking the worker's eventfd
    /// after [`Notified::Poller`]). Returns `false` without calling `wait`
    /// when a message is already pending.
    pub fn sleep_polling(&self, wait: impl FnOnce()) -> bool {
        // ORDERING: as in `sleep`.
        if self.state.compare_exchange(0, SLEEPING | POLLING, Relaxed, Relaxed).is_err() {
            return false;
        }
        wait();
        // ORDERING: as in `sleep`.
        self.state.fetch_and(!(SLEEPING | POLLING), Acquire);
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pending_blocks_sleep_and_is_consumed() {
        let i = Idle::new();
        assert!(!i.peek_pending());
        assert_eq!(i.notify(), Notified::Awake); // awake: no system call
        assert!(i.peek_pending());
        assert!(!i.sleep(None)); // pending: refuses to sleep
        assert!(i.take_pending());
        assert!(!i.take_pending());
        assert!(i.sleep(Some(Duration::from_millis(1)))); // times out
    }

    #[test]
    fn polling_sleeper_asks_for_a_kick() {
        let i = Idle::new();
        let mut seen = None;
        assert!(i.sleep_polling(|| seen = Some(i.notify())));
        assert_eq!(seen, Some(Notified::Poller));
        assert!(!i.sleep_polling(|| unreachable!("pending: must not wait")));
        assert!(i.take_pending());
    }

    #[test]
    fn notify_wakes_a_sleeper() {
        let i = std::sync::Arc::new(Idle::new());
        let j = i.clone();
        let t = std::thread::spawn(move || {
            while !j.take_pending() {
                j.sleep(Some(Duration::from_secs(60)));
            }
        });
        i.notify();
        t.join().unwrap();
    }
}
