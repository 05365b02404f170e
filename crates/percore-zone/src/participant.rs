//! Participants: who may touch which per-participant cache, and the hook that
//! hands a thread's cached buckets back when it exits.
//!
//! # Problem
//!
//! UMA keeps one cache per CPU and protects it with a critical section. In
//! userspace a thread can be preempted and migrated at any instruction, so a
//! per-CPU cache would need an atomic RMW (or rseq) on every operation. We
//! key caches by *participant* instead: a dense small integer owned by one
//! live OS thread at a time. Slot `i` of every zone is touched only by the
//! thread that holds index `i`, so the fast path needs no atomic at all.
//!
//! # Mechanism
//!
//! * `INDEX` (a constant-initialised thread-local without a destructor, see
//!   `loom.rs`) caches the index; it reads `UNSET` before the first zone
//!   operation and `DEAD` once the thread's participant has been torn down.
//!   Both are larger than any slot count, so the fast path's single bounds
//!   check (`slots.get(index)`) also sends them to the slow path.
//! * `PARTICIPANT` (a thread-local *with* a destructor) owns the index, a
//!   serial number that is never reused, and the list of zones whose slot
//!   this thread filled. A zone's slow path registers itself there the first
//!   time it gives the thread's slot a bucket (`Magazine::owner` remembers the
//!   serial of the thread that registered).
//! * On thread exit the destructor sets `INDEX` to `DEAD`, drains its slot in
//!   every registered zone that is still alive into that zone's depot, and
//!   only then releases the index for the next thread. Later zone operations
//!   on the dying thread (from other thread-local destructors) see `DEAD` and
//!   take the uncached path.
//!
//! # Invariants
//!
//! 1. At any time at most one live thread holds index `i`.
//! 2. A slot holds buckets only while the thread holding its index has
//!    registered the zone: buckets enter a slot only on the slow path, which
//!    registers first, and the exit drain empties the slot before the index
//!    is released. So a thread never inherits another thread's buckets
//!    without also inheriting the duty to drain them... and in fact never
//!    inherits any.
//! 3. The registry holds `Weak` references: a zone dropped before the thread
//!    exits is simply skipped.

use percore_cpu::loom_thread_local;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};
use std::sync::{Mutex, Weak};

/// `INDEX` before the thread's first zone operation.
pub(crate) const UNSET: usize = usize::MAX;
/// `INDEX` after the thread's participant was torn down.
pub(crate) const DEAD: usize = usize::MAX - 1;

loom_thread_local! {
    /// This thread's participant index, or `UNSET` / `DEAD`. Constant-initialised
    /// and without a destructor, so it stays readable while the thread tears
    /// down.
    static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(UNSET) };
}

/// What a zone does when a participant leaves: move the buckets cached in
/// slot `index` to the depot.
pub(crate) trait Drain: Send + Sync {
    /// Called by the thread that holds `index`, on its way out.
    fn drain_participant(&self, index: usize);
}

/// Released indices (reused first) and the next never-used one. Not a
/// protocol lock: no loom operation happens while it is held.
static FREE: Mutex<(usize, Vec<usize>)> = Mutex::new((0, Vec::new()));
/// Source of never-reused thread serials; 0 means "nobody".
static SERIAL: AtomicU64 = AtomicU64::new(1);

struct Participant {
    index: usize,
    serial: u64,
    zones: RefCell<Vec<Weak<dyn Drain>>>,
}

impl Participant {
    fn new() -> Participant {
        let index = {
            let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
            // The smallest released index first: indices stay dense, and a
            // loom model sees the same assignment in every execution.
            let smallest = free.1.iter().enumerate().min_by_key(|&(_, &i)| i).map(|(at, _)| at);
            match smallest.map(|at| free.1.swap_remove(at)) {
                Some(i) => i,
                None => {
                    free.0 += 1;
                    free.0 - 1
                }
            }
        };
        // ORDERING: only uniqueness matters; no other memory is published.
        let serial = SERIAL.fetch_add(1, StdOrdering::Relaxed);
        INDEX.with(|c| c.set(index));
        Participant { index, serial, zones: RefCell::new(Vec::new()) }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        // From here on this thread uses the uncached paths.
        let _ = INDEX.try_with(|c| c.set(DEAD));
        let zones = std::mem::take(&mut *self.zones.borrow_mut());
        for zone in zones {
            if let Some(zone) = zone.upgrade() {
                zone.drain_participant(self.index);
            }
        }
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        free.1.push(self.index);
    }
}

loom_thread_local! {
    static PARTICIPANT: Participant = Participant::new();
}

/// The calling thread's index, or `UNSET`/`DEAD` (both out of range of any
/// slot array). One thread-local load.
#[inline]
pub(crate) fn current() -> usize {
    INDEX.with(|c| c.get())
}

/// The calling thread's `(index, serial)`, creating its participant on first
/// use; `None` once the thread is tearing down.
#[cold]
pub(crate) fn me() -> Option<(usize, u64)> {
    let me = PARTICIPANT.try_with(|p| (p.index, p.serial)).ok();
    if me.is_none() {
        let _ = INDEX.try_with(|c| c.set(DEAD));
    }
    me
}

/// Ask the calling thread to drain `zone` when it exits. Returns `false` if
/// the thread is already tearing down (the caller must then not cache).
#[cold]
pub(crate) fn register(zone: Weak<dyn Drain>) -> bool {
    PARTICIPANT
        .try_with(|p| {
            let mut zones = p.zones.borrow_mut();
            zones.retain(|w| w.strong_count() > 0);
            zones.push(zone);
        })
        .is_ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn live_threads_get_distinct_indices_and_exited_ones_are_reused() {
        let a = me().unwrap();
        assert_eq!(current(), a.0);
        let b = std::thread::spawn(|| me().unwrap()).join().unwrap();
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
        // b's index went back to the free list; some later thread gets it,
        // and serials are never reused.
        let c = std::thread::spawn(|| me().unwrap()).join().unwrap();
        assert_ne!(c.1, b.1);
    }
}
