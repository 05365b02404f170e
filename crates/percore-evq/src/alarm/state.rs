//! # The alarm state machine: cancel versus fire
//!
//! The part of an alarm that two threads race on, on its own so that the
//! same code runs in production (`alarm.rs`) and under loom
//! (`tests/loom_alarm.rs`, through `crate::__loom`): a state word and a small
//! lock-protected record. The owner (who holds `&mut Alarm`) arms and
//! cancels; a worker fires. Everything else (the timer sets, the event
//! queue, the SMR zone the object lives in) is the caller's business, passed
//! in as closures and keys.
//!
//! ## The state word
//!
//! ```text
//!  63                                   2 1   0
//! +--------------------------------------+-----+
//! |              generation              | st  |
//! +--------------------------------------+-----+
//! ```
//!
//! | `st` | name | meaning | set by |
//! | --- | --- | --- | --- |
//! | 0 | `IDLE` | not armed: never, or fired, or cancelled | owner (cancel), firer (end of firing) |
//! | 1 | `ARMED` | armed, its timer entry is in a timer set | owner ([`AlarmState::arm`]) |
//! | 2 | `FIRING` | taken by a firer, which is posting its event | firer ([`AlarmState::fire`]) |
//!
//! The generation is bumped by every arming, so a timer entry of an earlier
//! arming (`fire(g)` with `g` no longer current) finds the word changed and
//! does nothing.
//!
//! ## Transitions
//!
//! * arm `g`: `IDLE(g-1) -> ARMED(g)` (the owner cancelled first), then,
//!   under the lock, insert the timer entry and record its key.
//! * fire `g`: `ARMED(g) -> FIRING(g)` by compare-and-swap (losing means
//!   cancelled or re-armed: stop), post the event, then under the lock
//!   `FIRING(g) -> IDLE(g)`, forget the key and take the canceller waiting
//!   for this firing, if any; wake it after unlocking.
//! * cancel `g`: `ARMED(g) -> IDLE(g)` by compare-and-swap: stopped before
//!   firing, and the caller removes the timer entry ([`Cancel::Stopped`]).
//!   If the swap fails on `IDLE(g)` (never armed, or the firing completed)
//!   the cancel returns at once ([`Cancel::Fired`]); on `FIRING(g)`, under
//!   the lock, while it reads `FIRING(g)`, the canceller records itself and
//!   parks.
//!
//! ## Invariants
//!
//! 1. An arming is fired (its event posted) at most once, and exactly one of
//!    "cancel returned `Stopped`" and "it was fired" holds: both race on the
//!    same compare-and-swap from `ARMED(g)`.
//! 2. When [`AlarmState::cancel`] returns, the firer has finished posting
//!    and will not touch the word again for that arming: the canceller read
//!    `IDLE(g)` (acquire), stored by the firer (release) after posting. The
//!    firer may still hold the lock (taking the canceller record), then
//!    unlock and wake (the waker is its own copy); the owner's next use of
//!    the record takes the lock, so it comes after, and alarm objects are
//!    recycled only after an SMR grace period (`alarm.rs`) for the unlock.
//! 3. No lost wake-up: the canceller records itself and the firer takes the
//!    record under the same lock, and the canceller re-checks the word under
//!    that lock before every park; a wake-up that comes before the park makes
//!    the park return ([`Park`]).
//!
//! This is the seed's (004) abort-then-wait-for-completion protocol:
//! `sys_abort_sysc`, then `uth_blockon_evqs` on the alarm's own queue until
//! the aborted call completes; here the waiting is on the firing itself, so
//! it needs no dummy message.

use crate::loom::{AtomicU64, Mutex, MutexGuard};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// The state bits: not armed.
const IDLE: u64 = 0;
/// The state bits: armed, not yet taken by a firer.
const ARMED: u64 = 1;
/// The state bits: a firer is posting the event.
const FIRING: u64 = 2;
/// Where the state bits are.
const STATE_MASK: u64 = 3;

#[inline]
fn word(gen: u64, st: u64) -> u64 {
    (gen << 2) | st
}

/// A party that blocks until woken: the canceller waiting for a firing in
/// flight. A wake-up that comes before [`Park::park`] makes it return at
/// once; spurious returns are allowed (callers re-check under the lock).
pub trait Park: Send + Sized {
    /// The calling thread (uthread).
    fn current() -> Self;
    /// Block the caller until it is woken.
    fn park();
    /// Wake it.
    fn unpark(self);
}

/// Owner-and-firer bookkeeping, under the lock.
struct Record<K, P> {
    /// The timer entry of the current arming, while armed (owner writes on
    /// arm, owner takes on cancel, firer clears on firing).
    key: Option<K>,
    /// A canceller parked until the firing in flight ends (owner writes,
    /// firer takes).
    canceller: Option<P>,
}

