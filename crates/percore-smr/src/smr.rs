//! The public face of a domain: `Smr`, its builder, read-section guards,
//! participants, and the thread-local registry that maps a thread to its
//! slot in each domain.
//!
//! A thread's first use of a domain claims a slot (`Slots::claim`) and
//! records it in the thread's `OWNED` list, which gives the slot back when
//! the thread exits. A one-entry cache (`FAST`) answers the common case, "the
//! same domain as last time", with one thread-local load and a compare.
//! `FAST` also mirrors the first few slots of `OWNED`, so that
//! [`in_section`] (asked by percore-lwkt before every switch) needs no
//! borrow of `OWNED` on a thread that uses a handful of domains.
//!
//! The read section's fast path is what `Smr::enter` and `Guard::drop` cost
//! most callers, so each side tests one thing. Entry: a cache hit (the key
//! matches the domain's id exactly, which only a membarrier-flavour slot's
//! key does: the fallback flavour's keys carry `RMW_TAG`) and `c_seq` says
//! "not in a section"; then one load of the write sequence and one store.
//! Exit: `Local::nesting` is 0 (no extra guard, not a teardown-time slot);
//! then one store. Everything else (nesting, the RMW flavour, a cache miss,
//! teardown) leaves the fast path by one branch, into `enter_other` or
//! `exit_slow`.

use crate::domain::{Domain, Mode};
use crate::reclaim::{Batch, Deferred, Tagged};
use crate::slots::Slot;
use crate::sys::Flavour;
use crate::{Error, Seq};
use percore_cpu::loom::Arc;
use percore_cpu::loom_thread_local;
use percore_cpu::stats;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering};

mod builder;
mod section;

pub use builder::{Builder, DEFAULT_BATCH, DEFAULT_MAX_PENDING};
use section::{enter_slot, nest};
pub use section::{Guard, Participant};

/// Domain ids are never reused, so a stale cache entry can never match.
static NEXT_ID: StdAtomicU64 = StdAtomicU64::new(1);

struct Fast {
    /// The key of the cached slot's domain (0: none): its id, with
    /// `RMW_TAG` set if the slot publishes with the fallback flavour's RMW
    /// (so that `Smr::enter`'s exact compare sends it off the fast path).
    id: Cell<u64>,
    slot: Cell<*const Slot>,
    /// How many slots `OWNED` holds (so that `in_section` can skip it).
    owned: Cell<usize>,
    /// The first `MIRROR` slots of `OWNED`, in its order, rewritten
    /// whenever `OWNED` changes: `in_section` on a thread that uses a few
    /// domains (a percore-lwkt worker serving percore-evq sockets and a
    /// store has two or three) reads them here instead of borrowing
    /// `OWNED`. Valid for `i < owned.min(MIRROR)`: `OWNED` keeps their
    /// domains alive, and `Owned::drop` zeroes `owned` before it lets go.
    mirror: [Cell<*const Slot>; MIRROR],
}

/// How many of a thread's slots `Fast::mirror` holds.
pub(crate) const MIRROR: usize = 4;

/// Set in a `Fast` key whose slot uses `Flavour::Rmw` (domain ids stay far
/// below it: they count up from 1).
const RMW_TAG: u64 = 1 << 63;

/// The `Fast` key for a slot of `domain`.
fn fast_key(domain: &Domain) -> u64 {
    if domain.flavour == Flavour::Rmw {
        domain.id | RMW_TAG
    } else {
        domain.id
    }
}

impl Fast {
    /// The cached slot, if it belongs to the domain with this id.
    #[inline]
    fn slot_of(&self, id: u64) -> Option<*const Slot> {
        if self.id.get() & !RMW_TAG == id {
            Some(self.slot.get())
        } else {
            None
        }
    }
}

/// Slots this thread owns, with the domains that keep their memory alive.
struct Owned(RefCell<Vec<(Arc<Domain>, *const Slot)>>);

