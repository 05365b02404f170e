//! The public face of both zone kinds, written once: [`GenericZone`], its
//! builder [`GenericBuilder`] and the owned handle [`GenericBox`], generic
//! over the zone's [`Kind`]. [`Zone`], [`Builder`] and [`ZBox`] are the plain
//! kind; [`SmrZone`](crate::SmrZone) and its friends (`smr_zone.rs`) the
//! type-stable one. The machinery is in `cache.rs`.
//!
//! The kinds differ in three things only, and each lives in one place:
//!
//! | | plain ([`Plain`]) | SMR ([`SmrKind`]) |
//! | --- | --- | --- |
//! | reclamation | a free is reusable at once | after a grace period of the domain (`cache.rs`, "SMR zones") |
//! | hooks and handle | `ctor`/`dtor` get `&mut T`, [`ZBox`] is `DerefMut` | `&T` only: old readers may look |
//! | item bound | `T: Send` | `T: Send + Sync` |
//!
//! The kind is a value stored in the zone ([`Plain`] is empty, [`SmrKind`]
//! holds the domain) and a type parameter, so the compiler picks the right
//! constructor, hooks and `DerefMut` from the type alone.

use crate::cache::{Cache, Config, Hook, Hooks};
use crate::{Error, Reclaimed, Stats};
use percore_smr::Smr;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod sealed {
    /// Only this crate's kinds exist: the engine relies on each one's rules.
    pub trait Sealed {
        /// The domain whose grace periods guard freed items, if any.
        fn domain(&self) -> Option<&percore_smr::Smr>;
        /// The public type's name, for `Debug`.
        const NAME: &'static str;
    }
}

/// What kind of zone a [`GenericZone`] is: [`Plain`] or [`SmrKind`]. Sealed.
pub trait Kind: sealed::Sealed + Clone + Send + Sync + 'static {}

/// The plain kind: a freed item is reused at once ([`Zone`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl sealed::Sealed for Plain {
    fn domain(&self) -> Option<&Smr> {
        None
    }
    const NAME: &'static str = "Zone";
}
impl Kind for Plain {}

/// The SMR kind: a freed item is reused only after a grace period of its
/// domain, so memory is type-stable for that domain's readers
/// ([`SmrZone`](crate::SmrZone)).
#[derive(Clone, Debug)]
pub struct SmrKind(pub(crate) Smr);

impl sealed::Sealed for SmrKind {
    fn domain(&self) -> Option<&Smr> {
        Some(&self.0)
    }
    const NAME: &'static str = "SmrZone";
}
impl Kind for SmrKind {}

/// A plain zone: a named object cache for values of type `T` (UMA zone,
/// `kmem_cache`).
///
/// Items are carved from slabs, constructed once with `init`, and kept
/// constructed across free and reuse; `ctor`/`dtor` run on every
/// allocation/free. Each thread allocates from and frees to its own buckets
/// without touching a shared cache line; a shared depot balances buckets
/// between threads. A `Zone` is a cheap handle (`Clone` shares the cache), so
/// one zone can serve every owner in the process: there are never more items
/// than concurrent users, rounded up to a bucket per thread and a slab.
///
/// ```
/// use percore_zone::Zone;
///
/// let zone = Zone::builder("doc.buffers", || Vec::<u8>::with_capacity(4096))
///     .dtor(|v| v.clear()) // every free: forget the contents, keep the capacity
///     .build()
///     .unwrap();
/// let mut buf = zone.try_alloc().unwrap();
/// buf.extend_from_slice(b"hello");
/// drop(buf); // back to this thread's bucket
/// let again = zone.try_alloc().unwrap();
/// assert!(again.is_empty() && again.capacity() >= 4096);
/// ```
pub type Zone<T> = GenericZone<T, Plain>;

