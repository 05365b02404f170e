//! Per-pool statistics, published in percore's stats tree under
//! `pool.<name>.<counter>`.
//!
//! Counters are [`percore_cpu::Counter`]s (sharded, relaxed adds); gauges are
//! relaxed atomics written under the pool lock. None of them orders anything:
//! they are read by people and by tests that first quiesce the pool.

use percore_cpu::stats::Emit;
use percore_cpu::Counter;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The live counters of one pool.
#[derive(Debug, Default)]
pub(crate) struct PoolStats {
    pub(crate) jobs_run: Counter,
    pub(crate) panics: Counter,
    pub(crate) handoffs: Counter,
    pub(crate) threads_created: Counter,
    pub(crate) threads_exited: Counter,
    pub(crate) spawn_errors: Counter,
    pub(crate) pin_errors: Counter,
    pub(crate) shutdown_cancelled: Counter,
    pub(crate) cancelled: Counter,
    priority_applied: Counter,
    priority_refused: Counter,
    threads: AtomicUsize,
    idle: AtomicUsize,
}

impl PoolStats {
    // ORDERING (all gauges): statistics written under the pool lock and read
    // racily; they pair with nothing.
    pub(crate) fn set_idle(&self, n: usize) {
        self.idle.store(n, Ordering::Relaxed);
    }

    pub(crate) fn set_threads(&self, n: usize) {
        self.threads.store(n, Ordering::Relaxed);
    }

    pub(crate) fn priority_result(&self, applied: bool) {
        if applied {
            self.priority_applied.inc();
        } else {
            self.priority_refused.inc();
        }
    }

    /// A copy of every value.
    pub(crate) fn snapshot(&self) -> Stats {
        let threads = self.threads.load(Ordering::Relaxed);
        let idle = self.idle.load(Ordering::Relaxed);
        Stats {
            jobs_run: self.jobs_run.sum(),
            panics: self.panics.sum(),
            handoffs: self.handoffs.sum(),
            threads_created: self.threads_created.sum(),
            threads_exited: self.threads_exited.sum(),
            spawn_errors: self.spawn_errors.sum(),
            pin_errors: self.pin_errors.sum(),
            cancelled: self.cancelled.sum(),
            shutdown_cancelled: self.shutdown_cancelled.sum(),
            priority_applied: self.priority_applied.sum(),
            priority_refused: self.priority_refused.sum(),
            threads: threads as u64,
            idle_threads: idle as u64,
            busy_threads: threads.saturating_sub(idle) as u64,
        }
    }

    /// Register in the stats tree under `pool.<name>`.
    pub(crate) fn register(self: &std::sync::Arc<Self>, name: &str) -> percore_cpu::stats::Registration {
        percore_cpu::stats::register_source(&format!("pool.{name}"), self.clone())
    }
}

/// The pool's source in the stats tree: a [`Stats`] snapshot, field by field.
impl Emit for PoolStats {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        self.snapshot().emit(emit);
    }
}

percore_cpu::stats_struct! {
    /// A snapshot of one pool's statistics ([`ThreadPool::stats`]).
    ///
    /// The same values appear in percore's stats tree as `pool.<name>.<field>`.
    ///
    /// [`ThreadPool::stats`]: crate::ThreadPool::stats
    ///
    /// ```
    /// let pool = percore_pool::ThreadPool::builder().name("doc-stats").build().unwrap();
    /// pool.spawn(|| ()).join().unwrap();
    /// pool.drain().unwrap();
    /// let s = pool.stats();
    /// assert_eq!(s.jobs_run, 1);
    /// assert!(s.threads_created >= 1);
    /// assert!(percore_cpu::stats::get("pool.doc-stats.jobs_run").is_some());
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Stats {
        /// Entries a worker took and ran (cancelled leftovers included).
        pub jobs_run: u64,
        /// Panics caught on pool threads: job functions and spawned closures that
        /// panicked, and destructors of user values the pool dropped (a detached
        /// result, a job's data, a cancelled closure's captures). No panic costs a
        /// worker.
        pub panics: u64,
        /// Schedules that found no idle worker and woke the overseer.
        pub handoffs: u64,
        /// Worker threads created by the overseer.
        pub threads_created: u64,
        /// Worker threads that exited (idle timeout or shutdown).
        pub threads_exited: u64,
        /// Worker creations the OS refused (retried after a pause).
        pub spawn_errors: u64,
        /// Workers of a per-CPU pool that could not be pinned.
        pub pin_errors: u64,
        /// Pending schedules removed by `cancel`/`cancel_async`.
        pub cancelled: u64,
        /// Delayed jobs cancelled because their pool shut down first.
        pub shutdown_cancelled: u64,
        /// Pool threads whose OS priority was set as asked.
        pub priority_applied: u64,
        /// Pool threads whose OS priority the OS refused to set (they run at the
        /// process's priority; the pool works all the same).
        pub priority_refused: u64,
        /// Live worker threads.
        pub threads: u64,
        /// Workers asleep waiting for work.
        pub idle_threads: u64,
        /// Workers not asleep (running a job, or looking for one): `threads -
        /// idle_threads`. Not tracked per job, to keep the hot path free of
        /// shared writes.
        pub busy_threads: u64,
    }
}
