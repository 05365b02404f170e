//! The engine's maintenance side: no-cache mode, reclaim, statistics, thread
//! exit and teardown. See `cache.rs` for the design.

use super::{Cache, Hooks, Slot};
use crate::participant::Drain;
use crate::{Error, Reclaimed, Stats};
use percore_cpu::loom::Ordering;
use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

impl<T: Send + 'static> Cache<T> {
    /// No-cache mode: every item is its own system allocation, so a
    /// sanitizer or valgrind sees each alloc and free.
    pub(super) fn nocache_alloc(&self) -> Result<Option<NonNull<T>>, Error> {
        self.reap_retired();
        if !self.keg.charge(1, self.limit) {
            return Ok(None);
        }
        let layout = Layout::new::<T>();
        let p = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: non-zero size.
            match NonNull::new(unsafe { alloc(layout) }) {
                Some(p) => p.cast::<T>(),
                None => {
                    self.keg.uncharge(1);
                    return Err(Error::OutOfMemory { zone: self.name.clone(), bytes: layout.size() });
                }
            }
        };
        // SAFETY: fresh memory with `T`'s layout.
        if let Err(panic) = super::hook(|| unsafe { p.as_ptr().write((self.hooks.init)()) }) {
            // No `T` was written: free the memory, un-count it, re-raise.
            if layout.size() != 0 {
                // SAFETY: allocated above with this layout, holds no `T`.
                unsafe { dealloc(p.as_ptr().cast(), layout) };
            }
            self.keg.uncharge(1);
            super::reraise(panic);
        }
        Ok(Some(p))
    }

    /// No-cache free: destroy now (plain), or after the grace period (SMR).
    pub(super) fn nocache_free(&self, p: NonNull<T>) {
        match &self.grace {
            None => {
                // SAFETY: the caller gave `p` up; no reader can hold it.
                unsafe { nocache_destroy(&self.hooks, p) };
                self.keg.uncharge(1);
            }
            Some(g) => {
                let tag = g.advance();
                self.retired.lock().push_back((tag, p));
                self.reap_retired();
            }
        }
        if self.limited {
            self.wake_waiters();
        }
    }

    /// No-cache SMR zones: destroy retired items whose tag has expired.
    fn reap_retired(&self) {
        let Some(g) = &self.grace else { return };
        let mut done = Vec::new();
        {
            let mut r = self.retired.lock();
            while r.front().is_some_and(|(tag, _)| g.expired(tag)) {
                if let Some((_, p)) = r.pop_front() {
                    done.push(p);
                }
            }
        }
        for p in &done {
            // SAFETY: the item's tag expired: no reader can still see it.
            unsafe { nocache_destroy(&self.hooks, *p) };
        }
        if !done.is_empty() {
            self.keg.uncharge(done.len());
        }
    }

    /// Trim the caches: the caller's own buckets and every depot bucket whose
    /// items may be destroyed (SMR: whose tag has expired) go back to the
    /// slabs, with `fini`; then fully free slabs go back to the system.
    pub(crate) fn reclaim(&self) -> Reclaimed {
        if let Some(slot) = self.slots.get(crate::participant::current()) {
            self.drain_slot(slot, false);
        }
        let mut buckets = Vec::new();
        {
            let mut d = self.depot.lock();
            while let Some(b) = d.take_full(|t| self.expired(t)) {
                buckets.push(b);
            }
            if self.grace.is_none() {
                if let Some(b) = d.loose.take() {
                    d.items -= b.len();
                    buckets.push(b);
                }
            }
            d.empty.clear();
        }
        let mut raw = Vec::new();
        for mut b in buckets {
            for p in b.drain() {
                // SAFETY: a cached item (plain zone) or one whose tag expired
                // (SMR zone): nobody can reach it.
                unsafe { self.hooks.destroy(p) };
                raw.push(p.cast::<u8>());
            }
        }
        let items = raw.len();
        self.keg.release(raw);
        self.reap_retired();
        let slabs = self.keg.release_free_slabs();
        self.depot.shrink();
        Reclaimed { items, slabs }
    }

    /// A snapshot of the zone's counters.
    pub(crate) fn stats(&self) -> Stats {
        // Settle the caller's own fast-path counts (other live threads'
        // settle at their next bucket exchange or exit).
        if let Some(slot) = self.slots.get(crate::participant::current()) {
            // SAFETY: the slot is this thread's (participant invariant 1).
            unsafe { slot.slow(|_| ()) };
        }
        let (mut allocs, mut frees) = (self.counters.allocs.sum(), self.counters.frees.sum());
        for s in self.slots.iter() {
            allocs = allocs.wrapping_add(s.allocs.get());
            frees = frees.wrapping_add(s.frees.get());
        }
        let items = self.keg.lock().items as u64;
        let (depot_items, waiting) = {
            let d = self.depot.lock();
            (d.items as u64, d.tagged as u64)
        };
        Stats {
            allocs,
            frees,
            fails: self.counters.fails.sum(),
            items,
            cached: items.saturating_sub(allocs.saturating_sub(frees)),
            depot_items,
            slabs: self.keg.slabs() as u64,
            bucket_size: self.depot.bucket_size() as u64,
            smr_waiting: waiting,
            // ORDERING: a statistic.
            sleepers: self.sleepers.load(Ordering::Relaxed) as u64,
        }
    }
}

