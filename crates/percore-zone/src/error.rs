//! The zone's typed errors.

use std::time::Duration;

/// Why a zone operation failed.
///
/// ```
/// use percore_zone::{Error, Zone};
/// let zone = Zone::builder("err-doc", || 0u32).max_items(1).build().unwrap();
/// let _one = zone.try_alloc().unwrap();
/// let err = zone.try_alloc().unwrap_err();
/// assert!(matches!(err, Error::Full { limit: 1, .. }));
/// assert!(err.to_string().contains("err-doc"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The zone holds its maximum number of items and none is free.
    #[error("zone {zone}: item limit {limit} reached and no free item is available")]
    Full {
        /// The zone's name.
        zone: String,
        /// Its `max_items`.
        limit: usize,
    },
    /// `alloc_wait` gave up: no item became free within the timeout.
    #[error("zone {zone}: no item became free within {timeout:?} (limit {limit})")]
    Timeout {
        /// The zone's name.
        zone: String,
        /// Its `max_items`.
        limit: usize,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// Waiting for a grace period from inside a read section of the zone's
    /// SMR domain would wait for the caller itself, forever.
    #[error("zone {zone}: cannot wait for an SMR grace period inside a read section of that domain")]
    InSection {
        /// The zone's name.
        zone: String,
    },
    /// The system allocator refused memory for a slab or an item.
    #[error("zone {zone}: out of memory allocating {bytes} bytes")]
    OutOfMemory {
        /// The zone's name.
        zone: String,
        /// The size of the refused allocation.
        bytes: usize,
    },
    /// The builder was given an impossible configuration.
    #[error("invalid zone configuration: {0}")]
    Config(String),
}
