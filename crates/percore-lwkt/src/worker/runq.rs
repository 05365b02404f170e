//! The per-worker run queue: fixed priorities, round robin within one.
//!
//! DragonFly keeps one sorted list (`_lwkt_enqueue` inserts behind every
//! thread of higher or equal priority), so the head is always the best
//! choice. We keep one FIFO per priority and a bitmap of non-empty levels:
//! same order, O(1) insert and pick. Only the owning worker touches it.
//!
//! Each level is a `Ring`, a ring whose capacity is a power of two, so a
//! slot index is one mask of a free-running counter. (It was a `VecDeque`,
//! whose wrap is a compare and a conditional move at each end and whose
//! slots are bounds-checked: the ring took a yield, one push and one pop,
//! from 250 to 242 callgrind instructions; issue 15, docs/BENCHMARKS.md.)
//! It grows by doubling and never shrinks, like the `VecDeque` did.
//!
//! ```text
//!   slots (cap 8):  [ -  -  c  d  e  -  -  - ]     head = 10, len = 3
//!                          ^ head & 7 = 2          order: c d e
//!   push_back  x -> slot (head + len) & 7 = 5
//!   push_front y -> head = 9, slot 9 & 7 = 1
//! ```
//!
//! `head` wraps at `usize::MAX + 1`, a multiple of every capacity, so the
//! masked index stays in order across the wrap.

use crate::uthread::record::{Owned, Thread};
use std::mem::MaybeUninit;
use std::sync::Arc;

/// Number of priority levels (0 = lowest).
pub(crate) const LEVELS: usize = 32;
// NOTE: every priority is checked against `MAX_PRIORITY` where it enters
// (the builder, `set_priority`, `Uthread::set_priority`), so masking a
// priority with `LEVELS - 1` (`level`) never changes it.
const _: () = assert!(LEVELS == crate::MAX_PRIORITY as usize + 1 && LEVELS.is_power_of_two());

/// The capacity a level's ring starts with at its first push.
const FIRST_CAP: usize = 4;

/// One priority level: a FIFO ring (module doc), for `Arc<Thread>` here and
/// for plain values in its unit test.
///
/// Invariants, kept by every method: `slots.len()` (the capacity) is 0 or a
/// power of two, and at least `len`; the slots `at(i)` for `i < len` are
/// initialised and hold the queue in order; the others are not.
struct Ring<T> {
    slots: Box<[MaybeUninit<T>]>,
    /// Free-running index of the first element (masked on use).
    head: usize,
    len: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring { slots: Box::new([]), head: 0, len: 0 }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

impl<T> Ring<T> {
    /// The slot of the `i`-th element. Below the capacity whenever the
    /// capacity is not 0 (a power of two, masked).
    #[inline(always)]
    fn at(&self, i: usize) -> usize {
        self.head.wrapping_add(i) & self.slots.len().wrapping_sub(1)
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: `i < len <= capacity`, so the capacity is not 0 and
        // `at(i)` is below it; the slot of an `i < len` is initialised.
        Some(unsafe { self.slots.get_unchecked(self.at(i)).assume_init_ref() })
    }

    #[inline]
    fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let i = self.at(0);
        self.head = self.head.wrapping_add(1);
        self.len -= 1;
        // SAFETY: the ring was not empty, so `i` (the first element's slot)
        // is in bounds and initialised; moving `head` past it made it
        // uninitialised for the invariant, so it is read exactly once.
        Some(unsafe { self.slots.get_unchecked(i).assume_init_read() })
    }

    #[inline]
    fn push_back(&mut self, v: T) {
        if self.len >= self.slots.len() {
            self.grow();
        }
        let i = self.at(self.len);
        // SAFETY: `len < capacity` (grown above), so `i` is in bounds, and
        // it is the slot after the last element: not initialised.
        unsafe { self.slots.get_unchecked_mut(i).write(v) };
        self.len += 1;
    }