/// Builds a [`Zone`]; see [`Zone::builder`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let finis = Arc::new(AtomicUsize::new(0));
/// let f = finis.clone();
/// let zone = percore_zone::Zone::builder("doc.hooks", || String::with_capacity(64))
///     .fini(move |_| { f.fetch_add(1, Ordering::Relaxed); })
///     .ctor(|s| s.push_str("fresh"))
///     .dtor(|s| s.clear())
///     .build()
///     .unwrap();
/// assert_eq!(&*zone.try_alloc().unwrap(), "fresh");
/// drop(zone); // fini on every constructed item
/// assert!(finis.load(Ordering::Relaxed) >= 1);
/// ```
pub type Builder<T> = GenericBuilder<T, Plain>;

/// An item of a [`Zone`], returned to it when dropped (`Box<T>` for zones).
///
/// ```
/// let zone = percore_zone::Zone::new("doc.zbox", || 0u32).unwrap();
/// let mut b = zone.try_alloc().unwrap();
/// *b = 5;
/// assert_eq!(*b, 5);
/// ```
///
/// A `ZBox` borrows its zone, so it cannot outlive it:
///
/// ```compile_fail
/// let b = {
///     let zone = percore_zone::Zone::new("doc.outlive", || 0u32).unwrap();
///     zone.try_alloc().unwrap()
/// };
/// ```
pub type ZBox<'z, T> = GenericBox<'z, T, Plain>;

/// An object cache of kind `K`; use it as [`Zone`] or
/// [`SmrZone`](crate::SmrZone).
pub struct GenericZone<T: Send + 'static, K: Kind> {
    cache: Arc<Cache<T>>,
    kind: K,
}

impl<T: Send + 'static, K: Kind> Clone for GenericZone<T, K> {
    fn clone(&self) -> Self {
        GenericZone { cache: self.cache.clone(), kind: self.kind.clone() }
    }
}

impl<T: Send + 'static, K: Kind> fmt::Debug for GenericZone<T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(K::NAME);
        d.field("name", &self.cache.name);
        if let Some(smr) = self.kind.domain() {
            d.field("smr", &smr.name());
        }
        d.field("stats", &self.cache.stats()).finish()
    }
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

impl<T: Send + 'static> Zone<T> {
    /// A zone with default settings whose items are made by `init`.
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.new", || [0u64; 8]).unwrap();
    /// assert_eq!(*zone.try_alloc().unwrap(), [0; 8]);
    /// ```
    pub fn new(name: &str, init: impl Fn() -> T + Send + Sync + 'static) -> Result<Zone<T>, Error> {
        Self::builder(name, init).build()
    }

    /// Configure a zone: hooks, item limit, no-cache mode.
    ///
    /// ```
    /// let zone = percore_zone::Zone::builder("doc.builder", || 0u32).max_items(100).build().unwrap();
    /// assert_eq!(zone.name(), "doc.builder");
    /// ```
    pub fn builder(name: &str, init: impl Fn() -> T + Send + Sync + 'static) -> Builder<T> {
        GenericBuilder::new(name, Box::new(init), Plain)
    }
}

