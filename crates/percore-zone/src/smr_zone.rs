//! SMR zones (`UMA_ZONE_SMR`): type-stable object caches for lock-free
//! readers. The mechanism is in `cache.rs` ("SMR zones"), the API both kinds
//! share in `zone.rs`; this file holds the guarantee and what only an SMR
//! zone has (its constructors, `&T` hooks, its domain).

use crate::cache::Hook;
use crate::zone::{GenericBox, GenericBuilder, GenericZone, SmrKind};
use crate::Error;
use percore_smr::Smr;
use std::ptr::NonNull;

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
pub type SmrZone<T> = GenericZone<T, SmrKind>;

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
        GenericBuilder::new(name, Box::new(init), SmrKind(smr.clone()))
    }

    /// The domain whose readers this zone protects.
    ///
    /// ```
    /// let smr = percore_smr::Smr::new("doc.smrzone.smr").unwrap();
    /// let zone = percore_zone::SmrZone::new("doc.smr.smr", &smr, || ()).unwrap();
    /// assert_eq!(zone.smr().name(), "doc.smrzone.smr");
    /// ```
    pub fn smr(&self) -> &Smr {
        &self.kind().0
    }
}

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
pub type SmrBuilder<T> = GenericBuilder<T, SmrKind>;

impl<T: Send + Sync + 'static> SmrBuilder<T> {
    /// Run `ctor` on every allocation. Old readers may look at the item
    /// concurrently, so it gets `&T`.
    pub fn ctor(mut self, ctor: impl Fn(&T) + Send + Sync + 'static) -> Self {
        self.ctor = Some(ref_hook(ctor));
        self
    }

    /// Run `dtor` on every free (before the grace period), with `&T`.
    pub fn dtor(mut self, dtor: impl Fn(&T) + Send + Sync + 'static) -> Self {
        self.dtor = Some(ref_hook(dtor));
        self
    }
}

fn ref_hook<T>(h: impl Fn(&T) + Send + Sync + 'static) -> Hook<T> {
    Box::new(move |p: NonNull<T>| {
        // SAFETY: the engine passes a constructed item; only a shared
        // reference is formed, as old readers may hold others.
        h(unsafe { p.as_ref() })
    })
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
/// let b = zone.try_alloc().unwrap();
/// assert_eq!(*b, 9);
/// let p = percore_zone::SmrBox::into_raw(b); // e.g. to publish it
/// // SAFETY: from this zone, never published, freed once.
/// unsafe { zone.free_raw(p) };
/// ```
pub type SmrBox<'z, T> = GenericBox<'z, T, SmrKind>;