    #[inline]
    fn push_front(&mut self, v: T) {
        if self.len >= self.slots.len() {
            self.grow();
        }
        self.head = self.head.wrapping_sub(1);
        let i = self.at(0);
        // SAFETY: `len < capacity` (grown above), so `i` is in bounds, and
        // it is the slot before the first element: not initialised.
        unsafe { self.slots.get_unchecked_mut(i).write(v) };
        self.len += 1;
    }

    /// Remove the `i`-th element, closing the gap (the later ones move up).
    fn remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        // NOTE: every `j < len` has its slot `at(j)` in bounds and
        // initialised. The `i`-th is read out first; then each later one is
        // moved into the slot just vacated before it (nothing runs in
        // between that could see the gap: moves are plain copies), and the
        // last slot, moved from, leaves the queue with `len`.
        // SAFETY: `i < len`, see the note: read once, its slot then refilled
        // or dropped from the queue.
        let v = unsafe { self.slots.get_unchecked(self.at(i)).assume_init_read() };
        for j in i + 1..self.len {
            let (from, to) = (self.at(j), self.at(j - 1));
            // SAFETY: `j < len`, see the note: read once, then its slot is
            // refilled (next round) or leaves the queue (the last one).
            let m = unsafe { self.slots.get_unchecked(from).assume_init_read() };
            // SAFETY: `j - 1 < len`, in bounds; its value was moved out
            // (read above or in the previous round), so nothing is lost.
            unsafe { self.slots.get_unchecked_mut(to).write(m) };
        }
        self.len -= 1;
        Some(v)
    }

    /// Double the capacity (at least `FIRST_CAP`), keeping the order;
    /// `head` restarts at 0.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(FIRST_CAP);
        let mut slots = Box::<[T]>::new_uninit_slice(cap);
        for (j, s) in slots.iter_mut().take(self.len).enumerate() {
            // SAFETY: `j < len`: the slot is in bounds and initialised; it is
            // moved once, and the old slots are freed without dropping
            // (`MaybeUninit`).
            s.write(unsafe { self.slots.get_unchecked(self.at(j)).assume_init_read() });
        }
        self.slots = slots;
        self.head = 0;
    }
}

/// The level of priority `pri` (at most `MAX_PRIORITY`, so this is `pri`):
/// an index without a bounds check.
#[inline(always)]
fn level(pri: u8) -> usize {
    debug_assert!(pri <= crate::MAX_PRIORITY);
    pri as usize & (LEVELS - 1)
}

#[derive(Default)]
pub(crate) struct RunQueue {
    levels: [Ring<Arc<Thread>>; LEVELS],
    /// Bit `p` set iff `levels[p]` is non-empty.
    mask: u32,
    len: usize,
}