impl<T: Send + 'static, K: Kind> GenericZone<T, K> {
    /// Allocate an item; `Err(Error::Full)` when the zone is at its limit
    /// (never waits).
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.try", || 7u8).unwrap();
    /// let mut item = zone.try_alloc().unwrap();
    /// *item += 1;
    /// assert_eq!(*item, 8);
    /// ```
    #[inline]
    pub fn try_alloc(&self) -> Result<GenericBox<'_, T, K>, Error> {
        Ok(GenericBox { ptr: self.cache.alloc(None)?, cache: &self.cache, _kind: PhantomData })
    }

    /// Allocate an item, waiting up to `timeout` at the item limit for one to
    /// be freed (in an SMR zone: for freed items to pass their grace period);
    /// `Err(Error::Timeout)` after that. An SMR zone fails at once with
    /// [`Error::InSection`] when it would have to wait for a grace period
    /// from inside a section of its domain.
    ///
    /// ```
    /// use std::time::Duration;
    /// let zone = percore_zone::Zone::builder("doc.wait", || 0u8).max_items(1).build().unwrap();
    /// let held = zone.try_alloc().unwrap();
    /// assert!(zone.alloc_wait(Duration::from_millis(1)).is_err());
    /// drop(held);
    /// assert!(zone.alloc_wait(Duration::from_secs(10)).is_ok());
    ///
    /// let smr = percore_smr::Smr::new("doc.smrzone.wait").unwrap();
    /// let zone = percore_zone::SmrZone::builder("doc.smr.wait", &smr, || 0u8).max_items(1).build().unwrap();
    /// drop(zone.try_alloc().unwrap()); // freed, but not yet past its grace period
    /// assert!(zone.alloc_wait(Duration::from_secs(10)).is_ok());
    /// ```
    pub fn alloc_wait(&self, timeout: Duration) -> Result<GenericBox<'_, T, K>, Error> {
        Ok(GenericBox { ptr: self.cache.alloc(Some(deadline(timeout)))?, cache: &self.cache, _kind: PhantomData })
    }

    /// Allocate an item as a raw pointer, for lock-free structures that
    /// manage ownership themselves. Give it back with [`free_raw`].
    ///
    /// An item never freed stays allocated until the zone is dropped, which
    /// then releases its memory without running `fini` or `drop` on it.
    ///
    /// [`free_raw`]: GenericZone::free_raw
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.raw", || 1u64).unwrap();
    /// let p = zone.alloc_raw().unwrap();
    /// // SAFETY: `p` is an allocated item of `zone`, used by nobody else.
    /// unsafe {
    ///     *p.as_ptr() += 1;
    ///     zone.free_raw(p);
    /// }
    /// ```
    #[inline]
    pub fn alloc_raw(&self) -> Result<NonNull<T>, Error> {
        self.cache.alloc(None)
    }

    /// [`alloc_raw`](GenericZone::alloc_raw), waiting up to `timeout` at the
    /// limit like [`alloc_wait`](GenericZone::alloc_wait).
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.raw_wait", || 1u64).unwrap();
    /// let p = zone.alloc_raw_wait(std::time::Duration::from_secs(1)).unwrap();
    /// // SAFETY: allocated above, not used afterwards.
    /// unsafe { zone.free_raw(p) };
    /// ```
    pub fn alloc_raw_wait(&self, timeout: Duration) -> Result<NonNull<T>, Error> {
        self.cache.alloc(Some(deadline(timeout)))
    }

    /// Give back an item from [`alloc_raw`](GenericZone::alloc_raw) (or
    /// [`GenericBox::into_raw`]); runs `dtor` now. In an SMR zone the item is
    /// reused (or finalised) only after a grace period of the zone's domain.
    ///
    /// # Safety
    /// `item` was allocated by this zone (or a clone of it) and is not freed
    /// yet. In a plain zone nobody uses it after this call. In an SMR zone
    /// the caller has made it unreachable for *new* readers (unlinked it),
    /// and readers that may still hold it only use `&T` (see
    /// [`SmrZone`](crate::SmrZone)'s guarantee).
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.free_raw", || 0u8).unwrap();
    /// let p = percore_zone::ZBox::into_raw(zone.try_alloc().unwrap());
    /// // SAFETY: from this zone, freed once.
    /// unsafe { zone.free_raw(p) };
    /// ```
    #[inline]
    pub unsafe fn free_raw(&self, item: NonNull<T>) {
        // SAFETY: forwarded contract.
        unsafe { self.cache.free(item) }
    }

    /// Trim the caches: the calling thread's buckets and the depot's go back
    /// to the slabs (running `fini`), and fully free slabs go back to the
    /// system. Other threads' private buckets are left alone (they are
    /// bounded, and return to the depot when those threads exit). In an SMR
    /// zone only items whose grace period has expired (checked without
    /// waiting) are finalised, so no reader ever sees `fini`'d or unmapped
    /// memory.
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.reclaim", || [0u8; 64]).unwrap();
    /// drop(zone.try_alloc().unwrap());
    /// let r = zone.reclaim();
    /// assert!(r.items >= 1); // the freed item and the rest of its bucket
    /// assert_eq!(r.slabs, 1);
    /// assert_eq!(zone.stats().slabs, 0);
    ///
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

    /// A snapshot of this zone's counters (also in the stats tree under
    /// `zone.<name>.*`).
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.stats", || 0u8).unwrap();
    /// drop(zone.try_alloc().unwrap());
    /// let s = zone.stats();
    /// assert_eq!((s.allocs, s.frees), (1, 1));
    /// assert_eq!(percore_cpu::stats::get("zone.doc.stats.allocs"), Some(1));
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// The zone's name.
    ///
    /// ```
    /// assert_eq!(percore_zone::Zone::new("doc.name", || ()).unwrap().name(), "doc.name");
    /// ```
    pub fn name(&self) -> &str {
        &self.cache.name
    }

    pub(crate) fn kind(&self) -> &K {
        &self.kind
    }
}

