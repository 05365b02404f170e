//! # Uthreads: the record, parking, joining, spawning, giving away
//!
//! | file | what |
//! | --- | --- |
//! | `record.rs` | the uthread record (`Thread`): its scheduler-owned state and the few shared fields |
//! | `park.rs` | the park word, the lock-free core of every block and wake-up |
//! | `block.rs` | the one blocking path (`wait_once`, `park_on`), and `park`, `park_timeout`, `park_until`, `sleep` |
//! | `waiter.rs` | [`Waiter`](crate::Waiter): a uthread, OS thread or task to wake |
//! | `portslot.rs` | the port slot: opened on first use, closed once at exit |
//! | `oneshot.rs` | the one-value slot (`Oneshot`): one value, one waiter (uthread, thread or task) |
//! | `slotcore.rs` | its protocol core (`SlotCore`: the state word and the waiter, as a `Waker`), shared with the record's join slot |
//! | `joinslot.rs` | the join slot: a uthread's result, type-erased in its recycled record |
//! | `join.rs` | [`JoinHandle`](crate::JoinHandle), and what fills its slot |
//! | `builder.rs` | [`Builder`](crate::Builder), [`spawn`](crate::spawn) |
//! | `current.rs` | what the calling uthread does to itself: yield, migrate, priority |
//! | `giveaway.rs` | moving a descheduled uthread to another worker |
//!
//! This file holds the public handle, [`Uthread`].

pub(crate) mod block;
pub(crate) mod builder;
pub(crate) mod current;
pub(crate) mod giveaway;
pub(crate) mod join;
pub(crate) mod joinslot;
pub(crate) mod oneshot;
pub(crate) mod park;
pub(crate) mod portslot;
pub(crate) mod record;
pub(crate) mod slotcore;
pub(crate) mod waiter;

use crate::error::Error;
use crate::worker::ipi::unpark;
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::{Acquire, Relaxed};
use record::Thread;

/// A handle to a uthread: its identity, and a reference that keeps its
/// record alive (`lwkt_hold`).
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let id = rt.block_on(|| percore_lwkt::current().unwrap().id()).unwrap();
/// assert!(id > 0);
/// ```
#[derive(Clone)]
pub struct Uthread(pub(crate) Arc<Thread>);

impl Uthread {
    /// A process-unique id (never 0).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The name given with [`Builder::name`](crate::Builder::name).
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// The uthread's priority (higher runs first).
    pub fn priority(&self) -> u8 {
        // ORDERING: relaxed: a mirror for observers (`Thread::pri`), orders nothing.
        self.0.pri.load(Relaxed) as u8
    }

    /// The worker that owns it now (migration changes it).
    pub fn worker(&self) -> usize {
        self.0.owner.load(Acquire)
    }

    /// Take a hold reference (`lwkt_hold`): the uthread's record stays valid
    /// while it is held, whatever the uthread does. Return it with
    /// [`Uthread::release`].
    pub fn hold(&self) -> Uthread {
        // ORDERING: relaxed: the count is informational; the `Arc` keeps the record alive.
        self.0.holds.fetch_add(1, Relaxed);
        self.clone()
    }

    /// Give back a reference taken with [`Uthread::hold`] (`lwkt_rele`).
    pub fn release(self) {
        // ORDERING: relaxed: the count is informational; the `Arc` keeps the
        // record alive.
        let _ = self.0.holds.fetch_update(Relaxed, Relaxed, |h| h.checked_sub(1));
    }

    /// Hold references currently taken.
    pub fn holds(&self) -> usize {
        // ORDERING: relaxed: as in `hold`.
        self.0.holds.load(Relaxed)
    }

    /// Wake the uthread if it is [`park`](crate::park)ed, or make its next
    /// `park` return at once (`lwkt_schedule`). Any thread may call it.
    pub fn unpark(&self) {
        unpark(&self.0);
    }

    /// Change the uthread's priority (`lwkt_setpri`). Takes effect when its
    /// owner next processes IPIs; it does not force a switch.
    pub fn set_priority(&self, pri: u8) -> Result<(), Error> {
        if pri > crate::MAX_PRIORITY {
            return Err(Error::BadPriority(pri));
        }
        self.0.set_pri_mirror(pri);
        let owner = self.0.owner.load(Acquire);
        crate::worker::ipi::send(&self.0.shared, owner, crate::kernel::Msg::SetPri(self.0.clone(), pri));
        Ok(())
    }
}

impl PartialEq for Uthread {
    fn eq(&self, o: &Uthread) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Uthread {}

impl std::fmt::Debug for Uthread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uthread")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("worker", &self.worker())
            .finish()
    }
}