impl Drop for Owned {
    fn drop(&mut self) {
        // Later thread-local destructors may still enter a domain: make them
        // take the ephemeral path instead of this released slot.
        let _ = FAST.try_with(|f| {
            f.id.set(0);
            f.owned.set(0);
        });
        for (domain, slot) in self.0.get_mut().drain(..) {
            // SAFETY: `slot` lives in `domain`'s segments, kept alive by the
            // Arc next to it; this thread owns it.
            domain.release_participant(unsafe { &*slot });
        }
    }
}

loom_thread_local! {
    static FAST: Fast = const {
        Fast {
            id: Cell::new(0),
            slot: Cell::new(std::ptr::null()),
            owned: Cell::new(0),
            mirror: [const { Cell::new(std::ptr::null()) }; MIRROR],
        }
    };
}
loom_thread_local! {
    static OWNED: Owned = Owned(RefCell::new(Vec::new()));
}

/// Whether the calling thread is inside a read section of any SMR domain.
///
/// A scheduler asks this before switching away from a thread: a reader must
/// not block inside a section.
///
/// ```
/// let smr = percore_smr::Smr::new("in-section").unwrap();
/// assert!(!percore_smr::in_section());
/// let g = smr.enter();
/// assert!(percore_smr::in_section());
/// drop(g);
/// assert!(!percore_smr::in_section());
/// ```
#[inline]
pub fn in_section() -> bool {
    // NOTE: the common cases (no domain, or the one cached in `FAST`) read
    // only `FAST`, which has no destructor: no lazy-init check, no borrow.
    let (id, slot, owned) = FAST.with(|f| (f.id.get(), f.slot.get(), f.owned.get()));
    if id != 0 {
        // SAFETY: a non-zero id implies a valid slot (see `Smr::slot`).
        if unsafe { &*slot }.in_section() {
            return true;
        }
        if owned <= 1 {
            return false; // the cached slot is the only one
        }
    } else if owned == 0 {
        return false;
    }
    if owned <= MIRROR {
        // SAFETY: the mirror's first `owned` entries are slots of `OWNED`,
        // whose domains it keeps alive (see `Fast::mirror`); this thread
        // owns them.
        return FAST.with(|f| f.mirror[..owned].iter().any(|p| unsafe { &*p.get() }.in_section()));
    }
    in_section_slow()
}

/// `in_section` for a thread with more slots than the mirror holds.
#[cold]
fn in_section_slow() -> bool {
    // SAFETY: each slot lives in the domain kept alive by the Arc beside it,
    // and this thread owns it.
    OWNED.try_with(|o| o.0.borrow().iter().any(|(_, s)| unsafe { &**s }.in_section())).unwrap_or(false)
}

/// What the last handle owns: dropping it tears the domain down (runs every
/// pending destructor) and removes the domain's stats from the tree.
struct DomainOwner {
    domain: Arc<Domain>,
    _stats: stats::Registration,
}

impl Drop for DomainOwner {
    fn drop(&mut self) {
        self.domain.teardown();
    }
}

/// A safe-memory-reclamation domain (FreeBSD `smr_t`).
///
/// Readers bracket their lock-free reads with [`enter`](Smr::enter); writers
/// unlink objects and hand them to [`retire`](Smr::retire) or
/// [`defer`](Smr::defer), or drive the sequence themselves with
/// [`advance`](Smr::advance) and [`poll`](Smr::poll). Cloning is cheap and
/// shares the domain. When the last clone is dropped, every pending
/// destructor runs (no reader can exist then: guards borrow a handle).
///
/// ```
/// use percore_smr::Smr;
/// use std::sync::atomic::{AtomicPtr, Ordering};
///
/// let smr = Smr::new("doc-smr").unwrap();
/// let shared = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
///
/// // A reader: no fence, no RMW on shared lines.
/// {
///     let _g = smr.enter();
///     // SAFETY: inside a section, a pointer loaded from `shared` stays valid.
///     let v = unsafe { *shared.load(Ordering::Acquire) };
///     assert_eq!(v, 1);
/// }
///
/// // A writer: swap in a new value and retire the old one. The pointer
/// // stays raw: SMR rebuilds the Box only after the grace period.
/// let old = shared.swap(Box::into_raw(Box::new(2u64)), Ordering::AcqRel);
/// // SAFETY: `old` is unlinked, came from Box::into_raw, retired once.
/// unsafe { smr.retire(old) };
/// smr.flush().unwrap(); // wait for readers and run the destructor now
/// # drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
/// ```
#[derive(Clone)]
pub struct Smr {
    /// The protocol state, one pointer away for the read-side fast path.
    domain: Arc<Domain>,
    /// Tears the domain down when the last handle goes.
    _owner: Arc<DomainOwner>,
}

