//! `PerSlot<T>`: one cache-line padded value per CPU or participant.

use crossbeam_utils::CachePadded;
use std::ops::Index;

/// A fixed-size array of values, each on its own cache line.
///
/// The kernel's per-CPU data (`zpcpu_get`, DragonFly's `globaldata`): slot `i`
/// is written by its owner and read by anybody, and no two slots share a cache
/// line, so owners never slow each other down.
///
/// ```
/// use percore_cpu::PerSlot;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let hits: PerSlot<AtomicU64> = PerSlot::new(4, |_| AtomicU64::new(0));
/// hits[2].fetch_add(5, Ordering::Relaxed);
/// let total: u64 = hits.iter().map(|h| h.load(Ordering::Relaxed)).sum();
/// assert_eq!(total, 5);
/// assert_eq!(hits.len(), 4);
/// ```
pub struct PerSlot<T> {
    slots: Box<[CachePadded<T>]>,
}

impl<T> PerSlot<T> {
    /// `n` slots, slot `i` initialised with `init(i)`.
    pub fn new(n: usize, mut init: impl FnMut(usize) -> T) -> Self {
        PerSlot { slots: (0..n).map(|i| CachePadded::new(init(i))).collect() }
    }

    /// One slot per CPU the process may run on (see [`crate::allowed_cpus`]),
    /// indexed by position in that list.
    pub fn per_cpu(init: impl FnMut(usize) -> T) -> Result<Self, crate::Error> {
        Ok(Self::new(crate::allowed_cpus()?.len(), init))
    }

    /// The number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slot `i`, or `None` when out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i).map(|s| &**s)
    }

    /// Every slot, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.slots.iter().map(|s| &**s)
    }
}

impl<T> Index<usize> for PerSlot<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.slots[i]
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PerSlot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_share_cache_lines() {
        let s = PerSlot::new(3, |i| i as u8);
        let a = s.get(0).unwrap() as *const u8 as usize;
        let b = s.get(1).unwrap() as *const u8 as usize;
        assert!(b - a >= 64);
        assert_eq!(s[2], 2);
        assert!(s.get(3).is_none());
        assert!(!s.is_empty());
    }
}
