//! The engine shared by [`Zone`](crate::Zone) and [`SmrZone`](crate::SmrZone):
//! per-participant magazines over a depot over a keg of slabs.
//!
//! # The three layers (UMA's `uma_cache` / `uma_zone_domain` / `uma_keg`)
//!
//! ```text
//!  alloc/free fast path      slot[i]: alloc bucket, free bucket  (no atomics)
//!        | bucket empty / full
//!  slow path, one lock       depot: full, empty, loose buckets   (bucket.rs)
//!        | depot empty
//!  import, one lock          keg: slabs of raw items             (slab.rs)
//! ```
//!
//! Item states: *raw* (in a slab, no `T`), *constructed* (`init` ran; in a
//! bucket), *allocated* (`ctor` ran; owned by the caller). `init`/`fini` run
//! when an item crosses the keg boundary, `ctor`/`dtor` on every allocation
//! and free, so constructed state survives free and reuse (`kmem_cache`).
//!
//! # Fast paths
//!
//! `alloc` reads the thread's participant index (one thread-local load), finds
//! its slot with one bounds check (an unset or dead index is out of range)
//! and pops from the alloc bucket; `free` pushes on the free bucket. Only the
//! slot's own cache line is written, and nothing is counted: the slow path
//! derives the fast path's allocations and frees from how far each bucket's
//! fill level moved (`Slot::slow`). Limited zones also read `sleepers`, a
//! line that is written only when a thread starts or stops waiting.
//!
//! # Slow paths
//!
//! * Plain zones swap the two buckets first (UMA's `cache_alloc_retry`).
//! * Then the depot: trade an empty bucket for a full one, or a full one for
//!   an empty one (`bucket.rs`).
//! * Then the keg: fill a bucket with `bucket_size` fresh items, running
//!   `init` on each outside every lock.
//!
//! # SMR zones (`UMA_ZONE_SMR`)
//!
//! A zone with a [`Grace`] domain never swaps its buckets: a full free
//! bucket is tagged with `advance()` and appended at the depot's tail, and
//! `alloc` takes the depot's head only when its tag has expired (a
//! non-blocking poll); otherwise it imports fresh memory. So the sequence is
//! advanced once per bucket of frees, and nobody waits unless the zone is at
//! its item limit, where `alloc_wait` polls the head until it expires.
//! `fini` runs only on items whose tag has expired, so a reader inside a
//! section that still holds a pointer to a freed item finds a constructed
//! `T` (perhaps reallocated: type-stable, not identity-stable).
//!
//! # Limits and waiting
//!
//! The keg counts items outside it (constructed or allocated) and never lets
//! the count pass `max_items`. A thread in `alloc_wait` increments
//! `sleepers`; while it is non-zero, frees bypass the private buckets and go
//! to the depot at once (UMA's `uz_sleepers` check in `uma_zfree_arg`), then
//! notify the waiters, who re-check under `wait_mx` (so no wakeup is lost
//! among frees that saw `sleepers`; others are caught by the bounded slices).
//! A waiter on a percore-lwkt uthread does not block its worker: it naps
//! through `percore_cpu::coop` (1 ms at a time) and polls, so that a free
//! by another uthread of the same worker can happen meanwhile.
//!
//! # Panicking hooks
//!
//! `init`, `ctor` and `dtor` are user code and may panic. Each call is
//! wrapped in `catch_unwind`; the zone first settles its accounting and only
//! then re-raises the panic to the caller of `alloc` or `free`, so no panic
//! can use up `max_items` capacity (issue 16):
//!
//! * `init` panics: no `T` exists; the item's raw memory (and every raw item
//!   of the same import not yet constructed) goes back to the keg, which
//!   un-counts it. Items of that import already constructed stay cached.
//! * `ctor` panics: the item goes back through the free path (without
//!   `dtor`), as the hook left it: a valid `T`, since hooks get `&T` or
//!   `&mut T`. The next allocation runs `ctor` on it again.
//! * `dtor` panics: the free completes as usual, then the panic propagates.
//!
//! `fini` and `T`'s `Drop` run at reclaim and teardown, with no caller to
//! hand a panic to: a panic there is caught, counted under `hook_panics` in
//! the stats tree, and the item's memory is freed all the same.

