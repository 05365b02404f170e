//! The constants that decide when a bucket is full, shrunk under loom so that
//! a model with two threads and a handful of items already fills, exchanges
//! and refills buckets (STYLE.md: tokio shrinks its run queue from 256 to 4).
//! The protocol's atomics, cells and locks come from `percore_cpu::loom`.

/// Smallest bucket (magazine) capacity; under loom two or three frees fill a
/// bucket.
pub(crate) const BUCKET_MIN: usize = if cfg!(loom) { 2 } else { 16 };
/// Largest bucket capacity the contention heuristic may grow to.
pub(crate) const BUCKET_MAX: usize = if cfg!(loom) { 3 } else { 256 };
/// SMR zones start with large buckets: one `advance` per bucket of frees, and
/// one poll scan per [`SCAN_SLACK`] buckets.
pub(crate) const SMR_BUCKET_START: usize = if cfg!(loom) { 2 } else { 128 };
/// Tagged buckets that must wait in the depot before `alloc` polls (under
/// loom: poll at once).
pub(crate) const SCAN_SLACK: usize = if cfg!(loom) { 1 } else { 4 };
