//! The runtime's evq driver: alarms and I/O readiness, on the workers.
//!
//! One [`EvqDriver`] per runtime, installed on first use through
//! `percore_lwkt::Handle::driver`. At every scheduling pass each worker
//! fires its expired alarms (`alarm.rs`); readiness events from the
//! worker's epoll instance name an I/O source (`io.rs`) by its address,
//! which stays valid for the whole dispatch because sources are freed
//! through the driver's SMR domain and dispatch runs in a read section.

use crate::alarm::{AlarmObject, Wheels};
use crate::error::Error;
use crate::io::Source;
use percore_lwkt::{Driver, Handle, IoEvent};
use percore_smr::Smr;
use percore_zone::SmrZone;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Per-runtime state of this crate.
pub(crate) struct EvqDriver {
    /// The domain that I/O sources and alarm objects are freed through:
    /// workers read inside its sections (`ready`, `poll`); registrations
    /// retire into it.
    pub(crate) smr: Smr,
    /// The runtime's alarm objects, made on first use by any thread
    /// (`alarm_zone`), then shared by every alarm.
    zone: OnceLock<SmrZone<AlarmObject>>,
    /// One timer wheel per worker: polled by that worker, armed and
    /// cancelled on by any thread (`alarm.rs`).
    pub(crate) wheels: Wheels,
    /// The name suffix of the domain and zone (`evq{id}`); fixed.
    id: u64,
}

impl EvqDriver {
    fn new(workers: usize) -> Result<EvqDriver, Error> {
        // ORDERING: relaxed: a unique number, ordering nothing else.
        let id = NEXT.fetch_add(1, Relaxed);
        let smr = Smr::new(&format!("evq{id}")).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(EvqDriver { smr, zone: OnceLock::new(), wheels: Wheels::new(workers), id })
    }

    /// The runtime's alarm zone (made on first use).
    pub(crate) fn alarm_zone(&self) -> Result<&SmrZone<AlarmObject>, Error> {
        if let Some(z) = self.zone.get() {
            return Ok(z);
        }
        let z = SmrZone::new(&format!("evq{}.alarms", self.id), &self.smr, AlarmObject::new)?;
        // NOTE: a zone made by a racing caller wins; ours is dropped unused.
        Ok(self.zone.get_or_init(|| z))
    }
}

impl Driver for EvqDriver {
    fn poll(&self, worker: usize) -> Option<Instant> {
        self.wheels.poll(worker, &self.smr)
    }

    fn ready(&self, _worker: usize, events: &[IoEvent]) {
        let _g = self.smr.enter();
        for e in events {
            // SAFETY: tokens are addresses of live `Source`s, registered by
            // `io::Registration`, which deregisters before retiring the
            // source through `self.smr`; we are inside a read section.
            let src = unsafe { &*(e.token as usize as *const Source) };
            src.on_ready(e.events);
        }
    }
}

/// The evq driver of `handle`'s runtime, installed if needed.
pub(crate) fn get(handle: &Handle) -> Result<Arc<EvqDriver>, Error> {
    handle.try_driver(|| EvqDriver::new(handle.workers()))
}
