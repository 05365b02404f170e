//! # percore-cpu: the ground floor of percore
//!
//! A kernel keeps one of everything per CPU and sums on read. This crate gives
//! userspace the same building blocks, and nothing that depends on the rest of
//! percore:
//!
//! * **Topology and pinning**: [`allowed_cpus`] reads the process's affinity
//!   mask (the CPUs a worker may be pinned to), [`pin_current`] restricts the
//!   calling thread to one of them, [`current_cpu`] says where a thread runs.
//! * **Per-slot storage**: [`PerSlot<T>`] is an array of cache-line padded
//!   values, one per CPU or per participant, so that writers on different
//!   slots never share a cache line (no false sharing).
//! * **Sharded counters**: [`Counter`] is FreeBSD's `counter(9)`: every thread
//!   adds to its own shard with a relaxed atomic add on a line nobody else
//!   writes, and a reader sums the shards. Adds never contend; reads are rare.
//! * **The stats tree**: every subsystem registers its counters under a dotted
//!   prefix (`smr.<name>.poll`, `zone.<name>.allocs`, ...) with [`stats::register`]
//!   (or, for a struct of counters, [`stats_struct!`] and [`stats::register_source`]);
//!   [`stats::snapshot`] returns every `(name, value)` pair in the process. The
//!   facade re-exports it as `percore::stats()`, and `percore-bench` prints it.
//! * **The loom door**: [`loom`] is where every percore protocol takes its
//!   atomics, cells, locks and thread-locals, so that `--cfg loom` swaps them
//!   all for loom's model-checked versions in one place.
//! * **Cooperative waiting**: [`coop`] lets a lower crate (a zone at its
//!   item limit) wait without blocking a uthread's worker, through a hook
//!   the scheduler installs.
//!
//! ```
//! use percore_cpu::{allowed_cpus, stats, Counter};
//! use std::sync::Arc;
//!
//! let cpus = allowed_cpus().unwrap();
//! assert!(!cpus.is_empty());
//!
//! let hits = Arc::new(Counter::new());
//! let h = hits.clone();
//! let reg = stats::register("example.cache", move |emit| emit("hits", h.sum()));
//! hits.add(3);
//! assert_eq!(stats::get(&format!("{}.hits", reg.prefix())), Some(3));
//! drop(reg); // unregisters
//! ```

#![warn(missing_docs)]

pub mod coop;
mod counter;
mod error;
pub mod loom;
mod per_slot;
pub mod stats;
mod sys;
mod thread_index;
mod topology;

pub use counter::Counter;
pub use crossbeam_utils::CachePadded;
pub use error::Error;
pub use per_slot::PerSlot;
pub use thread_index::thread_index;
pub use topology::{allowed_cpus, current_cpu, pin_current};

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
