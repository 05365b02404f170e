//! Buckets (magazines) and the depot that exchanges them.
//!
//! # Problem
//!
//! The fast path must not touch a shared cache line, so each participant
//! keeps free items in a private *bucket*; but items freed on one thread must
//! become allocatable on another, and a thread must not hoard memory. UMA
//! (and Bonwick's magazines before it) answer with a shared *depot*: a
//! participant whose bucket is full trades it for an empty one, a participant
//! whose bucket is empty trades it for a full one. One lock round-trip moves
//! a whole bucket, so the shared lock is taken once per `bucket size`
//! operations.
//!
//! # Mechanism
//!
//! ```text
//!   participant slot (private)                    depot (one mutex)
//!   +--------------------------+          +-------------------------------+
//!   | alloc bucket [x x x . .] | <-full-- | full:  [b0][b1][b2] ...       |
//!   | free  bucket [x x . . .] | --full-> |        head        tail (SMR) |
//!   +--------------------------+ <-empty- | empty: [e0][e1] ...           |
//!                                         | loose: one bucket for threads |
//!                                         |        that have no slot      |
//!                                         +-------------------------------+
//! ```
//!
//! * Plain zones keep `full` as a stack (push and pop at the head): the
//!   bucket freed last is the warmest in cache.
//! * SMR zones tag a full free bucket with `advance()` and append it at the
//!   *tail*; tags grow from head to tail, so the head is always the first to
//!   expire, and `alloc` looks only at the head. Buckets whose items are
//!   known to be safe (drained alloc buckets) carry no tag and go to the head.
//! * The bucket size adapts as in UMA: when `try_lock` on the depot fails the
//!   lock is contended, and new buckets are made one item larger, up to
//!   `BUCKET_MAX`; `reclaim` halves it again.
//!
//! # Who touches what
//!
//! A `Bucket` has exactly one owner at a time: a participant slot, the depot
//! (under its mutex), or a function that took it out of either. The depot's
//! fields are protected by its mutex; `size` is a heuristic read without it.

use crate::grace::Tag;
use crate::tuning::{BUCKET_MAX, BUCKET_MIN};
use percore_cpu::loom::{AtomicUsize, Mutex, MutexGuard, Ordering};
use std::collections::VecDeque;
use std::ptr::NonNull;

/// A fixed-capacity stack of free, constructed items.
pub(crate) struct Bucket<T> {
    len: usize,
    items: Box<[Option<NonNull<T>>]>,
    /// SMR zones: the write sequence that must expire before these items may
    /// be handed out again; `None` when they are safe now.
    pub(crate) tag: Option<Tag>,
}

impl<T> Bucket<T> {
    /// An empty bucket for `cap` items.
    pub(crate) fn new(cap: usize) -> Box<Bucket<T>> {
        Box::new(Bucket { len: 0, items: vec![None; cap.max(1)].into_boxed_slice(), tag: None })
    }

    /// Take the most recently pushed item.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NonNull<T>> {
        let i = self.len.checked_sub(1)?;
        self.len = i;
        self.items.get(i).copied().flatten()
    }

    /// Push `item`; gives it back when the bucket is full.
    #[inline]
    pub(crate) fn push(&mut self, item: NonNull<T>) -> Result<(), NonNull<T>> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(item);
                self.len += 1;
                Ok(())
            }
            None => Err(item),
        }
    }

    /// Number of items held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no item is held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether no more items fit.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len == self.items.len()
    }

    /// Capacity.
    pub(crate) fn cap(&self) -> usize {
        self.items.len()
    }

    /// The item array, the fill level and the capacity, for a [`Side`]
    /// that caches them.
    fn raw_parts(&mut self) -> (*mut Option<NonNull<T>>, usize, usize) {
        (self.items.as_mut_ptr(), self.len, self.items.len())
    }

    /// Take every item out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = NonNull<T>> + '_ {
        let n = std::mem::take(&mut self.len);
        self.tag = None;
        self.items[..n].iter_mut().filter_map(Option::take)
    }
}

