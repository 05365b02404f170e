//! # Per-worker uthread timeouts, on the timing wheel
//!
//! A uthread that blocks with a deadline (`park_timeout`, `sleep`, a timed
//! `tsleep` or `wait_msg`, ...) arms a timer on the worker it parks on
//! (`uthread/block.rs`) and, when it runs again, cancels it. The timers of
//! one worker are a [`Wheel`] (`wheel.rs`: O(1) insert and cancel, which is
//! the hot path, since almost every timed wait is woken before its
//! timeout), owned by that worker alone.
//!
//! ## Time and precision
//!
//! A deadline `Instant` becomes a wheel tick once, at arming: the first tick
//! (of `2^TICK_SHIFT` ns, about 262 µs, counted from the worker's epoch)
//! that starts at or after it. The loop fires what is due by the clock's
//! tick, and an idle worker sleeps until the earliest tick's start. So a
//! timeout is never early, and at most one tick late, plus however late
//! the worker's pass comes (a busy worker's pass, or the futex's own
//! slack). (It was a binary heap of exact `Instant`s: one tick less precise,
//! and no more `O(log n)` arming and a heap sweep for early wake-ups.)
//! Callers that must not return early (`sleep`) re-check the clock anyway.
//!
//! ## Stale entries
//!
//! Arming records `(worker, seq)` in the uthread (`Thread::arm_timer`); an
//! entry whose pair no longer matches is stale and fires nothing. A uthread
//! that resumes on the worker it armed on cancels its entry by key at once;
//! one that was moved meanwhile (`give_to`) asks the old worker to cancel it
//! ([`cancel_on`], an IPI), so the entry does not hold the record alive
//! until its deadline. Until that IPI is handled the entry is stale: firing
//! it is skipped, or at worst a spurious wake-up, which every waiter
//! tolerates. (A key that went stale meanwhile cancels nothing.)

use super::wheel::{tick_ceil, tick_floor, tick_start, Key, Wheel};
use crate::kernel::{Msg, RuntimeState};
use crate::uthread::record::Thread;
use percore_cpu::loom::Arc;
use std::time::{Duration, Instant};

/// One worker's uthread timeouts.
pub(crate) struct Timers {
    /// `(seq, uthread)` by deadline tick. NOTE: boxed: the wheel's slot
    /// heads are about 1.6 KiB, which inline would push the worker's hot
    /// fields (current, crit, resched, ...) onto more cache lines on every
    /// switch.
    wheel: Box<Wheel<(u64, Arc<Thread>)>>,
    /// The last arming's sequence number (0: never armed).
    seq: u64,
    /// Tick 0 of the wheel: the worker's start.
    epoch: Instant,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { wheel: Box::new(Wheel::new()), seq: 0, epoch: Instant::now() }
    }
}

impl Timers {
    /// Nanoseconds from the epoch to `t` (0 before it, saturating).
    #[inline]
    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Arm `thread`'s timer for `at` on worker `worker` (replacing its
    /// previous one, which goes stale). Returns the key that cancels it.
    pub(crate) fn add(&mut self, worker: usize, at: Instant, thread: Arc<Thread>) -> Key {
        self.seq += 1;
        let seq = self.seq;
        thread.arm_timer(worker, seq);
        let when = tick_ceil(self.nanos(at));
        self.wheel.insert(when, (seq, thread)).0
    }

    /// Cancel the entry of `key` (nothing if it fired already).
    #[inline]
    pub(crate) fn cancel(&mut self, key: Key) {
        drop(self.wheel.remove(key));
    }

    /// The next expired, still armed timer's uthread.
    pub(crate) fn pop_due(&mut self, worker: usize, now: Instant) -> Option<Arc<Thread>> {
        let now = tick_floor(self.nanos(now));
        while let Some((seq, thread)) = self.wheel.pop_due(now) {
            if thread.timer_armed(worker, seq) {
                return Some(thread);
            }
        }
        None
    }

    /// How long from `now` until the earliest entry may be due (stale ones
    /// included: an early wake-up is harmless); `None` when there is none.
    pub(crate) fn next_in(&self, now: Instant) -> Option<Duration> {
        let start = tick_start(self.wheel.next_deadline()?);
        Some(Duration::from_nanos(start.saturating_sub(self.nanos(now))))
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }

    /// Drop every entry (shutdown).
    pub(crate) fn clear(&mut self) {
        *self.wheel = Wheel::new();
    }
}

/// Cancel the timer `key` on worker `armed_on` of `shared`, from another
/// worker: the entry belongs to `armed_on`'s wheel, so the cancel runs
/// there, in an IPI. Allocates one small closure; only a uthread that was
/// given away while its timer was armed comes here. At shutdown the IPI is
/// refused and the wheel goes with its worker.
pub(crate) fn cancel_on(shared: &Arc<RuntimeState>, armed_on: usize, key: Key) {
    let cancel = move || {
        if let Some(w) = super::current_worker() {
            w.cancel_timer(key);
        }
    };
    super::ipi::send(shared, armed_on, Msg::Run(Box::new(cancel)));
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::runtime::Runtime;
    use crate::worker::wheel::TICK_SHIFT;

    #[test]
    fn never_early_cancelled_and_stale_entries_fire_nothing() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let t = Arc::new(Thread::new(1, None, rt.handle().shared.clone(), 0, 16, None));
        let mut tm = Timers::default();
        let at = tm.epoch + Duration::from_millis(1);
        tm.add(0, at, t.clone());
        // Not before the deadline, nor before the start of its tick.
        let tick = Duration::from_nanos(tick_start(tick_ceil(1_000_000)));
        assert!(
            tick >= Duration::from_millis(1) && tick < Duration::from_millis(1) + Duration::from_nanos(1 << TICK_SHIFT)
        );
        assert!(tm.pop_due(0, at - Duration::from_nanos(1)).is_none());
        assert!(tm.next_in(tm.epoch).is_some_and(|d| d >= Duration::from_millis(1)));
        assert!(tm.pop_due(0, tm.epoch + tick).is_some_and(|u| Arc::ptr_eq(&u, &t)));
        assert!(tm.is_empty());
        // Cancelled: gone.
        let k = tm.add(0, at, t.clone());
        tm.cancel(k);
        assert!(tm.is_empty());
        // Re-armed: the first entry is stale and fires nothing.
        tm.add(0, at, t.clone());
        tm.add(0, at + Duration::from_millis(1), t.clone());
        let later = tm.epoch + Duration::from_secs(1);
        assert!(tm.pop_due(0, later).is_some());
        assert!(tm.pop_due(0, later).is_none());
        assert!(tm.is_empty());
    }
}
