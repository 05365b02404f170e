//! Participant slots: the userspace `c_seq` array.
//!
//! FreeBSD keeps one `c_seq` per CPU and a reader is pinned to its CPU by a
//! critical section. Userspace threads migrate freely, so percore keeps one
//! slot per participating thread instead (a percore worker, being pinned and
//! never switched out of an SMR section, is such a thread). Slots live in
//! fixed-size segments chained into a list that only grows; a segment is
//! freed with its domain. A scan walks every slot ever created; free slots
//! hold `INVALID` and cost one load.
//!
//! ```text
//!  Slots.head ─► Segment [slot 0][slot 1] ... [slot 31] next ─► Segment ... ─► null
//!                 each slot: c_seq (owner writes, scanners read)
//!                            state (FREE/USED: claimed by CAS, released at thread exit)
//!                            owner-only: extra nesting + teardown flag, deferred count, batch
//! ```
//!
//! Who touches what:
//! * `c_seq`: stored by the owner on section entry and exit, loaded by any
//!   poller.
//! * `state`: FREE -> USED by the claiming thread (CAS, Acquire), USED -> FREE
//!   by the owner when its thread exits (Release). The Acquire/Release pair
//!   hands the owner-only fields from one owner to the next.
//! * `local` (owner-only): the owning thread, while it holds a handle to the
//!   domain; otherwise only code that holds the domain's queue lock and knows
//!   no handle exists (domain teardown, thread exit). See `domain.rs`.

use crate::reclaim::Batch;
use crate::seq::INVALID;
use crossbeam_utils::CachePadded;
use percore_cpu::loom::{AtomicPtr, AtomicU32};
use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::atomic::Ordering;

#[cfg(not(loom))]
const SEGMENT: usize = 32;
#[cfg(loom)]
const SEGMENT: usize = 2;

const FREE: u32 = 0;
const USED: u32 = 1;

/// `Local::nesting`: the slot was claimed during thread teardown, after the
/// thread's registry was destroyed, and is released as soon as its owner is
/// outside a section.
pub(crate) const EPHEMERAL: u32 = 1 << 31;
/// `Local::nesting`: the count of extra guards. It saturates: once there
/// (2^31 - 1 extra guards, only reachable by forgetting guards) the section
/// never ends, which is safe (writers wait; nothing is freed early).
pub(crate) const NEST_MASK: u32 = EPHEMERAL - 1;

/// Owner-only state of a participant.
#[derive(Default)]
pub(crate) struct Local {
    /// The section exit's one test: guards of this domain alive on the
    /// owner beyond the first one (low bits, `NEST_MASK`), plus `EPHEMERAL`.
    /// The first guard is recorded by `c_seq` itself (not `INVALID`), so the
    /// common, unnested section of a normal slot finds 0 here and takes the
    /// fast exit; anything else (nested, or a teardown-time slot) takes the
    /// slow one (`smr::exit_slow`).
    pub(crate) nesting: Cell<u32>,
    /// Deferred mode: advances since the last real one (`c_deferred`).
    pub(crate) deferred: Cell<u32>,
    /// Retired objects not yet tagged with a goal.
    pub(crate) batch: UnsafeCell<Batch>,
}

/// One participant's published sequence and private state.
pub(crate) struct Slot {
    /// The sequence this participant's current section started from, or
    /// `INVALID` when it is not in a section.
    pub(crate) c_seq: AtomicU32,
    state: AtomicU32,
    /// Readers publish with a locked RMW (the fallback flavour).
    pub(crate) rmw: Cell<bool>,
    pub(crate) local: Local,
}

// SAFETY: `c_seq` and `state` are atomics. `rmw` and `local` are owner-only:
// the protocol above guarantees that one thread at a time touches them, and
// the `state` hand-over orders successive owners.
unsafe impl Sync for Slot {}
// SAFETY: as above; a slot is never moved between threads while in use.
unsafe impl Send for Slot {}

impl Slot {
    fn new() -> Slot {
        Slot {
            c_seq: AtomicU32::new(INVALID),
            state: AtomicU32::new(FREE),
            rmw: Cell::new(false),
            local: Local::default(),
        }
    }