/// One of a participant's two buckets, with its fill level and item array
/// cached beside the bucket pointer (UMA's `uma_cache_bucket`: `ucb_cnt`,
/// `ucb_entries`), so the fast path reads one cache line and the item.
///
/// While a bucket is held here, `len` is authoritative and the bucket's own
/// count is stale; [`Side::take`] writes it back before the bucket leaves.
pub(crate) struct Side<T> {
    /// Points into `bucket`'s item array (which a `Box` move does not move);
    /// null when there is no bucket.
    items: *mut Option<NonNull<T>>,
    len: usize,
    cap: usize,
    bucket: Option<Box<Bucket<T>>>,
    /// `len` when the slot's counters were last settled (see
    /// `Slot::slow`): the fast paths count nothing, the slow path derives
    /// their pops and pushes from how far `len` moved.
    base: usize,
}

impl<T> Side<T> {
    /// No bucket.
    pub(crate) const fn new() -> Side<T> {
        Side { items: std::ptr::null_mut(), len: 0, cap: 0, bucket: None, base: 0 }
    }

    /// Take the most recently pushed item.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NonNull<T>> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: `len < cap`, so a bucket is held and `items` points to its
        // array of `cap` entries; entries below the fill level are always
        // `Some` (every push writes `Some` before raising the level).
        unsafe { Some((*self.items.add(self.len)).unwrap_unchecked()) }
    }

    /// Push `item`; `false` when full or there is no bucket.
    #[inline]
    pub(crate) fn push(&mut self, item: NonNull<T>) -> bool {
        if self.len >= self.cap {
            return false;
        }
        // SAFETY: as in `pop`: `len < cap` entries.
        unsafe { *self.items.add(self.len) = Some(item) };
        self.len += 1;
        true
    }

    /// Items held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no item is held (also when there is no bucket).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items popped since the last `rebase` (an alloc side only pops).
    pub(crate) fn popped(&self) -> usize {
        self.base.saturating_sub(self.len)
    }

    /// Items pushed since the last `rebase` (a free side only pushes).
    pub(crate) fn pushed(&self) -> usize {
        self.len.saturating_sub(self.base)
    }

    /// Start counting afresh from the current level.
    pub(crate) fn rebase(&mut self) {
        self.base = self.len;
    }

    /// Whether a bucket is held.
    pub(crate) fn has_bucket(&self) -> bool {
        self.bucket.is_some()
    }

    /// Give the bucket up, with its count brought up to date.
    pub(crate) fn take(&mut self) -> Option<Box<Bucket<T>>> {
        let mut b = self.bucket.take()?;
        b.len = self.len;
        *self = Side::new();
        Some(b)
    }

    /// Hold `b`, giving back the bucket held before (if any).
    pub(crate) fn put(&mut self, mut b: Box<Bucket<T>>) -> Option<Box<Bucket<T>>> {
        let old = self.take();
        let (items, len, cap) = b.raw_parts();
        *self = Side { items, len, cap, bucket: Some(b), base: len };
        old
    }
}

/// The shared part: full and empty buckets behind one mutex.
pub(crate) struct Depot<T> {
    inner: Mutex<DepotInner<T>>,
    /// Capacity of newly made buckets (UMA's `uz_bucket_size`). Read without
    /// the lock; only a heuristic.
    size: AtomicUsize,
    /// Upper bound for `size` (smaller for zones with an item limit).
    max: usize,
}

/// The depot's lists. Protected by `Depot::inner`.
pub(crate) struct DepotInner<T> {
    /// Non-empty buckets. Plain zones: a stack at the front. SMR zones: tags
    /// non-decreasing from front to back, untagged buckets at the front.
    pub(crate) full: VecDeque<Box<Bucket<T>>>,
    /// Empty buckets ready for a participant whose free bucket is full.
    /// Boxed: buckets move between slots and the depot by pointer.
    #[allow(clippy::vec_box)]
    pub(crate) empty: Vec<Box<Bucket<T>>>,
    /// Items freed by threads without a slot collect here.
    pub(crate) loose: Option<Box<Bucket<T>>>,
    /// Items in `full` and `loose` (statistics).
    pub(crate) items: usize,
    /// Tagged buckets in `full` (statistics: "SMR buckets waiting").
    pub(crate) tagged: usize,
}

impl<T> Depot<T> {
    /// A depot whose buckets start at `start` (at most `max`) items.
    pub(crate) fn new(max: usize, start: usize) -> Depot<T> {
        let max = max.clamp(1, BUCKET_MAX);
        Depot {
            inner: Mutex::new(DepotInner {
                full: VecDeque::new(),
                empty: Vec::new(),
                loose: None,
                items: 0,
                tagged: 0,
            }),
            size: AtomicUsize::new(start.clamp(BUCKET_MIN.min(max), max)),
            max,
        }
    }

