//! The public face of a plain zone: [`Zone`], its [`Builder`] and the owned
//! handle [`ZBox`]. The machinery is in `cache.rs`.

use crate::cache::{Cache, Config, Hooks};
use crate::{Error, Reclaimed, Stats};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A named object cache for values of type `T` (UMA zone, `kmem_cache`).
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
pub struct Zone<T: Send + 'static> {
    cache: Arc<Cache<T>>,
}

impl<T: Send + 'static> Clone for Zone<T> {
    fn clone(&self) -> Self {
        Zone { cache: self.cache.clone() }
    }
}

impl<T: Send + 'static> fmt::Debug for Zone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zone").field("name", &self.cache.name).field("stats", &self.cache.stats()).finish()
    }
}

pub(crate) fn deadline(timeout: Duration) -> Instant {
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
        Builder { common: Common::new(name, Box::new(init)), ctor_hook: None, dtor_hook: None }
    }

    /// Allocate an item; `Err(Error::Full)` when the zone is at its limit.
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.try", || 7u8).unwrap();
    /// let mut item = zone.try_alloc().unwrap();
    /// *item += 1;
    /// assert_eq!(*item, 8);
    /// ```
    #[inline]
    pub fn try_alloc(&self) -> Result<ZBox<'_, T>, Error> {
        Ok(ZBox { ptr: self.cache.alloc(None)?, cache: &self.cache })
    }

    /// Allocate an item, waiting up to `timeout` for one to be freed when the
    /// zone is at its limit; `Err(Error::Timeout)` after that.
    ///
    /// ```
    /// use std::time::Duration;
    /// let zone = percore_zone::Zone::builder("doc.wait", || 0u8).max_items(1).build().unwrap();
    /// let held = zone.try_alloc().unwrap();
    /// assert!(zone.alloc_wait(Duration::from_millis(1)).is_err());
    /// drop(held);
    /// assert!(zone.alloc_wait(Duration::from_secs(10)).is_ok());
    /// ```
    pub fn alloc_wait(&self, timeout: Duration) -> Result<ZBox<'_, T>, Error> {
        Ok(ZBox { ptr: self.cache.alloc(Some(deadline(timeout)))?, cache: &self.cache })
    }

    /// Allocate an item as a raw pointer, for lock-free structures that
    /// manage ownership themselves. Give it back with [`free_raw`].
    ///
    /// An item never freed stays allocated until the zone is dropped, which
    /// then releases its memory without running `fini` or `drop` on it.
    ///
    /// [`free_raw`]: Zone::free_raw
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

    /// [`alloc_raw`](Zone::alloc_raw), waiting up to `timeout` at the limit.
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

    /// Give back an item from [`alloc_raw`](Zone::alloc_raw) (or
    /// [`ZBox::into_raw`]); runs `dtor`.
    ///
    /// # Safety
    /// `item` was allocated by this zone (or a clone of it), is not freed
    /// yet, and is not used by anybody after this call.
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
    /// bounded, and return to the depot when those threads exit).
    ///
    /// ```
    /// let zone = percore_zone::Zone::new("doc.reclaim", || [0u8; 64]).unwrap();
    /// drop(zone.try_alloc().unwrap());
    /// let r = zone.reclaim();
    /// assert!(r.items >= 1); // the freed item and the rest of its bucket
    /// assert_eq!(r.slabs, 1);
    /// assert_eq!(zone.stats().slabs, 0);
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
}

/// Settings shared by [`Builder`] and [`SmrBuilder`](crate::SmrBuilder).
pub(crate) struct Common<T> {
    pub(crate) name: String,
    pub(crate) init: Box<dyn Fn() -> T + Send + Sync>,
    pub(crate) fini: Option<MutHook<T>>,
    pub(crate) limit: Option<usize>,
    pub(crate) nocache: bool,
    pub(crate) participants: usize,
}

