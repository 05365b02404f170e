//! Per-worker timers: a binary heap of deadlines, one armed timer per uthread.
//!
//! A uthread arms a timer on the worker it parks on (`park_current` with a
//! deadline) and disarms it when it resumes. Arming records `(worker, seq)`
//! in the uthread (`Thread::arm_timer`); a heap entry whose pair no longer
//! matches is stale: it is skipped when it expires, and swept out when the
//! heap has doubled since the last sweep, so uthreads woken long before their
//! timeout do not grow the heap without bound. A uthread that migrates keeps
//! its entry on the old worker; firing it unparks the uthread wherever it is.

use crate::uthread::record::Thread;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

struct Entry {
    at: Instant,
    seq: u64,
    thread: Arc<Thread>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Entry) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    sweep_at: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), seq: 0, sweep_at: 1024 }
    }
}

impl Timers {
    /// Arm `thread`'s timer for `at` on worker `worker` (replacing its
    /// previous one, which goes stale).
    pub(crate) fn add(&mut self, worker: usize, at: Instant, thread: Arc<Thread>) {
        self.seq += 1;
        let seq = self.seq;
        thread.arm_timer(worker, seq);
        self.heap.push(Reverse(Entry { at, seq, thread }));
        if self.heap.len() >= self.sweep_at {
            self.heap.retain(|Reverse(e)| e.thread.timer_armed(worker, e.seq));
            self.sweep_at = (self.heap.len() * 2).max(1024);
        }
    }

    /// The next expired, still armed timer's uthread.
    pub(crate) fn pop_due(&mut self, worker: usize, now: Instant) -> Option<Arc<Thread>> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.at > now {
                return None;
            }
            let Reverse(e) = self.heap.pop()?;
            if e.thread.timer_armed(worker, e.seq) {
                return Some(e.thread);
            }
        }
        None
    }

    /// The earliest deadline (stale entries included: an early wake-up is
    /// harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}
