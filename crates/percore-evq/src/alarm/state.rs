//! # The alarm state machine: cancel versus fire
//!
//! The part of an alarm that two threads race on, on its own so that the
//! same code runs in production (`alarm.rs`) and under loom
//! (`tests/loom_alarm.rs`, through `crate::__loom`): a state word, the
//! current deadline, and a small lock-protected record. The owner (who holds
//! `&mut Alarm`) arms, moves and cancels; a worker fires, or puts a moved
//! arming back in its timer set. Everything else (the timer sets, the event
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
//! | 1 | `ARMED` | armed, its timer entry is in a timer set (or taken out by a firer, being looked at) | owner ([`AlarmState::arm`], [`AlarmState::rearm`]) |
//! | 2 | `FIRING` | taken by a firer, which is posting its event | firer ([`AlarmState::fire`]) |
//!
//! The generation is bumped by every arming and by every move of an arming
//! to a later deadline in place, so a timer entry of an earlier generation
//! (`fire(g)` with `g` no longer current) finds the word changed. Beside
//! the word, `when` holds the current arming's deadline (the caller's
//! unit), and the record holds the key of the arming's *live* timer entry:
//! an arming has exactly one entry in a timer set, or none while a firer
//! holds it, taken out.
//!
//! ## Transitions
//!
//! * arm `g` at `t`: under the lock, `when = t`, `IDLE(g-1) -> ARMED(g)`
//!   (the owner cancelled first), insert the timer entry and record its key.
//! * rearm `g` at `t >= when` (`Alarm::set` to a later deadline, like
//!   tokio's `Sleep::reset`): `when = t`, then `ARMED(g) -> ARMED(g+1)` by
//!   compare-and-swap, without the lock and without touching the timer set:
//!   the entry stays, at the old (earlier) deadline, and is now the entry of
//!   `g+1`. Losing the swap (a firer took `g`) changes nothing the owner
//!   relies on: it cancels and arms afresh, as for an earlier deadline.
//! * fire, for an entry of key `k` and generation `g` taken out of the
//!   timer set: `ARMED(g) -> FIRING(g)` by compare-and-swap, post the event,
//!   then under the lock `FIRING(g) -> IDLE(g)`, forget the key and take
//!   the canceller waiting for this firing, if any; wake it after
//!   unlocking. If the swap finds `IDLE` or `FIRING`: cancelled, fired, or
//!   fired through a fresh entry; stop. If it finds `ARMED(g')`, `g' > g`:
//!   under the lock, if the record still names `k` (moved in place, not
//!   cancelled or armed afresh since) and the word reads `ARMED(g')`:
//!   `when` due, retry the swap for `g'` (unlocked); else insert an entry
//!   for `g'` at `when` and record its key, still under the lock. If the
//!   record names another key (or none), `k` is stale: stop.
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
//! 4. Never early: an entry is taken out once its deadline passed, and a
//!    generation's deadline only grows while it is armed (`rearm` stores a
//!    later `when` before its release swap), so an entry of generation
//!    `g` that still finds `ARMED(g)` is due for `g`; a moved arming is
//!    fired only by a `when` read after an acquire load of its generation.
//! 5. No entry outlives its arming: a firer puts a moved arming back only
//!    while holding the lock and the record still names the entry it took
//!    out, and records the new key under that lock; a cancel takes the key
//!    under the same lock after its swap to `IDLE`, so it either takes the
//!    new key (and removes the entry) or ran first and left the record
//!    empty (and the firer stops). A fresh arming records its own key, so a
//!    stale entry of a moved arming is never put back for it. Alarm objects
//!    live in SMR-zone memory: an entry left behind would name a freed, and
//!    later reused, object.
//!
//! This is the seed's (004) abort-then-wait-for-completion protocol:
//! `sys_abort_sysc`, then `uth_blockon_evqs` on the alarm's own queue until
//! the aborted call completes; here the waiting is on the firing itself, so
//! it needs no dummy message.

use percore_cpu::loom::{AtomicU64, Mutex, MutexGuard};
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
    /// The live timer entry of the current arming, while armed (owner
    /// writes on arm, owner takes on cancel, firer clears on firing and
    /// replaces when it puts a moved arming back).
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

/// What [`AlarmState::fire`] did with a due timer entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Fire {
    /// Fired (posted) the current arming.
    Fired,
    /// Nothing: the entry's arming was cancelled, fired, or replaced by a
    /// fresh arming with its own entry.
    Stale,
    /// The arming was moved to a later deadline in place: a new entry for
    /// it is in the timer set, and the record holds its key.
    Moved,
}