    /// Lock the depot; a failed `try_lock` means contention, and grows the
    /// bucket size (UMA's `ZONE_LOCK` with `uz_bucket_size++`).
    pub(crate) fn lock(&self) -> MutexGuard<'_, DepotInner<T>> {
        match self.inner.try_lock() {
            Some(g) => g,
            None => {
                let s = self.bucket_size();
                if s < self.max {
                    // ORDERING: a heuristic; a lost update costs one step of
                    // growth, nothing else depends on it.
                    self.size.store(s + 1, Ordering::Relaxed);
                }
                self.inner.lock()
            }
        }
    }

    /// Capacity for new buckets.
    #[inline]
    pub(crate) fn bucket_size(&self) -> usize {
        // ORDERING: see `lock`.
        self.size.load(Ordering::Relaxed)
    }

    /// Halve the bucket size (reclaim: memory is wanted back).
    pub(crate) fn shrink(&self) {
        let s = self.bucket_size();
        // ORDERING: see `lock`.
        self.size.store((s / 2).max(BUCKET_MIN.min(self.max)), Ordering::Relaxed);
    }
}

impl<T> DepotInner<T> {
    /// An empty bucket of capacity `size`, reused when one is at hand.
    pub(crate) fn take_empty(&mut self, size: usize) -> Box<Bucket<T>> {
        while let Some(b) = self.empty.pop() {
            if b.cap() >= size {
                return b;
            }
            // Too small since the bucket size grew: let it go.
        }
        Bucket::new(size)
    }

    /// Keep an empty bucket for later.
    pub(crate) fn put_empty(&mut self, b: Box<Bucket<T>>) {
        debug_assert!(b.is_empty());
        self.empty.push(b);
    }

    /// Store a non-empty bucket: tagged ones at the tail (SMR), others at
    /// the head.
    pub(crate) fn put_full(&mut self, b: Box<Bucket<T>>) {
        if b.is_empty() {
            return self.put_empty(b);
        }
        self.items += b.len();
        if b.tag.is_some() {
            self.tagged += 1;
            self.full.push_back(b);
        } else {
            self.full.push_front(b);
        }
    }

    /// Take the head bucket if `usable` says its tag allows reuse.
    pub(crate) fn take_full(&mut self, usable: impl FnOnce(&Tag) -> bool) -> Option<Box<Bucket<T>>> {
        let ok = match self.full.front()?.tag.as_ref() {
            None => true,
            Some(tag) => usable(tag),
        };
        if !ok {
            return None;
        }
        let mut b = self.full.pop_front()?;
        self.items -= b.len();
        if b.tag.take().is_some() {
            self.tagged -= 1;
        }
        Some(b)
    }

    /// The tag of the head bucket, if it has one.
    pub(crate) fn head_tag(&self) -> Option<Tag> {
        self.full.front().and_then(|b| b.tag)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bucket_push_pop_and_capacity() {
        let mut b = Bucket::<u8>::new(2);
        let mut x = 1u8;
        let mut y = 2u8;
        let px = NonNull::from(&mut x);
        let py = NonNull::from(&mut y);
        assert!(b.pop().is_none());
        b.push(px).unwrap();
        b.push(py).unwrap();
        assert!(b.is_full());
        assert_eq!(b.push(px), Err(px));
        assert_eq!(b.pop(), Some(py));
        assert_eq!(b.drain().count(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn plain_full_buckets_are_a_stack_and_tagged_ones_a_queue() {
        let d = Depot::<u8>::new(BUCKET_MAX, BUCKET_MIN);
        let mut items = [1u8, 2, 3];
        let mut g = d.lock();
        for it in items.iter_mut() {
            let mut b = Bucket::new(1);
            b.push(NonNull::from(it)).unwrap();
            g.put_full(b);
        }
        assert_eq!(g.items, 3);
        // Untagged: last in, first out.
        let b = g.take_full(|_| false).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(g.items, 2);
        assert!(g.head_tag().is_none());
    }

    #[test]
    fn reclaim_shrinks_the_bucket_size_but_not_below_the_minimum() {
        let d = Depot::<u8>::new(BUCKET_MAX, BUCKET_MIN);
        let start = d.bucket_size();
        d.size.store(start * 4, Ordering::Relaxed);
        d.shrink();
        assert_eq!(d.bucket_size(), start * 2);
        for _ in 0..10 {
            d.shrink();
        }
        assert_eq!(d.bucket_size(), BUCKET_MIN);
    }
}
