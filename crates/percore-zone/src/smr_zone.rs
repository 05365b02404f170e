//! SMR zones (`UMA_ZONE_SMR`): type-stable object caches for lock-free
//! readers. The mechanism is in `cache.rs` ("SMR zones"); this file is the
//! public face and the guarantee.

use crate::cache::{Cache, Hook, Hooks};
use crate::zone::{deadline, Common};
use crate::{Error, Reclaimed, Stats};
use percore_smr::Smr;
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// An object cache whose freed items are reused only after a grace period
/// of an SMR domain: memory is **type-stable** for readers of that domain.
///
/// # The guarantee
///
/// Let `p` point to an item of an `SmrZone` whose domain is `smr`, and let a
/// thread be inside a read section of `smr` (between `smr.enter()` and the
/// guard's drop) that obtained `p` from a shared location which pointed to
/// the item while it was allocated. Then until that section ends, **`p`
/// points to a constructed `T`**: `init` has run on it, `fini` has not, and
/// its memory has not been returned to the system. This holds even if the
/// item is freed (and even reallocated) meanwhile, provided the writer made
/// it unreachable *before* freeing it, as with any SMR-protected object.
///
/// It is type stability, not identity stability: a freed item may be handed
/// out again while an old reader still looks at it, and its new owner's
/// `ctor` may run concurrently with that reader. Hence:
///
/// * readers and owners only ever get `&T` ([`SmrBox`] has no `DerefMut`,
///   `ctor`/`dtor` receive `&T`), and `T: Sync`: state that changes after
///   `init` lives in atomics or other interior-mutable, thread-safe cells;
/// * a reader that must know it still sees *the same* object validates
///   that itself (a generation number, or re-reading the link), exactly as
///   with FreeBSD's SMR zones.
///
/// # How
///
/// Frees go to the thread's free bucket without running `fini`; a full
/// bucket is tagged with `smr.advance()` and queued at the depot's tail.
/// `alloc` reuses the depot's head bucket only when `smr.poll(tag, false)`
/// says it expired, and otherwise takes fresh memory; only a zone at its
/// item limit waits for a tag (in [`alloc_wait`](SmrZone::alloc_wait)).
/// `fini` runs, and a slab may be returned to the system by
/// [`reclaim`](SmrZone::reclaim), only for items whose tag has expired;
/// dropping the zone first waits for a grace period (or, when dropped inside
/// a section, defers its teardown to the domain).
///
/// ```
/// use percore_smr::Smr;
/// use percore_zone::SmrZone;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let smr = Smr::new("doc.smrzone").unwrap();
/// let zone = SmrZone::new("doc.nodes", &smr, || AtomicU64::new(0)).unwrap();
/// let node = zone.try_alloc().unwrap();
/// node.store(42, Ordering::Relaxed);
/// let p = percore_zone::SmrBox::into_raw(node);
/// {
///     let _g = smr.enter();
///     // A reader still holding `p` may read it even after it is freed:
///     // SAFETY: `p` is from `zone` and freed once (the writer unlinked it).
///     unsafe { zone.free_raw(p) };
///     // SAFETY: inside the section: the item stays a constructed `AtomicU64`.
///     let v = unsafe { p.as_ref() }.load(Ordering::Relaxed);
///     assert_eq!(v, 42);
/// }
/// ```
pub struct SmrZone<T: Send + Sync + 'static> {
    cache: Arc<Cache<T>>,
    smr: Smr,
}

impl<T: Send + Sync + 'static> Clone for SmrZone<T> {
    fn clone(&self) -> Self {
        SmrZone { cache: self.cache.clone(), smr: self.smr.clone() }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for SmrZone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmrZone")
            .field("name", &self.cache.name)
            .field("smr", &self.smr.name())
            .field("stats", &self.cache.stats())
            .finish()
    }
}