/// The alarm's state word and record; see the module docs. `K` is the key
/// of a timer entry, `P` the canceller's way to park.
pub struct AlarmState<K, P> {
    /// Generation and state bits (table in the module docs).
    word: AtomicU64,
    /// The deadline of the current arming, in the caller's unit. The owner
    /// writes it (in `arm` under the lock, in `rearm` before the generation
    /// bump, only ever later while the arming lives); a firer reads it
    /// under the lock after reading `ARMED(g)`.
    when: AtomicU64,
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
        AlarmState {
            word: AtomicU64::new(word(0, IDLE)),
            when: AtomicU64::new(0),
            record: Mutex::new(Record { key: None, canceller: None }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Record<K, P>> {
        self.record.lock()
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
    /// Owner: arm generation `gen`, due at `when`, which must be the next
    /// one, with the alarm idle (cancel first). `insert` puts the timer
    /// entry in place and returns its key and a value handed back to the
    /// caller; it runs under the lock, after the word reads `ARMED(gen)`, so
    /// a firer that finds the entry finds the arming.
    pub fn arm<R>(&self, gen: u64, when: u64, insert: impl FnOnce() -> (K, R)) -> R {
        debug_assert_eq!(self.word.load(Relaxed), word(gen - 1, IDLE), "arm of a busy alarm or a wrong generation");
        let mut rec = self.lock();
        // ORDERING: relaxed; published by the release store below (a firer
        // reads it after an acquire load of `ARMED(gen)`).
        self.when.store(when, Relaxed);
        // ORDERING: release publishes what the owner did before arming (the
        // cleared queue) to the firer's acquire compare-and-swap.
        self.word.store(word(gen, ARMED), Release);
        let (key, r) = insert();
        rec.key = Some(key);
        r
    }

    /// Owner: move the armed, not yet fired arming `gen` to the later (or
    /// equal) deadline `when`, in place: its timer entry stays where it is
    /// and the next generation, `gen + 1`, takes it over. Returns `false`,
    /// changing nothing the caller relies on, if `when` is earlier than the
    /// current deadline or a firer took the arming first: the caller then
    /// cancels and arms afresh.
    #[inline]
    pub fn rearm(&self, gen: u64, when: u64) -> bool {
        // ORDERING: relaxed: only the owner writes `when`, and it reads its
        // own writes; the word is only an early exit, the compare-and-swap
        // below decides.
        if when < self.when.load(Relaxed) || self.word.load(Relaxed) != word(gen, ARMED) {
            return false;
        }
        // NOTE: stored before the swap, so a firer that reads the word still
        // at `ARMED(gen)` may read this deadline already: it is later than
        // `gen`'s, so firing `gen` by it is never early.
        self.when.store(when, Relaxed);
        // ORDERING: release publishes `when` to the firer's acquire load of
        // `ARMED(gen + 1)` under the lock in `fire`; failure (a
        // firer's `FIRING(gen)`) needs nothing: the caller cancels, which
        // synchronizes on its own.
        self.word.compare_exchange(word(gen, ARMED), word(gen + 1, ARMED), Release, Relaxed).is_ok()
    }

    /// Firer: the timer entry `entry` of arming `gen` is due. Fire it unless
    /// it was cancelled or armed afresh: run `post` with the generation
    /// fired (post the event), then complete the firing and wake a canceller
    /// waiting for it. If the arming was moved in place
    /// ([`rearm`](AlarmState::rearm)) and `entry` is still the record's
    /// live entry, fire the current generation if `due` says its deadline
    /// has come, or else `reinsert(generation, deadline)` a new entry, under
    /// the lock, and record its key.
    pub fn fire(
        &self,
        gen: u64,
        entry: &K,
        due: impl Fn(u64) -> bool,
        reinsert: impl FnOnce(u64, u64) -> K,
        post: impl FnOnce(u64),
    ) -> Fire
    where
        K: PartialEq,
    {
        let mut gen = gen;
        loop {
            // ORDERING: acquire pairs with the release store of `ARMED` in
            // `arm`, so what the owner did before arming is visible to `post`.
            match self.word.compare_exchange(word(gen, ARMED), word(gen, FIRING), Acquire, Relaxed) {
                Ok(_) => break,
                // Cancelled, fired, or being fired through a fresh entry.
                Err(w) if w & STATE_MASK != ARMED => return Fire::Stale,
                Err(_) => {}
            }
            // `ARMED` at a later generation: moved in place (`entry` is the
            // live entry, the record still names it) or armed afresh (the
            // record names the fresh entry, or none if cancelled since).
            let mut rec = self.lock();
            // ORDERING: acquire pairs with the release compare-and-swap in
            // `rearm` (and the release store in `arm`): `when` read below is
            // at least the deadline of the generation read here.
            let w = self.word.load(Acquire);
            // NOTE: the re-checks are under the lock that `cancel` takes to
            // take the key and `arm` to record one. The key check is the
            // one that matters (without it, or outside the lock, loom finds
            // an entry outliving its arming: `fresh_arm_races_stale_entry`,
            // `rearm_then_cancel_races_reinsert`): a cancel that took the
            // key, or an arming that recorded a fresh one, came first, so
            // `entry` is stale; or the cancel comes after and takes the key
            // recorded below. With the key still `entry`, `IDLE` means a
            // cancel between its swap and its lock; stopping then only
            // saves it removing a useless entry.
            if rec.key.as_ref() != Some(entry) || w & STATE_MASK != ARMED {
                return Fire::Stale;
            }
            // ORDERING: relaxed, ordered by the acquire load above.
            let when = self.when.load(Relaxed);
            if due(when) {
                // Retry the swap for the current generation, unlocked (a
                // cancel or another move may come first: then look again).
                // XXX: an owner moving a deadline that stays due, again and
                // again, keeps this loop going (each turn needs a move).
                gen = w >> 2;
                continue;
            }
            rec.key = Some(reinsert(w >> 2, when));
            return Fire::Moved;
        }
        post(gen);
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
        Fire::Fired
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