use crate::bucket::{Bucket, Depot, Side};
use crate::grace::{Grace, Tag};
use crate::participant;
use crate::slab::{Geometry, Keg};
use crate::tuning::{BUCKET_MIN, SCAN_SLACK, SMR_BUCKET_START};
use crate::Error;
use percore_cpu::loom::{AtomicUsize, Condvar, Mutex, Ordering, UnsafeCell};
use percore_cpu::{Counter, PerSlot};
use std::alloc::Layout;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

mod maint;

/// A caught panic of a hook, held until the zone's state is settled.
type Payload = Box<dyn std::any::Any + Send>;

/// Run a hook, catching its panic.
#[inline]
fn hook(f: impl FnOnce()) -> Result<(), Payload> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// Raise a hook's panic once the zone is consistent again.
#[cold]
fn reraise(p: Payload) -> ! {
    std::panic::resume_unwind(p)
}

/// A hook called with a pointer to a constructed item. The wrapper built by
/// the public builder decides whether it gets `&T` or `&mut T`.
pub(crate) type Hook<T> = Box<dyn Fn(NonNull<T>) + Send + Sync>;

/// The four UMA hooks.
pub(crate) struct Hooks<T> {
    pub(crate) init: Box<dyn Fn() -> T + Send + Sync>,
    pub(crate) fini: Option<Hook<T>>,
    pub(crate) ctor: Option<Hook<T>>,
    pub(crate) dtor: Option<Hook<T>>,
    /// Panics of `fini` or `T::drop` caught at reclaim or teardown (the
    /// stats tree's `hook_panics`).
    pub(crate) lost_panics: AtomicU64,
}

impl<T> Hooks<T> {
    /// Turn a constructed item back into raw memory: `fini`, then drop.
    ///
    /// # Safety
    /// `p` is a constructed item nobody else can reach (for SMR zones: its
    /// tag has expired).
    unsafe fn destroy(&self, p: NonNull<T>) {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        // NOTE: nobody called in who could take a panic here (reclaim,
        // teardown, a grace period's end), so a panic of `fini` or of `T`'s
        // `Drop` is caught (the panic hook still reports it), counted, and
        // the item's memory is freed all the same.
        let fini = self.fini.as_ref().map_or(Ok(()), |fini| catch_unwind(AssertUnwindSafe(|| fini(p))));
        // SAFETY: per the contract, `p` holds a `T` that nobody can reach;
        // a panicking `fini` leaves it a valid `T` (hooks get `&mut T`).
        let drop = catch_unwind(AssertUnwindSafe(|| unsafe { p.as_ptr().drop_in_place() }));
        if fini.is_err() || drop.is_err() {
            // ORDERING: a statistic; nothing is published through it.
            self.lost_panics.fetch_add(1, StdOrdering::Relaxed);
        }
    }
}

/// What the public builders hand the engine.
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) limit: Option<usize>,
    pub(crate) nocache: bool,
    pub(crate) participants: usize,
}

/// A single-writer statistics counter: the slot owner adds with a plain
/// load and store (no RMW), and only on slow paths; readers sum.
#[derive(Default)]
struct StatCell(AtomicU64);

impl StatCell {
    fn add(&self, n: usize) {
        // ORDERING: a statistic with a single writer (the slot's owner).
        self.0.store(self.0.load(StdOrdering::Relaxed).wrapping_add(n as u64), StdOrdering::Relaxed);
    }
    fn get(&self) -> u64 {
        // ORDERING: a statistic.
        self.0.load(StdOrdering::Relaxed)
    }
}

/// One participant's private cache. `mag` is touched only by the thread
/// holding the slot's index (participant.rs invariant 1) or by `Drop`.
struct Slot<T> {
    mag: UnsafeCell<Magazine<T>>,
    allocs: StatCell,
    frees: StatCell,
}

