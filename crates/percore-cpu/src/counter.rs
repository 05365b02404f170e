//! `Counter`: FreeBSD's `counter(9)`, a sharded 64-bit event counter.

use crate::PerSlot;
use std::sync::atomic::{AtomicU64, Ordering};

/// A 64-bit event counter whose adds do not contend.
///
/// Each thread adds to the shard picked by [`crate::thread_index`]; [`sum`]
/// adds the shards up. Shards are cache-line padded, so threads on different
/// shards never bounce a line. There are at least as many shards as CPUs
/// (rounded up to a power of two, at least 4, at most 64).
///
/// Counters are statistics: adds are `Relaxed`, and a sum taken while others
/// add is a value the counter had at some instant during the sum, no more.
///
/// [`sum`]: Counter::sum
///
/// ```
/// let c = percore_cpu::Counter::new();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| (0..1000).for_each(|_| c.inc()));
///     }
/// });
/// assert_eq!(c.sum(), 4000);
/// ```
pub struct Counter {
    shards: PerSlot<AtomicU64>,
    mask: usize,
}

fn shard_count() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.next_power_of_two().clamp(4, 64)
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        let n = shard_count();
        Counter { shards: PerSlot::new(n, |_| AtomicU64::new(0)), mask: n - 1 }
    }

    /// Add `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        let shard = &self.shards[crate::thread_index() & self.mask];
        // ORDERING: a statistic; it orders nothing and is read with `sum`.
        shard.fetch_add(n, Ordering::Relaxed);
    }

    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The total of all adds so far.
    pub fn sum(&self) -> u64 {
        // ORDERING: statistics; see the type's documentation.
        self.shards.iter().map(|s| s.load(Ordering::Relaxed)).fold(0, u64::wrapping_add)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Counter").field(&self.sum()).finish()
    }
}