impl<T: Send + Sync + 'static> SmrZone<T> {
    /// An SMR zone guarded by `smr`, items made by `init`.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.new").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.new", &smr, || 0u64).unwrap();
    /// assert_eq!(*zone.try_alloc().unwrap(), 0);
    /// ```
    pub fn new(name: &str, smr: &Smr, init: impl Fn() -> T + Send + Sync + 'static) -> Result<Self, Error> {
        Self::builder(name, smr, init).build()
    }

    /// Configure an SMR zone.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// let smr = percore_smr::Smr::new("doc.smrzone.builder").unwrap();
    /// let zone = percore_zone::SmrZone::builder("doc.smr.builder", &smr, || AtomicU32::new(0))
    ///     .ctor(|gen| { gen.fetch_add(1, Ordering::Relaxed); }) // a generation per allocation
    ///     .max_items(1024)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(zone.try_alloc().unwrap().load(Ordering::Relaxed), 1);
    /// ```
    pub fn builder(name: &str, smr: &Smr, init: impl Fn() -> T + Send + Sync + 'static) -> SmrBuilder<T> {
        SmrBuilder { common: Common::new(name, Box::new(init)), smr: smr.clone(), ctor: None, dtor: None }
    }

    /// Allocate an item; `Err(Error::Full)` at the item limit (never waits).
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.try").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.try", &smr, || 5u8).unwrap();
    /// assert_eq!(*zone.try_alloc().unwrap(), 5);
    /// ```
    #[inline]
    pub fn try_alloc(&self) -> Result<SmrBox<'_, T>, Error> {
        Ok(SmrBox { ptr: self.cache.alloc(None)?, cache: &self.cache })
    }

    /// Allocate an item; at the item limit, wait up to `timeout` for freed
    /// items to pass their grace period. Fails at once with
    /// [`Error::InSection`] when it would have to wait for a grace period
    /// from inside a section of the zone's domain.
    ///
    /// ```
    /// use std::time::Duration;
    /// let smr = percore_smr::Smr::new("doc.smrzone.wait").unwrap();
    /// let zone = percore_zone::SmrZone::builder("doc.smr.wait", &smr, || 0u8).max_items(1).build().unwrap();
    /// drop(zone.try_alloc().unwrap()); // freed, but not yet past its grace period
    /// assert!(zone.alloc_wait(Duration::from_secs(10)).is_ok());
    /// ```
    pub fn alloc_wait(&self, timeout: Duration) -> Result<SmrBox<'_, T>, Error> {
        Ok(SmrBox { ptr: self.cache.alloc(Some(deadline(timeout)))?, cache: &self.cache })
    }

    /// Allocate an item as a raw pointer (for lock-free structures); free it
    /// with [`free_raw`](SmrZone::free_raw). Never freed, it is released
    /// without `fini` when the zone is dropped.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.raw").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.raw", &smr, || 1u32).unwrap();
    /// let p = zone.alloc_raw().unwrap();
    /// // SAFETY: from this zone, unlinked (never linked), freed once.
    /// unsafe { zone.free_raw(p) };
    /// ```
    #[inline]
    pub fn alloc_raw(&self) -> Result<NonNull<T>, Error> {
        self.cache.alloc(None)
    }

    /// [`alloc_raw`](SmrZone::alloc_raw), waiting like
    /// [`alloc_wait`](SmrZone::alloc_wait).
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.raw_wait").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.raw_wait", &smr, || 1u32).unwrap();
    /// let p = zone.alloc_raw_wait(std::time::Duration::from_secs(1)).unwrap();
    /// // SAFETY: from this zone, freed once.
    /// unsafe { zone.free_raw(p) };
    /// ```
    pub fn alloc_raw_wait(&self, timeout: Duration) -> Result<NonNull<T>, Error> {
        self.cache.alloc(Some(deadline(timeout)))
    }

    /// Free an item: runs `dtor` now; the item is reused (or finalised) only
    /// after a grace period of the zone's domain.
    ///
    /// # Safety
    /// `item` was allocated by this zone and not freed yet, and the caller
    /// has made it unreachable for *new* readers (unlinked it). Readers that
    /// may still hold it only use `&T` (see the type's guarantee).
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.free").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.free", &smr, || 0u8).unwrap();
    /// let p = percore_zone::SmrBox::into_raw(zone.try_alloc().unwrap());
    /// // SAFETY: from this zone, never published, freed once.
    /// unsafe { zone.free_raw(p) };
    /// ```
    #[inline]
    pub unsafe fn free_raw(&self, item: NonNull<T>) {
        // SAFETY: forwarded contract.
        unsafe { self.cache.free(item) }
    }

    /// Trim the caches: every item whose grace period has expired (checked
    /// without waiting) is finalised and returned to its slab, then fully
    /// free slabs go back to the system. Items still in their grace period
    /// stay cached, so no reader can ever see `fini`'d or unmapped memory.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.reclaim").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.reclaim", &smr, || [0u8; 32]).unwrap();
    /// let p = zone.alloc_raw().unwrap();
    /// // SAFETY: from this zone, freed once.
    /// unsafe { zone.free_raw(p) };
    /// {
    ///     let _reader = smr.enter(); // a reader that may still see `p`
    ///     zone.reclaim(); // tags this thread's free bucket; cannot expire yet
    ///     assert_eq!(zone.stats().slabs, 1); // so nothing is finalised or unmapped
    /// }
    /// smr.synchronize().unwrap(); // reclaim itself never waits
    /// let r = zone.reclaim();
    /// assert_eq!((zone.stats().slabs, r.slabs), (0, 1));
    /// ```
    pub fn reclaim(&self) -> Reclaimed {
        self.cache.reclaim()
    }

    /// A snapshot of this zone's counters (also under `zone.<name>.*`).
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.stats").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.stats", &smr, || 0u8).unwrap();
    /// drop(zone.try_alloc().unwrap());
    /// assert_eq!(zone.stats().allocs, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// The zone's name.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.name").unwrap();
    /// assert_eq!(percore_zone::SmrZone::new("doc.smr.name", &smr, || ()).unwrap().name(), "doc.smr.name");
    /// ```
    pub fn name(&self) -> &str {
        &self.cache.name
    }

    /// The domain whose readers this zone protects.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.smr").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.smr", &smr, || ()).unwrap();
    /// assert_eq!(zone.smr().name(), "doc.smrzone.smr");
    /// ```
    pub fn smr(&self) -> &Smr {
        &self.smr
    }
}