impl<T: Send + 'static> Common<T> {
    pub(crate) fn new(name: &str, init: Box<dyn Fn() -> T + Send + Sync>) -> Common<T> {
        let cpus = percore_cpu::allowed_cpus().map_or(1, |c| c.len());
        Common {
            name: name.to_string(),
            init,
            fini: None,
            limit: None,
            nocache: false,
            participants: (4 * cpus).max(64),
        }
    }

    pub(crate) fn config(&self) -> Result<Config, Error> {
        if self.name.is_empty() {
            return Err(Error::Config("a zone needs a non-empty name".into()));
        }
        if self.participants > 1 << 16 {
            return Err(Error::Config(format!("zone {}: at most 65536 participants", self.name)));
        }
        Ok(Config {
            name: self.name.clone(),
            limit: self.limit,
            nocache: self.nocache,
            participants: self.participants,
        })
    }

    /// The `fini` hook as the engine wants it.
    pub(crate) fn fini_hook(&mut self) -> Option<crate::cache::Hook<T>> {
        let f = self.fini.take()?;
        Some(Box::new(move |p: NonNull<T>| {
            // SAFETY: the engine calls `fini` only on items nobody else can
            // reach (see `Hooks::destroy`), so `&mut` is exclusive.
            f(unsafe { &mut *p.as_ptr() })
        }))
    }
}

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
pub struct Builder<T: Send + 'static> {
    common: Common<T>,
    ctor_hook: Option<MutHook<T>>,
    dtor_hook: Option<MutHook<T>>,
}

/// A user hook that gets exclusive access to an item.
pub(crate) type MutHook<T> = Box<dyn Fn(&mut T) + Send + Sync>;

impl<T: Send + 'static> Builder<T> {
    /// Run `fini` once when an item leaves the cache for good (reclaim, zone
    /// drop), before the item's `Drop`.
    pub fn fini(mut self, fini: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.common.fini = Some(Box::new(fini));
        self
    }

    /// Run `ctor` on every allocation.
    pub fn ctor(mut self, ctor: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.ctor_hook = Some(Box::new(ctor));
        self
    }

    /// Run `dtor` on every free.
    pub fn dtor(mut self, dtor: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.dtor_hook = Some(Box::new(dtor));
        self
    }

    /// At most `n` items exist at once (allocated or cached); beyond that
    /// `try_alloc` fails and `alloc_wait` waits. Limited zones keep their
    /// per-thread buckets small (`n / (4 × CPUs)` items, at least 1), and
    /// while a thread waits, frees go straight to the waiters.
    pub fn max_items(mut self, n: usize) -> Self {
        self.common.limit = Some(n);
        self
    }

    /// Bypass every cache: each item is its own system allocation, freed at
    /// once. For sanitizer and valgrind runs; also switched on for every
    /// zone by the environment variable `PERCORE_ZONE_NOCACHE=1`.
    pub fn no_cache(mut self, yes: bool) -> Self {
        self.common.nocache = yes;
        self
    }

    /// Number of per-participant cache slots (default: 4 per CPU, at least
    /// 64). Threads beyond it use the shared depot directly.
    pub fn participants(mut self, n: usize) -> Self {
        self.common.participants = n;
        self
    }

    /// Create the zone. Errors on an empty name or `max_items(0)`.
    pub fn build(mut self) -> Result<Zone<T>, Error> {
        let cfg = self.common.config()?;
        let wrap = |h: Option<MutHook<T>>| -> Option<crate::cache::Hook<T>> {
            let h = h?;
            Some(Box::new(move |p: NonNull<T>| {
                // SAFETY: in a plain zone the engine calls ctor/dtor on an
                // item owned by the allocating/freeing caller alone.
                h(unsafe { &mut *p.as_ptr() })
            }))
        };
        let hooks = Hooks {
            fini: self.common.fini_hook(),
            ctor: wrap(self.ctor_hook.take()),
            dtor: wrap(self.dtor_hook.take()),
            init: self.common.init,
            lost_panics: Default::default(),
        };
        Ok(Zone { cache: Cache::new(cfg, hooks, None)? })
    }
}

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
pub struct ZBox<'z, T: Send + 'static> {
    ptr: NonNull<T>,
    cache: &'z Cache<T>,
}

// SAFETY: a `ZBox` owns its `T` like a `Box`; freeing from another thread is
// supported by the zone.
unsafe impl<T: Send + 'static> Send for ZBox<'_, T> {}
// SAFETY: `&ZBox` only gives `&T`.
unsafe impl<T: Send + Sync + 'static> Sync for ZBox<'_, T> {}

impl<T: Send + 'static> ZBox<'_, T> {
    /// Give up the handle without freeing; free later with
    /// [`Zone::free_raw`].
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

impl<T: Send + 'static> Deref for ZBox<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: an allocated item, owned by this handle.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Send + 'static> DerefMut for ZBox<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: an allocated item, owned exclusively by this handle.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Send + 'static> Drop for ZBox<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: allocated by `cache`, freed exactly once, here.
        unsafe { self.cache.free(self.ptr) }
    }
}

impl<T: Send + fmt::Debug + 'static> fmt::Debug for ZBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
