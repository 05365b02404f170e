//! # percore
//!
//! A kernel-grade concurrency runtime for userspace Rust: BSD kernel
//! mechanisms, re-created in userspace and joined into one design. This is the
//! facade crate: it re-exports the subsystems so that users depend on one
//! crate.
//!
//! | module | what | after |
//! | --- | --- | --- |
//! | [`cpu`] | topology, pinning, per-CPU storage, sharded counters, stats tree | `counter(9)`, `zpcpu` |
//! | [`smr`] | safe memory reclamation with fence-free readers | FreeBSD GUS, `smr(9)` |
//! | [`zone`] | object caches with per-thread buckets, slabs, limits; type-stable SMR zones | UMA, `kmem_cache`, `UMA_ZONE_SMR` |
//! | [`pool`] | thread pools and jobs, per-CPU pools, spawn, delayed jobs | NetBSD `threadpool(9)` |
//! | [`lwkt`] | per-CPU workers, stackful light-weight threads, IPIs, tokens, `tsleep`/`wakeup`, ports | DragonFly LWKT |
//! | [`evq`] | event queues, coalescing queues, per-worker alarms, epoll for uthreads, sockets | Akaros event queues and epoll |
//!
//! The memcached-compatible server is not in this release yet; see the
//! repository's README for the plan.
//!
//! ```
//! use percore::smr::Smr;
//!
//! let smr = Smr::new("doc").unwrap();
//! {
//!     let _guard = smr.enter(); // readers pay no fence
//! }
//! let unlinked = Box::into_raw(Box::new(42u64));
//! // SAFETY: from Box::into_raw, reachable by no reader, retired once.
//! unsafe { smr.retire(unlinked) }; // freed once no reader can still see it
//! smr.flush().unwrap();
//! assert!(percore::stats().iter().any(|(name, _)| name.starts_with("smr.doc.")));
//! ```

pub use percore_cpu as cpu;
pub use percore_evq as evq;
pub use percore_lwkt as lwkt;
/// The runtime: per-CPU workers running uthreads ([`lwkt::Runtime`]).
///
/// ```
/// let rt = percore::Runtime::builder().workers(1).build().unwrap();
/// assert_eq!(rt.block_on(|| 40 + 2).unwrap(), 42);
/// ```
pub use percore_lwkt::Runtime;
pub use percore_pool as pool;
pub use percore_smr as smr;
pub use percore_zone as zone;

/// Every counter of every percore subsystem in this process, as
/// `("subsystem.instance.counter", value)` pairs ordered by name.
///
/// This is the stats tree of [`cpu::stats`]; see there for how subsystems
/// register.
pub fn stats() -> Vec<(String, u64)> {
    cpu::stats::snapshot()
}

/// The repository README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;