type RefHook<T> = Box<dyn Fn(&T) + Send + Sync>;

/// Builds an [`SmrZone`]; see [`SmrZone::builder`].
///
/// ```
/// let smr = percore_smr::Smr::new("doc.smrbuilder").unwrap();
/// let zone = percore_zone::SmrZone::builder("doc.smrbuilder", &smr, || 0u64)
///     .fini(|v| *v = 0)
///     .participants(8)
///     .build()
///     .unwrap();
/// drop(zone);
/// ```
pub struct SmrBuilder<T: Send + Sync + 'static> {
    common: Common<T>,
    smr: Smr,
    ctor: Option<RefHook<T>>,
    dtor: Option<RefHook<T>>,
}

impl<T: Send + Sync + 'static> SmrBuilder<T> {
    /// Run `fini` once when an item leaves the cache for good; only ever on
    /// items past their grace period, so it gets `&mut T`.
    pub fn fini(mut self, fini: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.common.fini = Some(Box::new(fini));
        self
    }

    /// Run `ctor` on every allocation. Old readers may look at the item
    /// concurrently, so it gets `&T`.
    pub fn ctor(mut self, ctor: impl Fn(&T) + Send + Sync + 'static) -> Self {
        self.ctor = Some(Box::new(ctor));
        self
    }

    /// Run `dtor` on every free (before the grace period), with `&T`.
    pub fn dtor(mut self, dtor: impl Fn(&T) + Send + Sync + 'static) -> Self {
        self.dtor = Some(Box::new(dtor));
        self
    }

    /// At most `n` items at once (allocated, cached, or in a grace period).
    pub fn max_items(mut self, n: usize) -> Self {
        self.common.limit = Some(n);
        self
    }

    /// Bypass the caches: one system allocation per item, freed (after its
    /// grace period) at once; see [`Builder::no_cache`](crate::Builder::no_cache).
    pub fn no_cache(mut self, yes: bool) -> Self {
        self.common.nocache = yes;
        self
    }

    /// Number of per-participant cache slots; see
    /// [`Builder::participants`](crate::Builder::participants).
    pub fn participants(mut self, n: usize) -> Self {
        self.common.participants = n;
        self
    }

    /// Create the zone.
    pub fn build(mut self) -> Result<SmrZone<T>, Error> {
        let cfg = self.common.config()?;
        let wrap = |h: Option<RefHook<T>>| -> Option<Hook<T>> {
            let h = h?;
            Some(Box::new(move |p: NonNull<T>| {
                // SAFETY: the engine passes a constructed item; only a shared
                // reference is formed, as old readers may hold others.
                h(unsafe { p.as_ref() })
            }))
        };
        let hooks = Hooks {
            fini: self.common.fini_hook(),
            ctor: wrap(self.ctor.take()),
            dtor: wrap(self.dtor.take()),
            init: self.common.init,
            lost_panics: Default::default(),
        };
        let grace: Arc<dyn crate::grace::Grace> = Arc::new(self.smr.clone());
        Ok(SmrZone { cache: Cache::new(cfg, hooks, Some(grace))?, smr: self.smr })
    }
}

