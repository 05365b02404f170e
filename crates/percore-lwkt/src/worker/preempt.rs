//! # Preemption requests and their hit / miss counters
//!
//! DragonFly's `lwkt_schedule` calls `lwkt_preempt` when it makes a thread
//! of higher priority than the running one runnable; the switch happens at
//! once unless the running thread is in a critical section (or holds
//! tokens the new one needs), and `preempt_hit` / `preempt_miss` count
//! which. Scheduling here is cooperative, so a request is honoured at the
//! current uthread's next *scheduling point* instead, and the counters say
//! whether that happened.
//!
//! ## What is counted
//!
//! * **Request.** While uthread C runs on a worker, that worker enqueues a
//!   uthread U with `pri(U) > pri(C)` (a wake-up, a spawn, a priority
//!   change, a migration or give-away arriving). The worker sets `resched`
//!   (so C's next scheduling point switches) and, unless a request is already
//!   open, opens one; an open request remembers the highest priority woken.
//!   Enqueues done by the scheduler between two uthreads are no requests.
//! * **Hit** (`w<i>.preempt_hit`): C switches out (yield, block, migration,
//!   exit; at its next scheduling point, whatever C did before reaching it)
//!   and the next uthread the worker resumes has at least the requested
//!   priority: the woken one, or one as urgent.
//! * **Miss** (`w<i>.preempt_miss`): C reaches [`yield_now`](crate::yield_now)
//!   or [`maybe_yield`](crate::maybe_yield) inside a critical or SMR section,
//!   where it may not switch and keeps running; or C switches out and the
//!   next uthread resumed has a lower priority (the woken one was skipped for
//!   a contended token, given away, or lowered meanwhile).
//!
//! Each request is counted once, as a hit or a miss, when it is resolved;
//! a request still open is in neither counter. A uthread that never reaches
//! a scheduling point delays the resolution (the worker is cooperative; see
//! the crate documentation); it is not a miss.

use crate::worker::Worker;

impl Worker {
    /// A uthread of priority `pri`, higher than the current one's, was
    /// enqueued while the current one runs.
    #[inline]
    pub(crate) fn request_preempt(&self, pri: u8) {
        if self.preempt.get().is_none_or(|p| pri > p) {
            self.preempt.set(Some(pri));
        }
    }

    /// The worker resumes a uthread of priority `pri` with a request open.
    #[cold]
    pub(crate) fn resolve_preempt(&self, pri: u8) {
        if let Some(want) = self.preempt.take() {
            let s = &self.shared.workers[self.idx].stats;
            if pri >= want {
                s.preempt_hit.bump();
            } else {
                s.preempt_miss.bump();
            }
        }
    }

    /// The current uthread passed a scheduling point without switching.
    #[inline]
    pub(crate) fn preempt_missed(&self) {
        if self.preempt.take().is_some() {
            self.shared.workers[self.idx].stats.preempt_miss.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Builder, Runtime};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;

    fn counts(rt: &Runtime, w: usize) -> (u64, u64) {
        let s = &rt.handle().shared.workers[w].stats;
        (s.preempt_hit.get(), s.preempt_miss.get())
    }

    #[test]
    fn woken_higher_priority_runs_at_the_next_yield_hit() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let ran_first = rt
            .block_on(|| {
                let ran = Arc::new(AtomicBool::new(false));
                let r = ran.clone();
                let h = Builder::new().priority(20).spawn(move || r.store(true, SeqCst)).unwrap();
                let before = ran.load(SeqCst);
                crate::yield_now();
                let after = ran.load(SeqCst);
                h.join().unwrap();
                (before, after)
            })
            .unwrap();
        assert_eq!(ran_first, (false, true));
        assert_eq!(counts(&rt, 0), (1, 0));
    }

    #[test]
    fn maybe_yield_switches_at_once_for_a_higher_priority() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let after = rt
            .block_on(|| {
                let ran = Arc::new(AtomicBool::new(false));
                let r = ran.clone();
                let _h = Builder::new().priority(25).spawn(move || r.store(true, SeqCst)).unwrap();
                crate::maybe_yield(); // well within the quantum
                ran.load(SeqCst)
            })
            .unwrap();
        assert!(after);
        assert_eq!(counts(&rt, 0), (1, 0));
    }

    #[test]
    fn critical_section_scheduling_point_is_a_miss() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let seen = rt
            .block_on(|| {
                let ran = Arc::new(AtomicBool::new(false));
                let r = ran.clone();
                let c = crate::critical();
                let h = Builder::new().priority(20).spawn(move || r.store(true, SeqCst)).unwrap();
                crate::maybe_yield(); // refused: miss
                let inside = ran.load(SeqCst);
                drop(c);
                crate::yield_now(); // runs it now; the request is resolved
                let outside = ran.load(SeqCst);
                h.join().unwrap();
                (inside, outside)
            })
            .unwrap();
        assert_eq!(seen, (false, true));
        assert_eq!(counts(&rt, 0), (0, 1));
    }

    #[test]
    fn woken_one_given_away_is_a_miss() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let ran_on = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), || {
                let h = Builder::new().priority(20).spawn(crate::worker_index).unwrap();
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                unsafe { h.uthread().give_to(1) }.unwrap(); // queued: moves at once
                crate::yield_now(); // only we are left to run here
                h.join().unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ran_on, Some(1));
        assert_eq!(counts(&rt, 0), (0, 1));
    }

    #[test]
    fn counters_are_in_the_stats_tree() {
        let rt = Runtime::builder().workers(1).name("preempt-stats").build().unwrap();
        rt.block_on(|| {
            let h = Builder::new().priority(30).spawn(|| ()).unwrap();
            crate::yield_now();
            h.join().unwrap();
        })
        .unwrap();
        let s = percore_cpu::stats::with_prefix("lwkt.preempt-stats.");
        let get = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("lwkt.preempt-stats.w0.preempt_hit"), Some(1), "{s:?}");
        assert_eq!(get("lwkt.preempt-stats.w0.preempt_miss"), Some(0), "{s:?}");
    }
}