/// The zone's source in the stats tree (`zone.<name>.*`): every [`Stats`]
/// field, and the hook panics caught.
impl<T: Send + 'static> percore_cpu::stats::Emit for Cache<T> {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        self.stats().emit(emit);
        // ORDERING: a statistic.
        emit("hook_panics", self.hooks.lost_panics.load(Ordering::Relaxed));
    }
}

/// `fini`, drop and free one no-cache item.
///
/// # Safety
/// `p` came from `nocache_alloc` and nobody can reach it any more.
unsafe fn nocache_destroy<T>(hooks: &Hooks<T>, p: NonNull<T>) {
    // SAFETY: forwarded contract.
    unsafe { hooks.destroy(p) };
    let layout = Layout::new::<T>();
    if layout.size() != 0 {
        // SAFETY: allocated in `nocache_alloc` with this layout.
        unsafe { dealloc(p.as_ptr().cast(), layout) };
    }
}

impl<T: Send + 'static> Drain for Cache<T> {
    fn drain_participant(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            self.drain_slot(slot, true);
        }
    }
}

/// Everything a zone owns at its end, to destroy now or after a grace
/// period (when the zone is dropped inside a read section of its domain).
struct Teardown<T> {
    hooks: Arc<Hooks<T>>,
    items: Vec<NonNull<T>>,
    nocache_items: Vec<NonNull<T>>,
    keg: crate::slab::Keg,
}

// SAFETY: owns `T: Send` values and slabs; nothing is tied to a thread.
unsafe impl<T: Send> Send for Teardown<T> {}

impl<T> Teardown<T> {
    fn run(self) {
        for p in self.items {
            // SAFETY: cached items of a dead zone, past their grace period.
            unsafe { self.hooks.destroy(p) };
        }
        for p in self.nocache_items {
            // SAFETY: as above, allocated by `nocache_alloc`.
            unsafe { nocache_destroy(&self.hooks, p) };
        }
        drop(self.keg); // frees every slab
    }
}

impl<T: Send + 'static> Drop for Cache<T> {
    fn drop(&mut self) {
        // Unregister the stats source first: it can no longer upgrade.
        self._reg = None;
        let mut items = Vec::new();
        let mut take = |b: Option<Box<crate::bucket::Bucket<T>>>| {
            if let Some(mut b) = b {
                items.extend(b.drain());
            }
        };
        for slot in self.slots.iter() {
            let (a, f) = slot_buckets(slot);
            take(a);
            take(f);
        }
        {
            let mut d = self.depot.lock();
            while let Some(b) = d.full.pop_front() {
                take(Some(b));
            }
            take(d.loose.take());
        }
        let nocache_items = self.retired.lock().drain(..).map(|(_, p)| p).collect();
        let geo = self.keg.geo;
        let keg = std::mem::replace(&mut self.keg, crate::slab::Keg::new(geo));
        let td = Teardown { hooks: self.hooks.clone(), items, nocache_items, keg };
        match &self.grace {
            None => td.run(),
            Some(g) => {
                if g.synchronize() {
                    td.run();
                } else {
                    g.defer(Box::new(move || td.run()));
                }
            }
        }
    }
}

type MaybeBucket<T> = Option<Box<crate::bucket::Bucket<T>>>;

fn slot_buckets<T>(slot: &Slot<T>) -> (MaybeBucket<T>, MaybeBucket<T>) {
    // SAFETY: `Drop` has exclusive access to every slot.
    slot.mag.with_mut(|m| unsafe { ((*m).alloc.take(), (*m).free.take()) })
}