impl Smr {
    /// A domain in the default mode with default limits.
    pub fn new(name: &str) -> Result<Smr, Error> {
        Smr::builder(name).build()
    }

    /// A builder for a domain named `name` (the name appears in the stats
    /// tree as `smr.<name>.*`).
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.to_string(),
            mode: Mode::Default,
            max_pending: DEFAULT_MAX_PENDING,
            batch_size: DEFAULT_BATCH,
        }
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.domain.name
    }

    /// The domain's mode.
    pub fn mode(&self) -> Mode {
        self.domain.mode
    }

    #[inline]
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// This thread's slot, claimed on first use.
    #[inline]
    fn slot(&self) -> *const Slot {
        let id = self.domain().id;
        // NOTE: `FAST` has a const initialiser and no destructor, so `with`
        // never fails and compiles to two %fs-relative loads. A matching id
        // implies a valid slot (ids are never reused, and `Owned::drop`
        // clears the id before giving slots back).
        let hit = FAST.with(|f| f.slot_of(id));
        match hit {
            Some(slot) => slot,
            None => self.slot_slow(true).expect("claiming always yields a slot"),
        }
    }

    /// The slot lookup's slow path: search this thread's slots, claim one
    /// if `claim`, refresh the cache.
    #[cold]
    fn slot_slow(&self, claim: bool) -> Option<*const Slot> {
        let domain = &self.domain;
        let found = OWNED.try_with(|owned| {
            let mut owned = owned.0.borrow_mut();
            let hit = owned.iter().find(|(s, _)| s.id == domain.id).map(|(_, p)| *p);
            let p = match hit {
                Some(p) => p,
                None if claim => {
                    // Drop the memory of dead domains this thread once used.
                    owned.retain(|(s, _)| !s.lock().dead);
                    let slot = domain.slots.claim();
                    slot.rmw.set(domain.flavour == Flavour::Rmw);
                    owned.push((domain.clone(), slot as *const Slot));
                    slot as *const Slot
                }
                None => return None,
            };
            let _ = FAST.try_with(|f| {
                f.id.set(fast_key(domain));
                f.slot.set(p);
                for (m, (_, s)) in f.mirror.iter().zip(owned.iter()) {
                    m.set(*s);
                }
                f.owned.set(owned.len());
            });
            Some(p)
        });
        match found {
            Ok(p) => p,
            // The thread is being torn down: borrow a slot until the owner
            // leaves its section (see `release_ephemeral`). Caching it in
            // `FAST` makes nested sections and `in_section` see it.
            Err(_) if claim => {
                let slot = domain.slots.claim();
                slot.rmw.set(domain.flavour == Flavour::Rmw);
                slot.set_ephemeral();
                FAST.with(|f| {
                    f.id.set(fast_key(domain));
                    f.slot.set(slot);
                });
                Some(slot as *const Slot)
            }
            Err(_) => None,
        }
    }

    /// Give back a teardown-time slot once its owner is outside a section.
    #[cold]
    fn release_ephemeral(&self, slot: &Slot) {
        if slot.in_section() {
            return;
        }
        FAST.with(|f| {
            if std::ptr::eq(f.slot.get(), slot) {
                f.id.set(0);
            }
        });
        self.domain.release_participant(slot);
    }

    /// Enter a read section (`smr_enter`).
    ///
    /// While the returned guard lives, no object retired after the section
    /// began is reclaimed, so pointers loaded inside stay valid. Sections
    /// nest (only the outermost one publishes anything). The guard is not
    /// `Send`: a section belongs to its thread.
    ///
    /// Cost: one thread-local load, one shared load and one store to this
    /// thread's own cache line; no fence, no read-modify-write (with the
    /// membarrier flavour; see the crate docs).
    ///
    /// ```compile_fail
    /// let smr = percore_smr::Smr::new("not-send").unwrap();
    /// let g = smr.enter();
    /// std::thread::spawn(move || drop(g)); // a guard cannot leave its thread
    /// ```
    #[inline]
    pub fn enter(&self) -> Guard<'_> {
        let domain = self.domain();
        let id = domain.id;
        // NOTE: the exact compare hits only a membarrier-flavour slot (see
        // `RMW_TAG`), so this path needs no flavour test.
        let hit = FAST.with(|f| if f.id.get() == id { Some(f.slot.get()) } else { None });
        let slot = match hit {
            Some(slot) => {
                // SAFETY: as in `enter_other`; a matching key implies a
                // valid slot (see `slot`).
                let slot = unsafe { &*slot };
                debug_assert!(!slot.rmw.get());
                if !slot.in_section() {
                    domain.publish_light(slot);
                } else {
                    // NOTE: a layout hint only: keeps the unnested entry
                    // the fall-through path.
                    std::hint::cold_path();
                    nest(slot);
                }
                slot
            }
            None => {
                std::hint::cold_path();
                self.enter_other()
            }
        };
        Guard { smr: self, slot, _not_send: PhantomData }
    }

    /// `enter` off its fast path: a cache miss (first use, or another
    /// domain used last) or the fallback flavour.
    #[inline(never)]
    fn enter_other(&self) -> &Slot {
        // SAFETY: the slot lives as long as the domain's shared state, which
        // `self` keeps alive for the guard's lifetime; this thread owns it.
        let slot = unsafe { &*self.slot() };
        enter_slot(self.domain(), slot);
        slot
    }

    /// This thread's slot, for tests that look at owner-only state.
    #[cfg(test)]
    pub(crate) fn test_slot(&self) -> &Slot {
        // SAFETY: as in `enter_other`.
        unsafe { &*self.slot() }
    }

    /// Whether the calling thread is inside a read section of this domain.
    pub fn in_section(&self) -> bool {
        let id = self.domain().id;
        let p = match FAST.try_with(|f| f.slot_of(id)) {
            Ok(Some(p)) => p,
            _ => match self.slot_slow(false) {
                Some(p) => p,
                None => return false,
            },
        };
        // SAFETY: as in `enter`.
        unsafe { &*p }.in_section()
    }

    /// Register the calling thread explicitly and get a handle that enters
    /// sections without the thread-local lookup. For long-lived workers.
    ///
    /// The slot is the same one [`enter`](Smr::enter) would use on this
    /// thread; it stays the thread's until the thread exits.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("participant").unwrap();
    /// let me = smr.register();
    /// let g = me.enter();
    /// assert!(smr.in_section());
    /// drop(g);
    /// ```
    pub fn register(&self) -> Participant {
        Participant { smr: self.clone(), slot: self.slot(), _not_send: PhantomData }
    }

    /// The current write sequence (`smr_current`).
    pub fn current(&self) -> Seq {
        self.domain().current()
    }

    /// Advance the write sequence and return the goal (`smr_advance`):
    /// once [`poll`](Smr::poll) says the goal expired, no reader can still
    /// see anything the caller unlinked before this call.
    ///
    /// If `wr_seq` would get too far ahead of the slowest reader, this waits
    /// for readers first (counted as `advance_wait`), which keeps the wrap
    /// arithmetic sound. Called inside a read section of this domain it
    /// cannot wait for itself: it then returns a deferred goal one step
    /// ahead without bumping, which `poll` handles like a deferred domain's.
    pub fn advance(&self) -> Seq {
        // ORDERING: modifications made outside a section must be visible
        // before the sequence moves (FreeBSD's atomic_thread_fence_rel);
        // the AcqRel bump carries them too, this covers lazy/deferred paths.
        percore_cpu::loom::fence(Ordering::Release);
        let domain = self.domain();
        match domain.mode {
            Mode::Lazy { .. } => domain.lazy_advance(),
            Mode::Deferred { limit } => {
                // SAFETY: as in `enter`.
                let slot = unsafe { &*self.slot() };
                let goal = domain.deferred_advance(slot, limit, !slot.in_section());
                if slot.ephemeral() {
                    self.release_ephemeral(slot);
                }
                goal
            }
            _ => domain.default_advance(!self.in_section()),
        }
    }

    /// Whether every reader has observed `goal` (`smr_poll`): true means
    /// nothing protected by `goal` is reachable any more.
    ///
    /// With `wait`, spin (then yield) until it is. Inside a read section of
    /// this domain waiting could never finish, so `wait` is ignored there
    /// and the answer is the non-blocking one; use [`wait`](Smr::wait) to
    /// get an error instead. Lazy domains wait by sleeping tick by tick.
    pub fn poll(&self, goal: Seq, wait: bool) -> bool {
        let domain = self.domain();
        if wait && !self.in_section() {
            if matches!(domain.mode, Mode::Lazy { .. }) {
                domain.wait(goal);
                return true;
            }
            return domain.poll(goal, true);
        }
        domain.poll(goal, false)
    }

    /// Wait until `goal` expired (`smr_wait`).
    ///
    /// Returns [`Error::InSection`] when called inside a read section of
    /// this domain, instead of waiting forever.
    pub fn wait(&self, goal: Seq) -> Result<(), Error> {
        if self.in_section() {
            return Err(Error::InSection { domain: self.name().to_string() });
        }
        self.domain().wait(goal);
        Ok(())
    }

    /// Wait until every section that began before this call has ended
    /// (`smr_synchronize`).
    pub fn synchronize(&self) -> Result<(), Error> {
        if self.in_section() {
            return Err(Error::InSection { domain: self.name().to_string() });
        }
        let goal = self.advance();
        self.domain().wait(goal);
        Ok(())
    }

    /// Free the `Box` behind `ptr` once no reader can see it any more.
    ///
    /// Objects collect in a per-thread batch; a full batch is tagged with one
    /// `advance` and freed when it expires. See [`Builder::max_pending`] for
    /// when this blocks. A null `ptr` is ignored.
    ///
    /// The pointer stays raw until the grace period has ended: only then is
    /// the `Box` rebuilt (`Box::from_raw`) and dropped. Rebuilding it
    /// earlier, as the `retire(Box<T>)` of older versions made callers do, is
    /// undefined behaviour: a `Box` asserts unique access while readers may
    /// still hold shared references (issue 16; Miri reports it).
    ///
    /// # Safety
    ///
    /// * `ptr` is null or came from [`Box::<T>::into_raw`] (or
    ///   [`Box::leak`]);
    /// * it is already unreachable for readers that enter a section of this
    ///   domain from now on (unlinked);
    /// * nobody frees, retires, or writes through it afterwards, and nobody
    ///   uses it after the grace period (readers that entered before the
    ///   unlink may keep reading through shared references until they leave
    ///   their section).
    ///
    /// ```
    /// use percore_smr::Smr;
    /// use std::sync::atomic::{AtomicPtr, Ordering};
    ///
    /// let smr = Smr::new("doc-retire").unwrap();
    /// let shared = AtomicPtr::new(Box::into_raw(Box::new(String::from("old"))));
    /// let old = shared.swap(Box::into_raw(Box::new(String::from("new"))), Ordering::AcqRel);
    /// // SAFETY: `old` came from Box::into_raw, is unlinked, retired once.
    /// unsafe { smr.retire(old) };
    /// smr.flush().unwrap();
    /// # drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
    /// ```
    ///
    /// Handing over a `Box` does not compile any more:
    ///
    /// ```compile_fail
    /// let smr = percore_smr::Smr::new("doc-retire-box").unwrap();
    /// unsafe { smr.retire(Box::new(1u32)) };
    /// ```
    #[inline]
    pub unsafe fn retire<T: Send + 'static>(&self, ptr: *mut T) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: the caller's promise (see above) is `Deferred::boxed`'s.
        let d = unsafe { Deferred::boxed(ptr) };
        self.push(d, std::mem::size_of::<T>());
    }

    /// Call `f` once no reader can see what the caller unlinked before this
    /// call. Batched exactly like [`retire`](Smr::retire).
    #[inline]
    pub fn defer<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.push(Deferred::closure(f), std::mem::size_of::<F>());
    }

    #[inline]
    fn push(&self, d: Deferred, bytes: usize) {
        // SAFETY: as in `enter`.
        let slot = unsafe { &*self.slot() };
        // SAFETY: the batch is owner-only and this thread owns the slot; the
        // borrow ends before anything can re-enter (destructors run later).
        let full = unsafe {
            let batch = &mut *slot.local.batch.get();
            batch.push(d, bytes);
            batch.len() >= self.domain().batch_size
        };
        if full {
            // SAFETY: as above.
            let batch = unsafe { (*slot.local.batch.get()).take() };
            self.queue_batch(slot, batch, !slot.in_section());
        }
        if slot.ephemeral() {
            // Thread teardown: queue the batch with the slot now (or at
            // section exit), there is no later retire to do it.
            self.release_ephemeral(slot);
        }
    }

    /// Tag `batch` with one advance, queue it, and reclaim what expired.
    #[cold]
    fn queue_batch(&self, slot: &Slot, batch: Batch, may_wait: bool) {
        let domain = self.domain();
        let tag = match domain.mode {
            Mode::Lazy { .. } => domain.lazy_advance(),
            Mode::Deferred { limit } => domain.deferred_advance(slot, limit, may_wait),
            _ => domain.default_advance(may_wait),
        };
        domain.enqueue(Tagged { tag, batch });
        domain.reclaim(may_wait);
    }

    /// Tag this thread's partial batch, wait for every batch queued in the
    /// domain so far, and run them all. Other threads' untagged batches are
    /// theirs to flush.
    ///
    /// Returns [`Error::InSection`] inside a read section of this domain.
    pub fn flush(&self) -> Result<(), Error> {
        if self.in_section() {
            return Err(Error::InSection { domain: self.name().to_string() });
        }
        // SAFETY: as in `enter`.
        let slot = unsafe { &*self.slot() };
        if slot.ephemeral() {
            self.release_ephemeral(slot);
        } else {
            // SAFETY: owner-only batch, see `push`.
            let batch = unsafe { (*slot.local.batch.get()).take() };
            if batch.len() > 0 {
                let domain = self.domain();
                let tag = match domain.mode {
                    Mode::Lazy { .. } => domain.lazy_advance(),
                    _ => domain.default_advance(true),
                };
                domain.enqueue(Tagged { tag, batch });
            }
        }
        self.domain().drain_queue();
        Ok(())
    }

    /// Objects retired into queued batches and not yet reclaimed (this
    /// thread's and others' untagged batches are not counted).
    pub fn pending(&self) -> usize {
        // ORDERING: a statistic.
        self.domain().pending.load(Ordering::Relaxed)
    }

    /// Bytes of the objects counted by [`pending`](Smr::pending).
    pub fn pending_bytes(&self) -> usize {
        // ORDERING: a statistic.
        self.domain().pending_bytes.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Smr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.domain();
        f.debug_struct("Smr")
            .field("name", &s.name)
            .field("mode", &s.mode)
            .field("wr_seq", &s.current())
            .field("rd_seq", &s.rd_seq())
            .field("pending", &self.pending())
            .finish()
    }
}
