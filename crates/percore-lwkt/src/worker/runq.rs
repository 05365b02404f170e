//! The per-worker run queue: fixed priorities, round robin within one.
//!
//! DragonFly keeps one sorted list (`_lwkt_enqueue` inserts behind every
//! thread of higher or equal priority), so the head is always the best
//! choice. We keep one FIFO per priority and a bitmap of non-empty levels:
//! same order, O(1) insert and pick. Only the owning worker touches it.

use crate::uthread::record::{Owned, Thread};
use std::collections::VecDeque;
use std::sync::Arc;

/// Number of priority levels (0 = lowest).
pub(crate) const LEVELS: usize = 32;

#[derive(Default)]
pub(crate) struct RunQueue {
    levels: [VecDeque<Arc<Thread>>; LEVELS],
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
    #[inline]
    pub(crate) fn push(&mut self, t: Arc<Thread>, pri: u8, front: bool) {
        let q = &mut self.levels[pri as usize];
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
        // NOTE: popped first and put back if it holds tokens: one index
        // computation instead of two on the common path.
        let t = q.pop_front()?;
        // NOTE: queued uthreads belong to the worker that owns this queue
        // (our caller, who passed its witness) and do not run.
        if !t.sched(owner).tokens.is_empty() {
            q.push_front(t);
            return None;
        }
        if q.is_empty() {
            self.mask &= !(1 << p);
        }
        self.len -= 1;
        Some(t)
    }

    /// The `i`-th uthread in scheduling order (for the contended-token scan).
    pub(crate) fn nth(&self, mut i: usize) -> Option<(&Arc<Thread>, u8)> {
        let mut m = self.mask;
        while m != 0 {
            let p = 31 - m.leading_zeros() as usize;
            let q = &self.levels[p];
            if i < q.len() {
                return Some((&q[i], p as u8));
            }
            i -= q.len();
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
            if i < q.len() {
                let t = q.remove(i);
                if q.is_empty() {
                    self.mask &= !(1 << p);
                }
                self.len -= 1;
                return t;
            }
            i -= q.len();
            m &= !(1 << p);
        }
        None
    }

    /// Remove a given uthread from level `pri` (priority changes).
    pub(crate) fn remove(&mut self, t: &Thread, pri: u8) -> Option<Arc<Thread>> {
        let q = &mut self.levels[pri as usize];
        let i = q.iter().position(|x| std::ptr::eq(&**x, t))?;
        let r = q.remove(i);
        if q.is_empty() {
            self.mask &= !(1 << pri);
        }
        self.len -= 1;
        r
    }

    /// Take everything (shutdown).
    pub(crate) fn drain_all(&mut self) -> Vec<Arc<Thread>> {
        self.mask = 0;
        self.len = 0;
        self.levels.iter_mut().flat_map(|q| q.drain(..)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;

    #[test]
    fn head_is_best_and_equal_priorities_rotate() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let shared = rt.handle().shared.clone();
        let mk = |id, pri| Arc::new(Thread::new(id, None, shared.clone(), 0, pri, None));
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
}