    /// Whether the slot was claimed during thread teardown (see
    /// `EPHEMERAL`). Owner only.
    #[inline]
    pub(crate) fn ephemeral(&self) -> bool {
        self.local.nesting.get() & EPHEMERAL != 0
    }

    /// Mark a freshly claimed slot as a teardown-time one. Owner only.
    pub(crate) fn set_ephemeral(&self) {
        self.local.nesting.set(self.local.nesting.get() | EPHEMERAL);
    }

    /// Give the slot up. The caller is its owner and is not in a section.
    pub(crate) fn release(&self) {
        self.local.nesting.set(0);
        self.local.deferred.set(0);
        // ORDERING: a forgotten guard may have left a sequence published;
        // Release orders the section's loads before it, like a section exit.
        self.c_seq.store(INVALID, Ordering::Release);
        // ORDERING: Release hands the owner-only fields to the next claimer,
        // pairs with the Acquire CAS in `Slots::claim`.
        self.state.store(FREE, Ordering::Release);
    }

    /// Whether the owner is inside a section. Owner only: it reads its own
    /// last store, which coherence always returns.
    #[inline]
    pub(crate) fn in_section(&self) -> bool {
        // ORDERING: the owner's own value; no other thread writes c_seq.
        self.c_seq.load(Ordering::Relaxed) != INVALID
    }

    pub(crate) fn in_use(&self) -> bool {
        // ORDERING: pairs with `release`, so a FREE slot's fields are settled.
        self.state.load(Ordering::Acquire) == USED
    }
}

struct Segment {
    slots: [CachePadded<Slot>; SEGMENT],
    next: AtomicPtr<Segment>,
}

impl Segment {
    fn new() -> Box<Segment> {
        Box::new(Segment {
            slots: std::array::from_fn(|_| CachePadded::new(Slot::new())),
            next: AtomicPtr::new(ptr::null_mut()),
        })
    }
}

/// The grow-only list of slot segments.
pub(crate) struct Slots {
    head: Box<Segment>,
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots { head: Segment::new() }
    }

    /// Every slot ever created, in a stable order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        let mut seg: *const Segment = &*self.head;
        std::iter::from_fn(move || {
            if seg.is_null() {
                return None;
            }
            // SAFETY: `seg` is the head or was published by `claim` with a
            // Release CAS that the Acquire load below pairs with; segments
            // are freed only in `Drop`, which needs `&mut self`.
            let s = unsafe { &*seg };
            // ORDERING: Acquire pairs with the AcqRel CAS that linked the
            // next segment, so its slots are initialised before we read them.
            seg = s.next.load(Ordering::Acquire);
            Some(s.slots.iter().map(|c| &**c))
        })
        .flatten()
    }

    /// Claim a free slot for the calling thread, growing the list if all
    /// are taken.
    #[cold]
    pub(crate) fn claim(&self) -> &Slot {
        loop {
            let mut seg: &Segment = &self.head;
            let last = loop {
                for slot in &seg.slots {
                    // ORDERING: Acquire pairs with `Slot::release` of the
                    // previous owner (its owner-only fields are settled).
                    if slot.state.load(Ordering::Relaxed) == FREE
                        && slot.state.compare_exchange(FREE, USED, Ordering::Acquire, Ordering::Relaxed).is_ok()
                    {
                        return slot;
                    }
                }
                // ORDERING: see `iter`.
                let next = seg.next.load(Ordering::Acquire);
                if next.is_null() {
                    break seg;
                }
                // SAFETY: see `iter`.
                seg = unsafe { &*next };
            };
            let fresh = Box::into_raw(Segment::new());
            // ORDERING: AcqRel publishes the new segment's initialised slots
            // (Release) and, on failure, lets us walk the winner's (Acquire).
            if last.next.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire).is_err() {
                // SAFETY: we just made `fresh` and nobody else saw it.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let mut next = self.head.next.load(Ordering::Relaxed);
        while !next.is_null() {
            // SAFETY: every linked segment came from `Box::into_raw` in
            // `claim` and is reachable only through this list, which we own.
            let seg = unsafe { Box::from_raw(next) };
            next = seg.next.load(Ordering::Relaxed);
        }
    }
}
