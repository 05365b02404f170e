//! # percore-zone: UMA-style object caches and SMR zones
//!
//! A [`Zone<T>`] is a named cache of constructed objects, after FreeBSD's UMA
//! and Solaris' `kmem_cache`:
//!
//! * **Two pairs of hooks.** `init`/`fini` run once per item lifetime in the
//!   cache (constructed state survives free and reuse); `ctor`/`dtor` run on
//!   every allocation and free.
//! * **Per-participant buckets.** Each thread allocates from and frees to its
//!   own pair of buckets (magazines): the fast path is a thread-local load,
//!   a bounds check and a pop or push on a line no other thread writes. A
//!   shared depot trades full buckets for empty ones; its bucket size grows
//!   while its lock is contended, as in UMA.
//! * **Slabs.** Items are carved from page-sized-or-larger slabs;
//!   [`Zone::reclaim`] trims the caches and returns fully free slabs to the
//!   system. With [`Builder::max_items`] a zone never holds more than that
//!   many items: [`Zone::try_alloc`] fails with [`Error::Full`],
//!   [`Zone::alloc_wait`] waits with a timeout; nothing aborts.
//! * **Handles.** [`ZBox`] returns its item on drop; [`Zone::alloc_raw`] and
//!   [`Zone::free_raw`] serve lock-free structures.
//! * **Shareable.** A zone is a cheap `Clone` handle: one cache can serve
//!   every owner in the process (the Akaros point: one cache of epoll alarms
//!   for all epoll sets, so there are never more of them than concurrent
//!   users, rounded up to a bucket per thread and a slab).
//! * **SMR zones.** [`SmrZone`] is a zone created with a `percore_smr::Smr`
//!   domain: frees go to the thread's bucket without running `fini`, a full
//!   bucket is tagged with `advance()` and queued, and `alloc` reuses it only
//!   once a non-blocking `poll(tag)` says it expired. Memory is type-stable:
//!   a reader inside a section may dereference an item freed meanwhile and
//!   find a constructed `T` (the exact guarantee is on [`SmrZone`]). Only
//!   items whose tag expired are finalised, and only slabs made of such items
//!   go back to the system.
//! * **Stats** live in the percore stats tree under `zone.<name>.*`: every
//!   field of [`Stats`] (`allocs`, `frees`, `fails`, `items`, `cached`,
//!   `depot_items`, `slabs`, `bucket_size`, `smr_waiting`, `sleepers`) and
//!   `hook_panics`.
//! * **One API, two kinds.** [`Zone`] and [`SmrZone`] are the two kinds of
//!   one [`GenericZone`] (and [`ZBox`]/[`SmrBox`] of one [`GenericBox`]):
//!   what they share is written once in `zone.rs`, and the [`Kind`] decides
//!   constructors, hook signatures and `DerefMut`.
//! * **Panicking hooks** cost no capacity: a panic in `init`, `ctor` or
//!   `dtor` propagates to the caller of the allocation or free only after
//!   the zone has settled its accounting (raw memory of a failed `init` goes
//!   back to the slabs; an item whose `ctor` or `dtor` panicked goes back to
//!   the cache as the hook left it). `max_items` stays reachable.
//! * **No-cache mode** ([`Builder::no_cache`], or `PERCORE_ZONE_NOCACHE=1`
//!   in the environment) makes every item its own system allocation so that
//!   valgrind and sanitizers see each allocation and free.
//!
//! ```
//! use percore_zone::Zone;
//!
//! #[derive(Default)]
//! struct Conn { buf: Vec<u8>, id: u64 }
//!
//! // One zone, shared by everybody who makes connections.
//! let conns = Zone::builder("example.conns", || Conn { buf: Vec::with_capacity(1024), id: 0 })
//!     .dtor(|c| c.buf.clear())
//!     .build()
//!     .unwrap();
//! let mut c = conns.try_alloc().unwrap();
//! c.id = 7;
//! c.buf.extend_from_slice(b"GET /");
//! drop(c); // back to this thread's bucket, capacity kept
//! assert!(conns.try_alloc().unwrap().buf.capacity() >= 1024);
//! ```
//!
//! The engine and its invariants are described at the top of each source
//! file: `cache.rs` (layers, fast and slow paths, SMR), `bucket.rs` (buckets
//! and depot), `slab.rs` (slabs), `participant.rs` (who owns a cache slot,
//! thread exit).

#![warn(missing_docs)]

mod bucket;
mod cache;
mod error;
mod grace;
mod participant;
mod slab;
mod smr_zone;
#[cfg(all(test, not(loom)))]
mod tests;
mod tuning;
mod zone;

pub use error::Error;
pub use smr_zone::{SmrBox, SmrBuilder, SmrZone};
pub use zone::{Builder, GenericBox, GenericBuilder, GenericZone, Kind, Plain, SmrKind, ZBox, Zone};

percore_cpu::stats_struct! {
    /// A snapshot of a zone's counters; see [`Zone::stats`].
    ///
    /// Counters are read without stopping the zone, so a snapshot taken while
    /// other threads work is approximate. The fast paths count nothing: a
    /// thread's allocations and frees are added up at its bucket exchanges, when
    /// it exits, and when it calls [`Zone::stats`] itself, so a live thread's
    /// latest operations (at most two buckets' worth) may be missing.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Stats {
        /// Successful allocations.
        pub allocs: u64,
        /// Frees.
        pub frees: u64,
        /// Allocations that failed (limit reached, timeout, would deadlock).
        pub fails: u64,
        /// Items out of the slabs: allocated plus cached.
        pub items: u64,
        /// Constructed items cached for reuse (`items - (allocs - frees)`).
        pub cached: u64,
        /// Items in the depot (shared cache).
        pub depot_items: u64,
        /// Slabs held.
        pub slabs: u64,
        /// Capacity of newly made buckets.
        pub bucket_size: u64,
        /// SMR zones: buckets in the depot still waiting for their grace period.
        pub smr_waiting: u64,
        /// Threads waiting in `alloc_wait`.
        pub sleepers: u64,
    }
}

/// What [`Zone::reclaim`] gave back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reclaimed {
    /// Cached items destroyed (`fini` ran) and returned to their slabs.
    pub items: usize,
    /// Slabs returned to the system.
    pub slabs: usize,
}

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