/// What [`AlarmState::cancel`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancel<K> {
    /// It was armed and is now stopped before firing; the key of its timer
    /// entry, which the caller removes.
    Stopped(Option<K>),
    /// It was not armed, or it fired; `waited` says whether a firing was in
    /// flight and the call waited for it to complete.
    Fired {
        /// Whether the cancel had to park until the firing completed.
        waited: bool,
    },
}

/// The alarm's state word and record; see the module docs. `K` is the key
/// of a timer entry, `P` the canceller's way to park.
pub struct AlarmState<K, P> {
    /// Generation and state bits (table in the module docs).
    word: AtomicU64,
    /// Orders firing bookkeeping against arming and cancelling.
    record: Mutex<Record<K, P>>,
}

impl<K, P> Default for AlarmState<K, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, P> AlarmState<K, P> {
    /// Idle, generation 0.
    pub fn new() -> Self {
        AlarmState { word: AtomicU64::new(word(0, IDLE)), record: Mutex::new(Record { key: None, canceller: None }) }
    }

    fn lock(&self) -> MutexGuard<'_, Record<K, P>> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation of the latest arming (0 if never armed).
    pub fn generation(&self) -> u64 {
        // ORDERING: relaxed: only the owner arms, and it reads its own
        // writes; a recycled object is handed over with a happens-before
        // (the zone's free and alloc).
        self.word.load(Relaxed) >> 2
    }

    /// Whether it is armed and not yet fired (racy for anyone but the owner).
    pub fn is_armed(&self) -> bool {
        // ORDERING: acquire, so that an owner seeing `IDLE` after a firing
        // also sees its posted event (pairs with the release in `fire`).
        self.word.load(Acquire) & STATE_MASK != IDLE
    }
}

impl<K, P: Park> AlarmState<K, P> {
    /// Owner: arm generation `gen`, which must be the next one, with the
    /// alarm idle (cancel first). `insert` puts the timer entry in place and
    /// returns its key and a value handed back to the caller; it runs under
    /// the lock, after the word reads `ARMED(gen)`, so a firer that finds the
    /// entry finds the arming.
    pub fn arm<R>(&self, gen: u64, insert: impl FnOnce() -> (K, R)) -> R {
        debug_assert_eq!(self.word.load(Relaxed), word(gen - 1, IDLE), "arm of a busy alarm or a wrong generation");
        let mut rec = self.lock();
        // ORDERING: release publishes what the owner did before arming (the
        // cleared queue) to the firer's acquire compare-and-swap.
        self.word.store(word(gen, ARMED), Release);
        let (key, r) = insert();
        rec.key = Some(key);
        r
    }

    /// Firer: fire arming `gen` unless it was cancelled or re-armed: run
    /// `post` (post the event), then complete the firing and wake a
    /// canceller waiting for it. Returns whether it fired.
    pub fn fire(&self, gen: u64, post: impl FnOnce()) -> bool {
        // ORDERING: acquire pairs with the release store of `ARMED` in
        // `arm`, so what the owner did before arming is visible to `post`.
        if self.word.compare_exchange(word(gen, ARMED), word(gen, FIRING), Acquire, Relaxed).is_err() {
            return false;
        }
        post();
        let canceller = {
            let mut rec = self.lock();
            rec.key = None;
            // ORDERING: release publishes the posted event to an owner that
            // sees `IDLE` without the lock (`is_armed`); a canceller reads
            // the word under the lock, which orders it anyway.
            self.word.store(word(gen, IDLE), Release);
            rec.canceller.take()
        };
        if let Some(c) = canceller {
            c.unpark();
        }
        true
    }

    /// Owner: cancel arming `gen` (the current one). [`Cancel::Stopped`] if
    /// it stopped it before firing, else [`Cancel::Fired`] once no firing of
    /// `gen` is in flight any more (parking until then if needed).
    pub fn cancel(&self, gen: u64) -> Cancel<K> {
        // ORDERING: acquire on failure, so that reading `IDLE(gen)` here
        // makes the posted event visible (pairs with the release store of
        // `IDLE` in `fire`); the success needs no ordering of
        // its own (the key is read under the lock, and a firer that then
        // fails its compare-and-swap touches nothing), AcqRel is kept as
        // the conservative choice for an uncontended instruction.
        match self.word.compare_exchange(word(gen, ARMED), word(gen, IDLE), AcqRel, Acquire) {
            Ok(_) => Cancel::Stopped(self.lock().key.take()),
            // Not armed, or the firing is complete (invariant 2): no lock.
            Err(w) if w == word(gen, IDLE) => Cancel::Fired { waited: false },
            Err(_) => self.wait_firing_slow(gen),
        }
    }

    #[cold]
    fn wait_firing_slow(&self, gen: u64) -> Cancel<K> {
        let mut waited = false;
        loop {
            {
                let mut rec = self.lock();
                // ORDERING: under the lock; the firer stores `IDLE` under it.
                if self.word.load(Acquire) != word(gen, FIRING) {
                    break;
                }
                rec.canceller = Some(P::current());
            }
            waited = true;
            P::park();
        }
        Cancel::Fired { waited }
    }
}