/// Builds a zone of kind `K`; use it as [`Builder`] or
/// [`SmrBuilder`](crate::SmrBuilder).
pub struct GenericBuilder<T: Send + 'static, K: Kind> {
    name: String,
    init: Box<dyn Fn() -> T + Send + Sync>,
    fini: Option<MutHook<T>>,
    /// `ctor` and `dtor`, already wrapped by the kind's setter (which decides
    /// whether the hook gets `&mut T` or `&T`).
    pub(crate) ctor: Option<Hook<T>>,
    pub(crate) dtor: Option<Hook<T>>,
    limit: Option<usize>,
    nocache: bool,
    participants: usize,
    kind: K,
}

/// A user hook that gets exclusive access to an item.
type MutHook<T> = Box<dyn Fn(&mut T) + Send + Sync>;

impl<T: Send + 'static, K: Kind> GenericBuilder<T, K> {
    pub(crate) fn new(name: &str, init: Box<dyn Fn() -> T + Send + Sync>, kind: K) -> Self {
        let cpus = percore_cpu::allowed_cpus().map_or(1, |c| c.len());
        GenericBuilder {
            name: name.to_string(),
            init,
            fini: None,
            ctor: None,
            dtor: None,
            limit: None,
            nocache: false,
            participants: (4 * cpus).max(64),
            kind,
        }
    }

    /// Run `fini` once when an item leaves the cache for good (reclaim, zone
    /// drop), before the item's `Drop`. In an SMR zone only ever on items
    /// past their grace period, so it gets `&mut T` in both kinds.
    pub fn fini(mut self, fini: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.fini = Some(Box::new(fini));
        self
    }

    /// At most `n` items exist at once (allocated, cached, or in a grace
    /// period); beyond that `try_alloc` fails and `alloc_wait` waits. Limited
    /// zones keep their per-thread buckets small (`n / (4 × CPUs)` items, at
    /// least 1), and while a thread waits, frees go straight to the waiters.
    pub fn max_items(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Bypass every cache: each item is its own system allocation, freed at
    /// once (in an SMR zone: after its grace period). For sanitizer and
    /// valgrind runs; also switched on for every zone by the environment
    /// variable `PERCORE_ZONE_NOCACHE=1`.
    pub fn no_cache(mut self, yes: bool) -> Self {
        self.nocache = yes;
        self
    }

    /// Number of per-participant cache slots (default: 4 per CPU, at least
    /// 64). Threads beyond it use the shared depot directly.
    pub fn participants(mut self, n: usize) -> Self {
        self.participants = n;
        self
    }

    /// Create the zone. Errors on an empty name, more than 65536
    /// participants or `max_items(0)`.
    pub fn build(self) -> Result<GenericZone<T, K>, Error> {
        if self.name.is_empty() {
            return Err(Error::Config("a zone needs a non-empty name".into()));
        }
        if self.participants > 1 << 16 {
            return Err(Error::Config(format!("zone {}: at most 65536 participants", self.name)));
        }
        let cfg = Config { name: self.name, limit: self.limit, nocache: self.nocache, participants: self.participants };
        let fini = self.fini.map(|f| -> Hook<T> {
            Box::new(move |p: NonNull<T>| {
                // SAFETY: the engine calls `fini` only on items nobody else
                // can reach (see `Hooks::destroy`), so `&mut` is exclusive.
                f(unsafe { &mut *p.as_ptr() })
            })
        });
        let hooks = Hooks { fini, ctor: self.ctor, dtor: self.dtor, init: self.init, lost_panics: Default::default() };
        let grace = self.kind.domain().map(|smr| Arc::new(smr.clone()) as Arc<dyn crate::grace::Grace>);
        Ok(GenericZone { cache: Cache::new(cfg, hooks, grace)?, kind: self.kind })
    }
}

