//! Read sections: [`Guard`] (one section, `smr_enter` to `smr_exit`) and
//! [`Participant`] (a registered thread's handle), with the slot steps
//! they share: publish or nest on entry, unpublish or un-nest on exit.

use super::{Smr, FAST};
use crate::domain::Domain;
use crate::slots::{Slot, EPHEMERAL, NEST_MASK};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

#[inline]
pub(super) fn enter_slot(domain: &Domain, slot: &Slot) {
    if !slot.in_section() {
        domain.publish(slot);
    } else {
        nest(slot);
    }
}

/// One more guard on a slot already in a section.
#[inline]
pub(super) fn nest(slot: &Slot) {
    let n = slot.local.nesting.get();
    if n & NEST_MASK != NEST_MASK {
        slot.local.nesting.set(n + 1);
    }
}

/// Unpublish: the section of `slot` ends.
#[inline]
pub(super) fn unpublish(slot: &Slot) {
    // ORDERING: Release: every load of the section happens before a poller
    // that acquires INVALID frees anything (`poll_slot`).
    slot.c_seq.store(crate::seq::INVALID, Ordering::Release);
}

/// End one section off the fast path: a nested guard, or a teardown-time
/// slot. Guards may drop in any order: whichever is last (no extra nesting
/// left) unpublishes. A saturated count stays (see `NEST_MASK`).
///
/// NOTE: inlined, so that nested sections (a common pattern: a lookup
/// inside a longer section) pay no call; the teardown case calls out to
/// the cold `release_ephemeral`. `always`: the caller marks this branch
/// cold (a layout hint), which would otherwise keep it out of line.
#[inline(always)]
pub(super) fn exit_slow(smr: &Smr, slot: &Slot) {
    let n = slot.local.nesting.get();
    match n & NEST_MASK {
        0 => unpublish(slot),
        NEST_MASK => {}
        _ => slot.local.nesting.set(n - 1),
    }
    if n & EPHEMERAL != 0 {
        smr.release_ephemeral(slot);
    }
}

/// A read section of one domain; ends when dropped (`smr_exit`).
#[must_use = "the section ends as soon as the guard is dropped"]
pub struct Guard<'a> {
    pub(super) smr: &'a Smr,
    pub(super) slot: &'a Slot,
    pub(super) _not_send: PhantomData<*mut ()>,
}

impl Guard<'_> {
    /// The domain this section belongs to.
    pub fn smr(&self) -> &Smr {
        self.smr
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        // One test: no extra guard and not a teardown-time slot.
        if self.slot.local.nesting.get() == 0 {
            unpublish(self.slot);
        } else {
            // NOTE: a layout hint, as in `enter`.
            std::hint::cold_path();
            exit_slow(self.smr, self.slot);
        }
    }
}

impl std::fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("domain", &self.smr.name()).finish()
    }
}

/// A thread's explicit registration with a domain (see [`Smr::register`]).
/// Not `Send`: it names the registering thread's slot.
///
/// `!Send` alone does not keep it on its thread: a percore-lwkt uthread
/// that calls `migrate()` (or is given away) carries it to another worker's
/// OS thread. So [`enter`](Participant::enter) checks that the slot is the
/// calling thread's (the same thread-local check [`Smr::enter`] makes);
/// on another thread it enters through that thread's own slot instead, so a
/// participant can never publish or nest on another thread's slot (issue
/// 16). The check costs what `Smr::enter`'s fast path costs.
pub struct Participant {
    pub(super) smr: Smr,
    pub(super) slot: *const Slot,
    pub(super) _not_send: PhantomData<*mut ()>,
}

impl Participant {
    /// Enter a read section, like [`Smr::enter`]. On a thread other than
    /// the registering one (a migrated uthread) the section uses the calling
    /// thread's slot, exactly as `Smr::enter` would.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("participant-enter").unwrap();
    /// let me = smr.register();
    /// let g = me.enter();
    /// assert!(smr.in_section());
    /// drop(g);
    /// ```
    #[inline]
    pub fn enter(&self) -> Guard<'_> {
        if !self.is_home() {
            return self.smr.enter();
        }
        // SAFETY: the slot lives as long as the domain, which `self.smr`
        // keeps alive, and `is_home` checked it is the calling thread's.
        let slot = unsafe { &*self.slot };
        enter_slot(self.smr.domain(), slot);
        Guard { smr: &self.smr, slot, _not_send: PhantomData }
    }

    /// Whether the participant's slot is the calling thread's.
    #[inline]
    fn is_home(&self) -> bool {
        let id = self.smr.domain().id;
        let cached = FAST.with(|f| f.slot_of(id).is_some_and(|p| std::ptr::eq(p, self.slot)));
        cached || self.smr.slot_slow(false).is_some_and(|p| std::ptr::eq(p, self.slot))
    }

    /// The domain.
    pub fn smr(&self) -> &Smr {
        &self.smr
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        // NOTE: only the owning thread may touch the slot's owner-only
        // state; elsewhere (a migrated uthread) there is nothing to do.
        if !self.is_home() {
            return;
        }
        // SAFETY: as in `enter`.
        let slot = unsafe { &*self.slot };
        if slot.ephemeral() {
            self.smr.release_ephemeral(slot);
        }
    }
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant").field("domain", &self.smr.name()).finish()
    }
}