/// An item of an [`SmrZone`], freed (into its grace period) when dropped.
///
/// It dereferences to `&T` only: readers may see the item at any time, so
/// nobody gets `&mut T`.
///
/// ```compile_fail
/// let smr = percore_smr::Smr::new("doc.smrbox.mut").unwrap();
/// let zone = percore_zone::SmrZone::new("doc.smrbox.mut", &smr, || 0u64).unwrap();
/// let mut b = zone.try_alloc().unwrap();
/// *b = 1; // no DerefMut
/// ```
///
/// ```
/// let smr = percore_smr::Smr::new("doc.smrbox").unwrap();
/// let zone = percore_zone::SmrZone::new("doc.smrbox", &smr, || 9u64).unwrap();
/// assert_eq!(*zone.try_alloc().unwrap(), 9);
/// ```
pub struct SmrBox<'z, T: Send + Sync + 'static> {
    ptr: NonNull<T>,
    cache: &'z Cache<T>,
}

// SAFETY: owns the item like a `Box` (only `&T` is ever formed).
unsafe impl<T: Send + Sync + 'static> Send for SmrBox<'_, T> {}
// SAFETY: `&SmrBox` only gives `&T`, and `T: Sync`.
unsafe impl<T: Send + Sync + 'static> Sync for SmrBox<'_, T> {}

impl<T: Send + Sync + 'static> SmrBox<'_, T> {
    /// Give up the handle without freeing (to publish the item in a
    /// lock-free structure); free later with [`SmrZone::free_raw`].
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrbox.raw").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smrbox.raw", &smr, || 0u8).unwrap();
    /// let p = percore_zone::SmrBox::into_raw(zone.try_alloc().unwrap());
    /// // SAFETY: from this zone, freed once.
    /// unsafe { zone.free_raw(p) };
    /// ```
    pub fn into_raw(this: Self) -> NonNull<T> {
        let p = this.ptr;
        std::mem::forget(this);
        p
    }
}

impl<T: Send + Sync + 'static> Deref for SmrBox<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: an allocated, constructed item.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Send + Sync + 'static> Drop for SmrBox<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: allocated by `cache`, freed once; never published (or the
        // owner unlinked it before dropping, per `into_raw`'s contract).
        unsafe { self.cache.free(self.ptr) }
    }
}

impl<T: Send + Sync + fmt::Debug + 'static> fmt::Debug for SmrBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
