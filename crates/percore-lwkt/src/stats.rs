//! Per-worker counters, published in the stats tree as
//! `lwkt.<runtime>.w<i>.<counter>` (with `lwkt.<runtime>.foreign_ipis` and
//! `lwkt.<runtime>.port_full_drops`: the runtime state's [`Emit`] in
//! `kernel.rs`), through `percore_cpu`'s stats helper.

use percore_cpu::stats::Value;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// A counter written by one thread (its worker) and read by anyone: a plain
/// load and store, no read-modify-write.
#[derive(Debug, Default)]
pub(crate) struct Stat(AtomicU64);

impl Stat {
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // ORDERING: relaxed: a statistic; single writer, so load + store
        // loses nothing.
        // ORDERING: relaxed: a statistic.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub(crate) fn set(&self, v: u64) {
        // ORDERING: relaxed: a statistic, single writer.
        self.0.store(v, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        // ORDERING: relaxed: a statistic read racily; pairs with nothing.
        self.0.load(Relaxed)
    }
}

impl Value for Stat {
    fn value(&self) -> u64 {
        self.get()
    }
}

percore_cpu::stats_struct! {
    /// One worker's counters; every field is written by that worker only (but
    /// `stalls`: see there). One key per field, named as the field.
    #[derive(Debug, Default)]
    pub(crate) struct WorkerStats {
        /// Uthreads resumed.
        pub(crate) switches: Stat,
        /// IPIs this worker pushed on other workers' rings.
        pub(crate) ipis_sent: Stat,
        /// IPIs this worker drained (from workers and foreign threads).
        pub(crate) ipis_received: Stat,
        /// Sleeps of the idle loop (on the futex, or in epoll with a driver).
        pub(crate) idle_sleeps: Stat,
        /// Blocked uthreads made runnable here.
        pub(crate) wakeups: Stat,
        /// Uthreads skipped because a token was contended.
        pub(crate) token_contended: Stat,
        /// IPI functions that panicked (caught).
        pub(crate) ipi_panics: Stat,
        /// Descheduled uthreads this worker gave to another (`Uthread::give_to`).
        pub(crate) given_away: Stat,
        /// Preemption requests resolved by running a uthread of the requested
        /// priority next (`worker/preempt.rs` says exactly what counts).
        pub(crate) preempt_hit: Stat,
        /// Preemption requests that were not (`worker/preempt.rs`).
        pub(crate) preempt_miss: Stat,
        /// Run-queue length at the last scheduling decision.
        pub(crate) runq_len: Stat,
        /// Stacks in the cache.
        pub(crate) cached_stacks: Stat,
        /// Spawns here that reused the record of an exited uthread instead
        /// of allocating one (`Worker::recycle`).
        pub(crate) reused_records: Stat,
        /// Readiness events from the worker's epoll instance handed to the driver.
        pub(crate) io_events: Stat,
        /// Uthreads that exited inside a critical section (a `crit_enter`
        /// without `crit_exit`, a forgotten `critical()` guard); their count was
        /// reset so that it cannot leak into later uthreads.
        pub(crate) crit_leaks: Stat,
        /// Times the watchdog saw this worker run one uthread for longer than
        /// its threshold without a scheduling point (`worker/watchdog.rs`); written by
        /// the monitor thread only.
        pub(crate) stalls: Stat,
        /// Times the watchdog saw this worker's heartbeat stand still for
        /// longer than its threshold while a uthread ran, but the kernel
        /// had kept the OS thread waiting on a run queue for most of it (an
        /// overloaded machine), so it was not counted as a stall; written
        /// by the monitor thread only.
        pub(crate) descheduled: Stat,
        /// `yield_now` calls refused (no-ops) inside a critical or SMR section.
        pub(crate) yields_refused: Stat,
    }
}