impl RunQueue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Highest non-empty priority.
    #[inline]
    pub(crate) fn top(&self) -> Option<u8> {
        if self.mask == 0 {
            None
        } else {
            Some(31 - self.mask.leading_zeros() as u8)
        }
    }

    /// Append at the tail of `pri` (round robin), or at its head (`front`,
    /// for a uthread that must not lose its turn).
    // NOTE: `always`: with two callers (`requeue`, `enqueue`) LLVM kept it
    // out of line, a call and a dozen instructions of frame per yield.
    #[inline(always)]
    pub(crate) fn push(&mut self, t: Arc<Thread>, pri: u8, front: bool) {
        let q = &mut self.levels[level(pri)];
        if front {
            q.push_front(t);
        } else {
            q.push_back(t);
        }
        self.mask |= 1 << pri;
        self.len += 1;
    }

    /// Hot path of the pick: the head, if it holds no token.
    #[inline]
    pub(crate) fn pop_if_free(&mut self, owner: Owned<'_>) -> Option<Arc<Thread>> {
        let p = self.top()? as usize;
        let q = &mut self.levels[p];
        // NOTE: queued uthreads belong to the worker that owns this queue
        // (our caller, who passed its witness) and do not run.
        if !q.get(0)?.sched(owner).tokens.is_empty() {
            return None;
        }
        let t = q.pop_front();
        if q.len == 0 {
            self.mask &= !(1 << p);
        }
        self.len -= 1;
        t
    }

    /// The `i`-th uthread in scheduling order (for the contended-token scan).
    pub(crate) fn nth(&self, mut i: usize) -> Option<(&Arc<Thread>, u8)> {
        let mut m = self.mask;
        while m != 0 {
            let p = 31 - m.leading_zeros() as usize;
            let q = &self.levels[p];
            if i < q.len {
                return Some((q.get(i)?, p as u8));
            }
            i -= q.len;
            m &= !(1 << p);
        }
        None
    }

    /// Remove the `i`-th uthread in scheduling order.
    pub(crate) fn remove_nth(&mut self, mut i: usize) -> Option<Arc<Thread>> {
        let mut m = self.mask;
        while m != 0 {
            let p = 31 - m.leading_zeros() as usize;
            let q = &mut self.levels[p];
            if i < q.len {
                let t = q.remove(i);
                if q.len == 0 {
                    self.mask &= !(1 << p);
                }
                self.len -= 1;
                return t;
            }
            i -= q.len;
            m &= !(1 << p);
        }
        None
    }

    /// Remove a given uthread from level `pri` (priority changes).
    pub(crate) fn remove(&mut self, t: &Thread, pri: u8) -> Option<Arc<Thread>> {
        let q = &mut self.levels[level(pri)];
        let i = (0..q.len).position(|i| q.get(i).is_some_and(|x| std::ptr::eq(&**x, t)))?;
        let r = q.remove(i);
        if q.len == 0 {
            self.mask &= !(1 << pri);
        }
        self.len -= 1;
        r
    }

    /// Take everything (shutdown).
    pub(crate) fn drain_all(&mut self) -> Vec<Arc<Thread>> {
        self.mask = 0;
        self.len = 0;
        self.levels.iter_mut().flat_map(|q| std::iter::from_fn(|| q.pop_front())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;

    /// A runtime (kept alive by the caller) and a maker of unstarted
    /// uthread records `(id, priority)` belonging to it.
    fn records() -> (Runtime, impl Fn(u64, u8) -> Arc<Thread>) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let shared = rt.handle().shared.clone();
        (rt, move |id, pri| Arc::new(Thread::new(id, None, shared.clone(), 0, pri, None)))
    }

    #[test]
    fn head_is_best_and_equal_priorities_rotate() {
        let (_rt, mk) = records();
        let mut q = RunQueue::default();
        q.push(mk(1, 5), 5, false);
        q.push(mk(2, 9), 9, false);
        q.push(mk(3, 5), 5, false);
        q.push(mk(4, 5), 5, true);
        assert_eq!(q.top(), Some(9));
        let order: Vec<u64> = (0..4).map(|_| q.remove_nth(0).unwrap().id).collect();
        assert_eq!(order, vec![2, 4, 1, 3]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.top(), None);
    }

    /// Order across priorities, front pushes, `nth`, `remove`, `remove_nth`
    /// and `drain_all`, with one level grown well past its first capacity.
    #[test]
    fn order_removal_and_growth() {
        let (_rt, mk) = records();
        let mut q = RunQueue::default();
        // Level 3: 10..30 at the back, then 1 and 2 at the front (2 first).
        let mut keep = Vec::new();
        for id in 10..30 {
            let t = mk(id, 3);
            keep.push(t.clone());
            q.push(t, 3, false);
        }
        q.push(mk(1, 3), 3, true);
        q.push(mk(2, 3), 3, true);
        q.push(mk(100, 31), 31, false);
        q.push(mk(50, 0), 0, false);
        assert_eq!(q.len(), 24);
        assert_eq!(q.top(), Some(31));
        let ids = |q: &RunQueue| -> Vec<(u64, u8)> { (0..).map_while(|i| q.nth(i)).map(|(t, p)| (t.id, p)).collect() };
        let mut want: Vec<(u64, u8)> = vec![(100, 31), (2, 3), (1, 3)];
        want.extend((10..30).map(|id| (id, 3)));
        want.push((50, 0));
        assert_eq!(ids(&q), want);
        assert!(q.nth(24).is_none());
        // `remove` of one in the middle of its level, and of one absent.
        assert_eq!(q.remove(&keep[5], 3).map(|t| t.id), Some(15));
        assert!(q.remove(&keep[5], 3).is_none());
        want.retain(|&(id, _)| id != 15);
        assert_eq!(ids(&q), want);
        // `remove_nth` across levels: the only one of 31 empties its level.
        assert_eq!(q.remove_nth(0).map(|t| t.id), Some(100));
        assert_eq!(q.top(), Some(3));
        assert_eq!(q.remove_nth(3).map(|t| t.id), Some(11));
        assert_eq!(q.remove_nth(20).map(|t| t.id), Some(50));
        assert!(q.remove_nth(20).is_none());
        want.retain(|&(id, _)| id != 100 && id != 11 && id != 50);
        assert_eq!(ids(&q), want);
        assert_eq!(q.len(), 20);
        // Pushed behind the others after the removals, then everything.
        q.push(mk(60, 3), 3, false);
        want.push((60, 3));
        assert_eq!(ids(&q), want);
        let drained: Vec<u64> = q.drain_all().iter().map(|t| t.id).collect();
        assert_eq!(drained, want.iter().map(|&(id, _)| id).collect::<Vec<_>>());
        assert_eq!((q.len(), q.top()), (0, None));
        assert!(q.nth(0).is_none());
    }

    /// The ring against `VecDeque`, over a fixed pseudo-random sequence of
    /// pushes at both ends, pops and removals (it wraps and grows), with a
    /// value that counts its drops. Runs under Miri as well (no runtime).
    #[test]
    fn ring_matches_vecdeque() {
        use std::collections::VecDeque;
        use std::rc::Rc;
        let live = Rc::new(());
        let mut ring: Ring<(u32, Rc<()>)> = Ring::default();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut x: u32 = 0x2545_f491;
        let n = if cfg!(miri) { 400 } else { 20_000 };
        for v in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x % 8 {
                0..=2 => {
                    ring.push_back((v, live.clone()));
                    model.push_back(v);
                }
                3 => {
                    ring.push_front((v, live.clone()));
                    model.push_front(v);
                }
                4 | 5 => assert_eq!(ring.pop_front().map(|e| e.0), model.pop_front()),
                6 => {
                    let i = (x as usize / 8) % (model.len() + 1);
                    assert_eq!(ring.remove(i).map(|e| e.0), model.remove(i));
                }
                _ => {
                    let i = (x as usize / 8) % (model.len() + 1);
                    assert_eq!(ring.get(i).map(|e| e.0), model.get(i).copied());
                }
            }
            assert_eq!(ring.len, model.len());
            assert!(ring.slots.is_empty() || ring.slots.len().is_power_of_two());
            assert_eq!(Rc::strong_count(&live), 1 + model.len());
        }
        let all: Vec<u32> = (0..ring.len).map(|i| ring.get(i).unwrap().0).collect();
        assert_eq!(all, model.iter().copied().collect::<Vec<_>>());
        assert!(model.len() > FIRST_CAP, "the sequence should have grown the ring");
        drop(ring);
        assert_eq!(Rc::strong_count(&live), 1, "dropping the ring drops what it holds");
    }

    /// `head` wraps past `usize::MAX` without breaking the order.
    #[test]
    fn ring_head_wraps() {
        let mut ring: Ring<u32> = Ring::default();
        ring.push_back(0);
        assert_eq!(ring.pop_front(), Some(0));
        ring.head = usize::MAX - 1;
        for v in 1..=3 {
            ring.push_back(v);
        }
        ring.push_front(0);
        assert_eq!(ring.head, usize::MAX - 2);
        let got: Vec<u32> = std::iter::from_fn(|| ring.pop_front()).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(ring.head, 1);
    }
}