impl<T> Slot<T> {
    /// Run a slow-path step on the magazine. The fast paths count nothing;
    /// here the pops and pushes they did since the last step are added to the
    /// slot's counters first, and the sides re-based after `f`, whose own
    /// pops and pushes the shared counters count.
    ///
    /// # Safety
    /// The caller holds the slot's participant index, or has exclusive access
    /// to the zone.
    unsafe fn slow<R>(&self, f: impl FnOnce(&mut Magazine<T>) -> R) -> R {
        self.mag.with_mut(|m| {
            // SAFETY: per the contract, nobody else touches the magazine.
            let m = unsafe { &mut *m };
            self.allocs.add(m.alloc.popped());
            self.frees.add(m.free.pushed());
            let r = f(m);
            m.alloc.rebase();
            m.free.rebase();
            r
        })
    }
}

struct Magazine<T> {
    alloc: Side<T>,
    free: Side<T>,
    /// Serial of the thread that registered this zone for its exit drain.
    owner: u64,
}

/// Counters for a zone (see [`crate::Stats`]).
#[derive(Default)]
pub(crate) struct ZoneCounters {
    allocs: Counter,
    frees: Counter,
    pub(crate) fails: Counter,
}

/// The object cache both zone kinds are built on (UMA's `uma_zone`):
/// per-participant buckets, the depot, the slabs, and for SMR zones the
/// grace-period tags.
pub(crate) struct Cache<T: Send + 'static> {
    pub(crate) name: String,
    /// `init` and `fini` (shared with a deferred teardown).
    hooks: Arc<Hooks<T>>,
    /// Moved out of `hooks` so the fast paths test them with one load.
    ctor: Option<Hook<T>>,
    dtor: Option<Hook<T>>,
    slots: PerSlot<Slot<T>>,
    depot: Depot<T>,
    keg: Keg,
    limit: usize,
    limited: bool,
    nocache: bool,
    pub(crate) grace: Option<Arc<dyn Grace>>,
    /// Threads inside `alloc_wait`.
    sleepers: AtomicUsize,
    wait_mx: Mutex<()>,
    wake: Condvar,
    /// No-cache SMR zones: freed items waiting for their tag, oldest first.
    retired: Mutex<VecDeque<(Tag, NonNull<T>)>>,
    pub(crate) counters: ZoneCounters,
    me: Weak<Cache<T>>,
    _reg: Option<percore_cpu::stats::Registration>,
}

// SAFETY: items are `T: Send` values moved between threads by the zone; the
// raw pointers inside are owned by the zone and guarded as documented on
// each field (slot cells by participant ownership, the rest by mutexes).
unsafe impl<T: Send + 'static> Send for Cache<T> {}
// SAFETY: as above; no `&T` is shared by the zone itself.
unsafe impl<T: Send + 'static> Sync for Cache<T> {}