impl<T: Send + 'static> Builder<T> {
    /// Run `ctor` on every allocation.
    pub fn ctor(mut self, ctor: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.ctor = Some(mut_hook(ctor));
        self
    }

    /// Run `dtor` on every free.
    pub fn dtor(mut self, dtor: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.dtor = Some(mut_hook(dtor));
        self
    }
}

fn mut_hook<T>(h: impl Fn(&mut T) + Send + Sync + 'static) -> Hook<T> {
    Box::new(move |p: NonNull<T>| {
        // SAFETY: in a plain zone the engine calls ctor/dtor on an item owned
        // by the allocating/freeing caller alone.
        h(unsafe { &mut *p.as_ptr() })
    })
}

/// An item of a zone of kind `K`, freed when dropped; use it as [`ZBox`] or
/// [`SmrBox`](crate::SmrBox). Only a plain zone's item is `DerefMut`.
pub struct GenericBox<'z, T: Send + 'static, K: Kind> {
    ptr: NonNull<T>,
    cache: &'z Cache<T>,
    _kind: PhantomData<K>,
}

// SAFETY: a box owns its `T` like a `Box`; freeing from another thread is
// supported by the zone. An SMR zone's items are `Sync` as well (its
// constructors require it), as old readers may share them.
unsafe impl<T: Send + 'static, K: Kind> Send for GenericBox<'_, T, K> {}
// SAFETY: `&GenericBox` only gives `&T`.
unsafe impl<T: Send + Sync + 'static, K: Kind> Sync for GenericBox<'_, T, K> {}

impl<T: Send + 'static, K: Kind> GenericBox<'_, T, K> {
    /// Give up the handle without freeing (for instance to publish the item
    /// in a lock-free structure); free later with
    /// [`GenericZone::free_raw`].
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.into_raw", || 3u8).unwrap();
    /// let p = percore_zone::ZBox::into_raw(zone.try_alloc().unwrap());
    /// // SAFETY: from this zone, freed once.
    /// unsafe { zone.free_raw(p) };
    /// ```
    pub fn into_raw(this: Self) -> NonNull<T> {
        let p = this.ptr;
        std::mem::forget(this);
        p
    }
}

impl<T: Send + 'static, K: Kind> Deref for GenericBox<'_, T, K> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: an allocated, constructed item, owned by this handle.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Send + 'static> DerefMut for ZBox<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: an allocated item of a plain zone, owned exclusively by
        // this handle (no reader can see it).
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Send + 'static, K: Kind> Drop for GenericBox<'_, T, K> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: allocated by `cache`, freed exactly once, here; in an SMR
        // zone never published (or the owner unlinked it before dropping,
        // per `into_raw`'s contract).
        unsafe { self.cache.free(self.ptr) }
    }
}

impl<T: Send + fmt::Debug + 'static, K: Kind> fmt::Debug for GenericBox<'_, T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
