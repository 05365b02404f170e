//! # IPI FIFOs: one bounded single-producer ring per (sender, target)
//!
//! DragonFly gives every (source CPU, target CPU) pair its own IPI queue, so
//! that senders never contend with each other and the target drains each
//! queue without locks. [`Ring`] is that queue: a bounded Lamport ring with
//! one producer (the sending worker's OS thread) and one consumer (the target
//! worker's OS thread).
//!
//! ```text
//!            head (consumer)            tail (producer)
//!               v                          v
//!   [ . . . . | m0 | m1 | m2 | m3 | . . . . . ]   slots, capacity a power of 2
//! ```
//!
//! ## Invariants
//!
//! * Only the producer stores `tail`, only the consumer stores `head`; both
//!   only increase (wrapping `usize`, masked to index).
//! * `tail - head <= capacity`: the slots in `[head, tail)` are initialised
//!   and owned by the consumer, the others by the producer.
//! * A slot's write happens-before the `tail` release store that publishes it,
//!   and the consumer's read happens-before the `head` release store that
//!   frees it (the acquire loads on the other side pair with them).
//!
//! A full ring is the sender's problem (`worker::send`): it wakes the target
//! and drains its *own* inboxes while it waits, so two workers filling each
//! other's rings make progress (DragonFly's `lwkt_send_ipiq` does the same).
//! Whether the target must be woken is a separate protocol (`idle.rs`).
//! Under loom the capacity shrinks to 2 so the full case is reached.
//!
//! ## Slots on first use
//!
//! A runtime of `n` workers has `n * n` rings, most of which never carry a
//! message (256 workers: 65,536 rings, 293 MB of slots allocated at start-up
//! before this, issue 13). A ring's slots are allocated by its producer on
//! its first push and published with a release store of `slots` that comes
//! before the `tail` release of that push; the consumer reads `slots` only
//! after its acquire of `tail` showed a message, so it always sees them. An
//! unused ring is its two indices and a null pointer.

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use crossbeam_utils::CachePadded;
use percore_cpu::loom::Ordering::{Acquire, Relaxed, Release};
use percore_cpu::loom::{spin_loop, AtomicPtr, AtomicUsize, UnsafeCell};
use std::mem::MaybeUninit;

/// Slots per ring.
#[cfg(not(loom))]
pub const CAPACITY: usize = 256;
/// Slots per ring (shrunk under loom).
#[cfg(loom)]
pub const CAPACITY: usize = 2;

/// A bounded single-producer single-consumer FIFO.
pub struct Ring<T> {
    /// Next slot to read. Stored by the consumer only.
    head: CachePadded<AtomicUsize>,
    /// Next slot to write. Stored by the producer only.
    tail: CachePadded<AtomicUsize>,
    /// The first of [`CAPACITY`] slots (a leaked boxed slice), null until the
    /// first push. Stored by the producer only, once.
    slots: AtomicPtr<UnsafeCell<MaybeUninit<T>>>,
}

