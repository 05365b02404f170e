//! [`Builder`]: a domain's settings, validated, and its creation.

use super::{DomainOwner, Smr, NEXT_ID};
use crate::domain::{Domain, Mode};
use crate::sys::Flavour;
use crate::Error;
use percore_cpu::loom::Arc;
use percore_cpu::stats;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

/// Configures a [`Smr`] domain.
#[derive(Clone, Debug)]
pub struct Builder {
    pub(super) name: String,
    pub(super) mode: Mode,
    pub(super) max_pending: usize,
    pub(super) batch_size: usize,
}

/// Default cap on retired objects waiting in queued batches.
pub const DEFAULT_MAX_PENDING: usize = 1 << 18;
/// Default number of retired objects per participant batch.
pub const DEFAULT_BATCH: usize = 128;

impl Builder {
    /// How the write sequence advances (default: [`Mode::Default`]).
    pub fn mode(mut self, mode: Mode) -> Builder {
        self.mode = mode;
        self
    }

    /// The cap on retired-but-not-reclaimed objects in queued batches
    /// (default [`DEFAULT_MAX_PENDING`], 262,144).
    ///
    /// A writer whose retire finds the queue over the cap waits for readers
    /// (back-pressure) until it is under again. Each participant also holds
    /// up to `batch_size` untagged objects of its own, so the domain's
    /// pending total stays at or below `max_pending + batch_size *
    /// (participants + 1)`. Smaller caps bound memory when a reader stalls,
    /// at the price of writers stalling with it; the default is large
    /// enough that only a reader stuck for a long time triggers it. A
    /// writer inside a read section never waits (it would wait for itself):
    /// it lets the queue run over and counts `cap_overrun`.
    pub fn max_pending(mut self, objects: usize) -> Builder {
        self.max_pending = objects;
        self
    }

    /// Objects per participant batch (default [`DEFAULT_BATCH`]). One
    /// `advance` and at most one scan per batch: larger batches cost less
    /// per object and keep memory longer.
    pub fn batch_size(mut self, objects: usize) -> Builder {
        self.batch_size = objects;
        self
    }

    /// Create the domain.
    ///
    /// ```
    /// use percore_smr::{Error, Mode, Smr};
    /// let smr = Smr::builder("deferred").mode(Mode::Deferred { limit: 8 }).build().unwrap();
    /// assert_eq!(smr.name(), "deferred");
    /// let bad = Smr::builder("bad").batch_size(0).build();
    /// assert!(matches!(bad, Err(Error::InvalidConfig { .. })));
    /// ```
    pub fn build(self) -> Result<Smr, Error> {
        let invalid = |reason: &str| Err(Error::InvalidConfig { domain: self.name.clone(), reason: reason.into() });
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return invalid("batch_size must be between 1 and 1,048,576");
        }
        if self.max_pending < self.batch_size {
            return invalid("max_pending must be at least batch_size");
        }
        match self.mode {
            Mode::Deferred { limit: 0 } => return invalid("deferred limit must be at least 1"),
            Mode::Lazy { tick } if tick < Duration::from_micros(1) || tick > crate::domain::MAX_LAZY_TICK => {
                return invalid("lazy tick must be between 1us and 1s (MAX_LAZY_TICK)")
            }
            _ => {}
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let domain = Arc::new(Domain::new(id, self.name.clone(), self.mode, self.max_pending, self.batch_size));
        register_fence_stats(domain.flavour);
        let reg = stats::register_source(&format!("smr.{}", self.name), domain.clone());
        Ok(Smr { domain: domain.clone(), _owner: Arc::new(DomainOwner { domain, _stats: reg }) })
    }
}

fn register_fence_stats(flavour: Flavour) {
    static REG: OnceLock<stats::Registration> = OnceLock::new();
    REG.get_or_init(|| {
        let m = u64::from(flavour == Flavour::Membarrier);
        stats::register("smr.fence", move |emit| {
            emit("membarrier", m);
            emit("locked_rmw", 1 - m);
        })
    });
}