impl<T: Send + 'static> Cache<T> {
    pub(crate) fn new(cfg: Config, mut hooks: Hooks<T>, grace: Option<Arc<dyn Grace>>) -> Result<Arc<Self>, Error> {
        if cfg.limit == Some(0) {
            return Err(Error::Config(format!("zone {}: max_items must be at least 1", cfg.name)));
        }
        let geo = Geometry::new(Layout::new::<T>())
            .ok_or_else(|| Error::Config(format!("zone {}: items too large for a slab", cfg.name)))?;
        let nocache = cfg.nocache || std::env::var_os("PERCORE_ZONE_NOCACHE").is_some_and(|v| v == "1");
        let cpus = percore_cpu::allowed_cpus().map_or(1, |c| c.len());
        // Limited zones keep buckets small so that little of the limit can
        // sit in private caches (at most 2 buckets per participant).
        let bucket_max = cfg.limit.map_or(usize::MAX, |l| (l / (4 * cpus)).max(1));
        let nslots = if nocache { 0 } else { cfg.participants };
        let prefix = format!("zone.{}", cfg.name);
        Ok(Arc::new_cyclic(|me: &Weak<Cache<T>>| {
            let reg = percore_cpu::stats::register_source(&prefix, me.clone());
            Cache {
                name: cfg.name,
                ctor: hooks.ctor.take(),
                dtor: hooks.dtor.take(),
                hooks: Arc::new(hooks),
                slots: PerSlot::new(nslots, |_| Slot {
                    mag: UnsafeCell::new(Magazine { alloc: Side::new(), free: Side::new(), owner: 0 }),
                    allocs: StatCell::default(),
                    frees: StatCell::default(),
                }),
                depot: Depot::new(bucket_max, if grace.is_some() { SMR_BUCKET_START } else { BUCKET_MIN }),
                keg: Keg::new(geo),
                limit: cfg.limit.unwrap_or(usize::MAX),
                limited: cfg.limit.is_some(),
                nocache,
                grace,
                sleepers: AtomicUsize::new(0),
                wait_mx: Mutex::new(()),
                wake: Condvar::new(),
                retired: Mutex::new(VecDeque::new()),
                counters: ZoneCounters::default(),
                me: me.clone(),
                _reg: Some(reg),
            }
        }))
    }

    /// Allocate a constructed item and run `ctor`. With `deadline`, wait at
    /// the item limit until then.
    #[inline]
    pub(crate) fn alloc(&self, deadline: Option<Instant>) -> Result<NonNull<T>, Error> {
        if let Some(slot) = self.slots.get(participant::current()) {
            // SAFETY: the slot is this thread's (participant invariant 1).
            let hit = slot.mag.with_mut(|m| unsafe { (*m).alloc.pop() });
            if let Some(p) = hit {
                self.ctor(p);
                return Ok(p);
            }
        }
        self.alloc_slow(deadline)
    }

    /// Run `dtor` and give the item back.
    ///
    /// # Safety
    /// `p` came from `alloc` on this zone and is not used by the caller
    /// afterwards (SMR zones: readers may still read it; see the crate docs).
    #[inline]
    pub(crate) unsafe fn free(&self, p: NonNull<T>) {
        if let Some(dtor) = &self.dtor {
            if let Err(panic) = hook(|| dtor(p)) {
                // SAFETY: forwarded contract.
                unsafe { self.give_back(p) };
                reraise(panic);
            }
        }
        // SAFETY: forwarded contract.
        unsafe { self.give_back(p) };
    }

    /// `free` after `dtor`: the item goes back to the cache.
    ///
    /// # Safety
    /// As for `free`.
    #[inline]
    unsafe fn give_back(&self, p: NonNull<T>) {
        // ORDERING: a hint; a waiter that raced past it is woken by its own
        // bounded wait slice (see the module docs).
        if !self.limited || self.sleepers.load(Ordering::Relaxed) == 0 {
            if let Some(slot) = self.slots.get(participant::current()) {
                let done = slot.mag.with_mut(|m| {
                    // SAFETY: the slot is this thread's.
                    unsafe { (*m).free.push(p) }
                });
                if done {
                    return;
                }
            }
        }
        self.free_slow(p);
    }

    #[inline]
    fn ctor(&self, p: NonNull<T>) {
        if let Some(ctor) = &self.ctor {
            if let Err(panic) = hook(|| ctor(p)) {
                self.ctor_panicked(p, panic);
            }
        }
    }

    /// `ctor` panicked on `p`: give the item back (without `dtor`; it is a
    /// valid `T` as the hook left it), then re-raise.
    #[cold]
    fn ctor_panicked(&self, p: NonNull<T>, panic: Payload) -> ! {
        // SAFETY: `p` came from this zone's alloc and the caller never saw it.
        unsafe { self.give_back(p) };
        reraise(panic)
    }

    #[cold]
    fn alloc_slow(&self, deadline: Option<Instant>) -> Result<NonNull<T>, Error> {
        let p = match self.alloc_once()? {
            Some(p) => p,
            None => self.alloc_wait_slow(deadline)?,
        };
        self.counters.allocs.inc();
        self.ctor(p);
        Ok(p)
    }

    /// One attempt through every layer; `None` at the item limit.
    ///
    /// A panic of `init` is re-raised here, after the import that ran it
    /// has put its bucket away (see "Panicking hooks").
    fn alloc_once(&self) -> Result<Option<NonNull<T>>, Error> {
        if self.nocache {
            return self.nocache_alloc();
        }
        let mut panic = None;
        let r = match self.my_slot() {
            // SAFETY: the slot is this thread's.
            Some(slot) => unsafe { slot.slow(|m| self.refill(m, &mut panic)) },
            None => self.uncached_alloc(&mut panic),
        };
        if let Some(p) = panic {
            // NOTE: `refill` takes nothing after a panic, and a one-item
            // import that panicked has nothing to hand out.
            debug_assert!(!matches!(r, Ok(Some(_))), "an item taken despite init's panic");
            reraise(p);
        }
        r
    }

    /// The calling thread's slot, registering the zone for its exit drain
    /// on first use; `None` for threads without one (index out of range, or
    /// tearing down).
    fn my_slot(&self) -> Option<&Slot<T>> {
        let (index, serial) = participant::me()?;
        let slot = self.slots.get(index)?;
        // SAFETY: the slot is this thread's.
        let mine = slot.mag.with_mut(|m| unsafe { (*m).owner } == serial);
        if !mine {
            if !participant::register(self.me.clone()) {
                return None;
            }
            slot.mag.with_mut(|m| {
                // SAFETY: the slot is this thread's.
                let m = unsafe { &mut *m };
                debug_assert!(!m.alloc.has_bucket() && !m.free.has_bucket(), "slot inherited buckets");
                m.owner = serial;
            });
        }
        Some(slot)
    }

    /// The alloc bucket is empty: swap, trade at the depot, or import.
    fn refill(&self, m: &mut Magazine<T>, panic: &mut Option<Payload>) -> Result<Option<NonNull<T>>, Error> {
        if let Some(p) = m.alloc.pop() {
            return Ok(Some(p));
        }
        if self.grace.is_none() && !m.free.is_empty() {
            std::mem::swap(&mut m.alloc, &mut m.free);
            return Ok(m.alloc.pop());
        }
        let size = self.depot.bucket_size();
        let mut bucket = {
            let mut d = self.depot.lock();
            // SMR: a poll that must scan costs a heavy fence (membarrier),
            // so poll only once SCAN_SLACK tagged buckets wait: one scan
            // then moves rd_seq past all but the newest, and their polls
            // are a load and a compare.
            let poll = d.tagged >= SCAN_SLACK;
            if let Some(full) = d.take_full(|t| poll && self.expired(t)) {
                if let Some(old) = m.alloc.put(full) {
                    d.put_empty(old);
                }
                drop(d);
                return Ok(m.alloc.pop());
            }
            match m.alloc.take() {
                Some(b) if b.cap() >= size => b,
                Some(b) => {
                    d.put_empty(b);
                    d.take_empty(size)
                }
                None => d.take_empty(size),
            }
        };
        let cap = bucket.cap();
        let r = self.import(&mut bucket, cap, panic);
        if matches!(r, Ok(0)) && self.grace.is_some() && panic.is_none() {
            // At the item limit: now a scan is worth its fence.
            let mut d = self.depot.lock();
            if let Some(full) = d.take_full(|t| self.expired(t)) {
                d.put_empty(bucket);
                if let Some(old) = m.alloc.put(full) {
                    d.put_empty(old);
                }
                drop(d);
                return Ok(m.alloc.pop());
            }
        }
        if let Some(old) = m.alloc.put(bucket) {
            self.depot.lock().put_full(old);
        }
        if panic.is_some() {
            return Ok(None); // `alloc_once` raises it; take nothing
        }
        r.map(|_| m.alloc.pop())
    }

    /// Fill `bucket` with up to `n` fresh items from the keg, running `init`
    /// on each outside the keg lock. Returns how many were constructed.
    ///
    /// If `init` panics, the raw items not constructed go back to the keg
    /// and the panic is left in `panic` for the caller to raise once the
    /// bucket is put away.
    fn import(&self, bucket: &mut Bucket<T>, n: usize, panic: &mut Option<Payload>) -> Result<usize, Error> {
        let mut raw = Vec::with_capacity(n);
        self.keg
            .import(n, self.limit, &mut raw)
            .map_err(|bytes| Error::OutOfMemory { zone: self.name.clone(), bytes })?;
        let mut made = 0;
        for (i, r) in raw.iter().enumerate() {
            let p = r.cast::<T>();
            // SAFETY: a raw item of our keg: aligned, sized for `T`, unused.
            if let Err(e) = hook(|| unsafe { p.as_ptr().write((self.hooks.init)()) }) {
                // NOTE: `init` panicked before the write: items `i..` hold
                // no `T`; un-count them (issue 16: no phantom items).
                self.keg.release(raw[i..].iter().copied());
                *panic = Some(e);
                break;
            }
            // The bucket has room: `n` is at most its free capacity.
            let _ = bucket.push(p);
            made += 1;
        }
        Ok(made)
    }

    fn expired(&self, tag: &Tag) -> bool {
        self.grace.as_ref().is_none_or(|g| g.expired(tag))
    }

    fn tag_of(&self, b: &Bucket<T>) -> Option<Tag> {
        match &self.grace {
            Some(g) if !b.is_empty() => Some(g.advance()),
            _ => None,
        }
    }

    #[cold]
    fn free_slow(&self, p: NonNull<T>) {
        self.counters.frees.inc();
        if self.nocache {
            return self.nocache_free(p);
        }
        // ORDERING: pairs with the SeqCst increment in `alloc_wait_slow`:
        // either we see the sleeper, or it sees our item on its next check.
        let handoff = self.limited && self.sleepers.load(Ordering::SeqCst) > 0;
        let Some(slot) = self.my_slot() else {
            self.uncached_free(p, handoff);
            return;
        };
        // SAFETY: the slot is this thread's.
        unsafe {
            slot.slow(|m| {
                // UMA's cache_free: a plain zone makes the emptier of its two
                // buckets the free one and pushes there if it can.
                if !handoff && self.grace.is_none() {
                    if m.alloc.has_bucket() && m.free.has_bucket() && m.alloc.len() < m.free.len() {
                        std::mem::swap(&mut m.alloc, &mut m.free);
                    }
                    if m.free.push(p) {
                        return;
                    }
                }
                let mut full = m.free.take();
                if let Some(f) = full.as_mut() {
                    f.tag = self.tag_of(f);
                }
                let size = self.depot.bucket_size();
                let mut d = self.depot.lock();
                if let Some(f) = full {
                    d.put_full(f);
                }
                let mut e = d.take_empty(size);
                let _ = e.push(p);
                if handoff {
                    e.tag = self.tag_of(&e);
                    d.put_full(e);
                } else {
                    if let Some(old) = m.free.put(e) {
                        d.put_full(old);
                    }
                }
            })
        };
        if handoff {
            self.wake_waiters();
        }
    }

    /// Alloc for a thread without a slot: one item from the depot or keg.
    fn uncached_alloc(&self, panic: &mut Option<Payload>) -> Result<Option<NonNull<T>>, Error> {
        {
            let mut d = self.depot.lock();
            if self.grace.is_none() {
                if let Some(p) = d.loose.as_mut().and_then(|b| b.pop()) {
                    d.items -= 1;
                    return Ok(Some(p));
                }
            }
            if let Some(mut b) = d.take_full(|t| self.expired(t)) {
                let p = b.pop();
                d.put_full(b);
                return Ok(p);
            }
        }
        let mut one = Bucket::new(1);
        self.import(&mut one, 1, panic)?;
        Ok(one.pop())
    }

    /// Free for a thread without a slot: into the depot's loose bucket.
    fn uncached_free(&self, p: NonNull<T>, handoff: bool) {
        let size = self.depot.bucket_size();
        let mut d = self.depot.lock();
        let mut loose = d.loose.take().unwrap_or_else(|| Bucket::new(size));
        d.items -= loose.len();
        if let Err(p) = loose.push(p) {
            loose.tag = self.tag_of(&loose);
            d.put_full(loose);
            loose = d.take_empty(size);
            let _ = loose.push(p);
        }
        if handoff || self.grace.is_some() && loose.is_full() {
            loose.tag = self.tag_of(&loose);
            d.put_full(loose);
        } else {
            d.items += loose.len();
            d.loose = Some(loose);
        }
        drop(d);
        if handoff {
            self.wake_waiters();
        }
    }

    fn wake_waiters(&self) {
        let _g = self.wait_mx.lock();
        self.wake.notify_all();
    }

    /// At the item limit: fail, or wait until `deadline`.
    #[cold]
    fn alloc_wait_slow(&self, deadline: Option<Instant>) -> Result<NonNull<T>, Error> {
        let Some(deadline) = deadline else {
            self.counters.fails.inc();
            return Err(Error::Full { zone: self.name.clone(), limit: self.limit });
        };
        let start = Instant::now();
        // ORDERING: SeqCst pairs with the load in `free_slow`: a free either
        // sees this sleeper and hands its item over, or happened before our
        // next `alloc_once`, which then finds the item.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        /// Un-counts the sleeper on every exit, a hook's panic included.
        struct Sleeper<'a>(&'a AtomicUsize);
        impl Drop for Sleeper<'_> {
            fn drop(&mut self) {
                // ORDERING: see the increment.
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let sleeper = Sleeper(&self.sleepers);
        let r = self.wait_loop(deadline, start);
        drop(sleeper);
        if r.is_err() {
            self.counters.fails.inc();
        }
        r
    }

    fn wait_loop(&self, deadline: Instant, start: Instant) -> Result<NonNull<T>, Error> {
        let mut g = self.wait_mx.lock();
        loop {
            if let Some(grace) = &self.grace {
                // Our own frees are not expired either; queue them so the
                // tag clock starts running for them.
                self.flush_own_free_bucket();
                if self.depot.lock().head_tag().is_some() && grace.in_section() {
                    return Err(Error::InSection { zone: self.name.clone() });
                }
            }
            if let Some(p) = self.alloc_once()? {
                return Ok(p);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout { zone: self.name.clone(), limit: self.limit, timeout: now - start });
            }
            // SMR: poll the head's tag every millisecond; otherwise frees
            // notify us, and the slice only bounds a missed notification.
            let slice = if self.grace.is_some() { Duration::from_millis(1) } else { Duration::from_millis(20) };
            if percore_cpu::coop::can_nap() {
                // NOTE: on a uthread, nap instead of blocking its worker: the
                // free we wait for may come from a uthread of the same
                // worker (issue 16). Without `wait_mx`, which that free
                // takes to notify; the nap bounds the polling latency.
                drop(g);
                let napped = percore_cpu::coop::nap(Duration::from_millis(1).min(deadline - now));
                g = self.wait_mx.lock();
                if napped {
                    continue;
                }
            }
            g = self.wake.wait_timeout(g, slice.min(deadline - now));
        }
    }

    /// Move the calling thread's (SMR) free bucket to the depot, tagged.
    fn flush_own_free_bucket(&self) {
        let Some(index) = self.my_slot().map(|_| participant::current()) else {
            return;
        };
        if let Some(slot) = self.slots.get(index) {
            // SAFETY: the slot is this thread's.
            let f = unsafe { slot.slow(|m| m.free.take()) };
            if let Some(mut f) = f {
                f.tag = self.tag_of(&f);
                self.depot.lock().put_full(f);
            }
        }
    }

    /// Empty `slot` into the depot (thread exit, reclaim, drop).
    fn drain_slot(&self, slot: &Slot<T>, forget_owner: bool) {
        // SAFETY: called by the slot's owner, or with exclusive access.
        let (a, f) = unsafe {
            slot.slow(|m| {
                if forget_owner {
                    m.owner = 0;
                }
                (m.alloc.take(), m.free.take())
            })
        };
        // Alloc-bucket items are safe now (they came from an expired or an
        // untagged bucket); free-bucket items start their grace period here.
        let f = f.map(|mut f| {
            f.tag = self.tag_of(&f);
            f
        });
        let mut d = self.depot.lock();
        for b in [a, f].into_iter().flatten() {
            d.put_full(b);
        }
        drop(d);
        if self.limited {
            self.wake_waiters();
        }
    }
}