// SAFETY: values move from the producer's thread to the consumer's, so `T`
// must be `Send`; the index protocol above gives each slot a single owner at a
// time.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; `&Ring` is used by exactly one producer and one consumer.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Ring<T> {
    /// An empty ring of [`CAPACITY`] slots.
    pub fn new() -> Self {
        Ring {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The producer's first push: allocate and publish the slots.
    #[cold]
    fn alloc_slots(&self) -> *mut UnsafeCell<MaybeUninit<T>> {
        let b: Box<[UnsafeCell<MaybeUninit<T>>]> =
            (0..CAPACITY).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
        let p = Box::into_raw(b).cast::<UnsafeCell<MaybeUninit<T>>>();
        // ORDERING: release, paired with the acquire load in `pop` (which
        // also follows the acquire of a later `tail`).
        self.slots.store(p, Release);
        p
    }

    /// Slot `i % CAPACITY` of the allocated slots `base`.
    #[inline]
    fn slot(&self, base: *mut UnsafeCell<MaybeUninit<T>>, i: usize) -> &UnsafeCell<MaybeUninit<T>> {
        // SAFETY: `base` is the start of a live boxed slice of `CAPACITY`
        // slots, freed only in `drop` (`&mut self`); callers do not keep the
        // reference beyond the `&self` borrow it is tied to.
        unsafe { &*base.add(i % CAPACITY) }
    }

    /// Append `v`; gives it back when the ring is full.
    ///
    /// # Safety
    ///
    /// Only one thread (the ring's producer) may call `push` at a time.
    #[inline]
    pub unsafe fn push(&self, v: T) -> Result<(), T> {
        // ORDERING: relaxed: only this producer stores `tail`.
        let t = self.tail.load(Relaxed);
        // ORDERING: acquire pairs with the consumer's release store of `head`
        // in `pop`: its read of the slot we are about to reuse is finished.
        let h = self.head.load(Acquire);
        if t.wrapping_sub(h) >= CAPACITY {
            return Err(v);
        }
        // ORDERING: relaxed: only this producer ever stores `slots`.
        let mut base = self.slots.load(Relaxed);
        if base.is_null() {
            base = self.alloc_slots();
        }
        self.slot(base, t).with_mut(|p| {
            // SAFETY: slot `t` is outside `[head, tail)`, so it is ours and
            // holds no live value.
            unsafe { (*p).write(v) };
        });
        // ORDERING: release publishes the slot write; pairs with the acquire
        // load of `tail` in `pop`.
        self.tail.store(t.wrapping_add(1), Release);
        Ok(())
    }

    /// Take the oldest message, if any.
    ///
    /// # Safety
    ///
    /// Only one thread (the ring's consumer) may call `pop` at a time.
    #[inline]
    pub unsafe fn pop(&self) -> Option<T> {
        // ORDERING: relaxed: only this consumer stores `head`.
        let h = self.head.load(Relaxed);
        // ORDERING: acquire pairs with the release store of `tail` in `push`.
        let t = self.tail.load(Acquire);
        if h == t {
            return None;
        }
        // ORDERING: acquire pairs with the release store in `alloc_slots`;
        // non-null, since a message was pushed (see "Slots on first use").
        let base = self.slots.load(Acquire);
        let v = self.slot(base, h).with_mut(|p| {
            // SAFETY: slot `h` is in `[head, tail)`: initialised, and ours
            // until we move `head` past it.
            unsafe { (*p).assume_init_read() }
        });
        // ORDERING: release orders our read before the producer reuses the
        // slot; pairs with the acquire load of `head` in `push`.
        self.head.store(h.wrapping_add(1), Release);
        Some(v)
    }

    /// Push, calling `on_full` between attempts while the ring is full;
    /// when `on_full` returns `false` the message is dropped and `push_wait`
    /// returns `false`.
    ///
    /// # Safety
    ///
    /// As for [`Ring::push`].
    pub unsafe fn push_wait(&self, mut v: T, mut on_full: impl FnMut() -> bool) -> bool {
        loop {
            // SAFETY: forwarded from the caller.
            match unsafe { self.push(v) } {
                Ok(()) => return true,
                Err(back) => {
                    v = back;
                    if !on_full() {
                        return false;
                    }
                    spin_loop();
                }
            }
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no producer or consumer is left.
        while unsafe { self.pop() }.is_some() {}
        let base = self.slots.load(Acquire);
        if !base.is_null() {
            // SAFETY: made by `Box::into_raw` of a `CAPACITY`-slot slice in
            // `alloc_slots`; the slots hold no live values any more.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, CAPACITY)) });
        }
    }
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ORDERING: relaxed: a snapshot for debugging.
        f.debug_struct("Ring").field("head", &self.head.load(Relaxed)).field("tail", &self.tail.load(Relaxed)).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_wraparound() {
        let r = Ring::new();
        for round in 0..3 {
            for i in 0..CAPACITY {
                // SAFETY: single-threaded test: one producer.
                assert!(unsafe { r.push(round * 1000 + i) }.is_ok());
            }
            // SAFETY: as above.
            assert_eq!(unsafe { r.push(9) }, Err(9));
            for i in 0..CAPACITY {
                // SAFETY: single-threaded test: one consumer.
                assert_eq!(unsafe { r.pop() }, Some(round * 1000 + i));
            }
            // SAFETY: as above.
            assert_eq!(unsafe { r.pop() }, None);
        }
    }

    #[test]
    fn cross_thread_order() {
        let r = std::sync::Arc::new(Ring::new());
        let p = r.clone();
        let n = 100_000u64;
        let t = std::thread::spawn(move || {
            for i in 0..n {
                // SAFETY: the only producer.
                assert!(unsafe { p.push_wait(i, || true) });
            }
        });
        let mut next = 0;
        while next < n {
            // SAFETY: the only consumer.
            if let Some(v) = unsafe { r.pop() } {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
    }
}
