//! # Alarms: per-worker timers whose cancel waits for a firing in flight
//!
//! An alarm, armed for an instant, posts one [`Event`] to *its own*
//! [`EventQueue`] when that instant passes. This is the Akaros `ep_alarm` of
//! seed 004 ("epoll: Give every waiter their own event queue"): a timed
//! waiter blocks on the queue it really waits for *and* on its own alarm's
//! queue, so no waiter can ever consume another's timeout, and a waiter
//! woken by a real event cancels its alarm and, if the alarm is already
//! firing, waits until that firing completes before the alarm object is
//! reused.
//!
//! ## Where alarms live
//!
//! Every worker of a runtime has a timer set (a [`Wheel`], percore-lwkt's
//! hierarchical timing wheel `percore_lwkt::wheel`, the one that also keeps
//! the worker's uthread timeouts; here behind a mutex taken by its worker
//! and by whoever arms or cancels there) and an atomic copy of its earliest
//! deadline, read without the lock at every scheduling pass through the
//! runtime's driver (`percore_lwkt::Driver::poll`). An alarm is armed on the
//! caller's worker (worker 0 for a foreign thread, which then kicks it with
//! an IPI if the new deadline is its earliest). Expired alarms fire on their
//! worker's OS thread, between uthreads, with no extra thread, in batches of
//! 32 taken under the lock and fired outside it.
//!
//! The wheel is Varghese & Lauck's hierarchical timing wheel ("Hashed and
//! Hierarchical Timing Wheels", SOSP 1987), shaped like tokio's time driver
//! (`tokio/src/runtime/time/wheel/`): six levels of 64 slots of ticks of
//! 2^18 ns (about 262 µs), an occupancy bitmap per level to find the next
//! non-empty slot, and entries in a slab, linked into their slot by index,
//! so insert and remove are O(1) and allocate nothing in the steady state.
//! A deadline is rounded *up* to a tick and fires once the clock's tick
//! reaches it, so never early; the published earliest deadline is the start
//! of the next slot to process, never after the earliest alarm (at most one
//! tick after its deadline), sometimes before it (a higher level's slot that
//! only cascades). The alarm record keeps the entry's key (slab index and
//! generation); a key gone stale (its entry taken by a firing that then lost
//! to the cancel) removes nothing.
//!
//! NOTE: measured with `examples/alarm_set_cancel.rs` (release, one worker,
//! set + cancel pairs): the ordered map it replaces (`BTreeMap` keyed by
//! deadline and sequence) cost about 117 ns a pair with no other alarm
//! pending and 133 ns with 100,000 or 2,000,000 pending; the wheel about
//! 108 ns at every size. What is left is mostly the four lock round trips
//! (the alarm record's and the wheel's, on set and on cancel) and reading
//! the clock.
//!
//! ## Alarm objects: one shared SMR zone
//!
//! The alarm objects (`AlarmObject`: state word, lock, own queue) come from one
//! [`SmrZone`](percore_zone::SmrZone) per runtime, shared by every user
//! (epoll sets, sockets, sleepers), so there are never more of them than
//! concurrent timed waiters, and each keeps its constructed queue across
//! reuses, as the seed wants from its `kmem_cache`. The firing worker may
//! still touch an alarm after its owner saw the firing complete and freed it
//! (it unlocks the cell and reads its queue handle); the zone hands a freed
//! cell out again only after a grace period of the driver's SMR domain, and
//! a worker fires inside a read section of that domain. That closes the
//! seed's "TODO: (RCU/SLAB) it's not safe to reap the objects".
//!
//! ## Cancel versus fire
//!
//! The state word (idle / armed / firing, with a generation) and the
//! canceller hand-off live in `alarm/state.rs` (`AlarmState`), with their
//! state table and invariants; `tests/loom_alarm.rs` model-checks exactly
//! that code. In short: firing and cancelling race on one compare-and-swap
//! from `ARMED`; a cancel that loses parks until the firing completes, so
//! afterwards no worker touches that arming any more.
//!
//! ## Moving a deadline later in place
//!
//! `set` on an alarm still armed, to a deadline at or after its current one
//! (a timed waiter pushing its timeout on, a keep-alive), only stores the
//! new deadline in the cell and bumps the generation (`AlarmState::rearm`):
//! no lock, no wheel. The wheel entry stays at the old deadline; when it
//! comes up, the worker finds the arming moved and, under the cell's lock,
//! puts it back for the new deadline (or fires it, if that passed too):
//! tokio's `Sleep::reset` does the same. An earlier deadline cancels and
//! arms afresh. `pop_due_keyed` hands out the entry's key with it, which
//! the worker compares with the record's to tell the moved arming's entry
//! from a stale one (the invariants are in `alarm/state.rs`).
//!
//! NOTE: `evq_timers` `percore-rearm` (`percore-bench`, `--quick`, 2-CPU
//! machine, 10 runs): 39-49 ns a move, against 70-89 ns for tokio's
//! `Sleep::reset` and 109-141 ns for set + cancel in the same runs.
//!
//! Precision: a deadline is rounded up to the wheel's tick (about 262 µs)
//! and a sleeping worker's `epoll_wait` counts whole milliseconds (rounded
//! up), so an alarm fires up to about 1.3 ms late, never early.

// NOTE: `pub` items inside are reached by the loom model only (`__loom`).
#[allow(unreachable_pub)]
pub(crate) mod state;

use crate::driver::{self, EvqDriver};
use crate::error::Error;
use crate::queue::{Event, EventQueue};
use crate::stats::stats;
use crate::wait;
use crossbeam_utils::CachePadded;
use percore_lwkt::wheel::{tick_ceil, tick_floor, tick_start, Key, Wheel};
use percore_lwkt::Handle;
use percore_lwkt::Waiter;
use state::{AlarmState, Cancel, Fire};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The [`Event::kind`] an alarm posts to its own queue; the payload is the
/// arming's generation.
pub const ALARM_EVENT: u32 = u32::MAX;

/// An alarm object, the body behind an [`Alarm`] handle: an item of the
/// runtime's alarm [`SmrZone`]; reached by `&AlarmObject` only (type-stable
/// memory: a firing worker may still look at it after a reuse), so every
/// field is thread safe.
///
/// [`SmrZone`]: percore_zone::SmrZone
pub(crate) struct AlarmObject {
    /// Cancel versus fire; the key is the timer entry's `(worker, key)`.
    state: AlarmState<(usize, Key), Waiter>,
    /// The alarm's own queue; never closed, kept across reuses.
    queue: EventQueue,
}

impl AlarmObject {
    pub(crate) fn new() -> AlarmObject {
        AlarmObject { state: AlarmState::new(), queue: EventQueue::new() }
    }
}

#[derive(Clone, Copy)]
struct Ptr(NonNull<AlarmObject>);
// SAFETY: an `AlarmObject` is `Sync`; the pointer is only dereferenced as `&AlarmObject`
// inside a read section of the zone's domain (see the module essay).
unsafe impl Send for Ptr {}

/// A worker's timer set and its earliest deadline (`u64::MAX`: none), read
/// without the lock at every scheduling pass.
struct PerWorker {
    /// Entries: the cell and the arming's generation. Locked by the worker
    /// (`poll`) and by whoever arms or cancels on it.
    wheel: Mutex<Wheel<(Ptr, u64)>>,
    /// Nanoseconds since the epoch: the start of the wheel's next deadline
    /// tick (`Wheel::next_deadline`), written under the lock, read without.
    earliest: AtomicU64,
}

/// The timer sets of a runtime's workers.
pub(crate) struct Wheels {
    wheels: Box<[CachePadded<PerWorker>]>,
    epoch: Instant,
}

impl Wheels {
    pub(crate) fn new(workers: usize) -> Wheels {
        Wheels {
            wheels: (0..workers)
                .map(|_| {
                    CachePadded::new(PerWorker { wheel: Mutex::new(Wheel::new()), earliest: AtomicU64::new(u64::MAX) })
                })
                .collect(),
            epoch: Instant::now(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos().min(u64::MAX as u128 - 1) as u64
    }

    fn lock(&self, w: usize) -> MutexGuard<'_, Wheel<(Ptr, u64)>> {
        self.wheels[w].wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store the wheel's next deadline tick start (called under its lock).
    #[inline]
    fn publish_earliest(&self, w: usize, wheel: &Wheel<(Ptr, u64)>) {
        // NOTE: a tick start past `u64::MAX` ns would saturate to "none"; the
        // next slot starts at most 2^36 ticks (208 days) past the wheel's
        // time, which follows the clock, so it never does.
        let e = wheel.next_deadline().map_or(u64::MAX, tick_start);
        // ORDERING: release/acquire with `poll`: a worker that reads the new
        // earliest deadline then locks the wheel anyway before firing.
        self.wheels[w].earliest.store(e, Release);
    }

    /// Insert for `at` (nanoseconds since the epoch); returns the key and
    /// whether the earliest deadline moved earlier.
    #[inline]
    fn insert(&self, w: usize, at: u64, p: Ptr, gen: u64) -> (Key, bool) {
        // NOTE: rounded up to a tick: never early (`alarm/wheel.rs`).
        let when = tick_ceil(at);
        let mut wheel = self.lock(w);
        let (key, earlier) = wheel.insert(when, (p, gen));
        if earlier {
            self.publish_earliest(w, &wheel);
        }
        (key, earlier)
    }

    #[inline]
    fn remove(&self, w: usize, key: Key) {
        let mut wheel = self.lock(w);
        // NOTE: a stale key (the entry was taken by `poll`, whose firing then
        // lost to this cancel) removes nothing.
        if let Some((_, true)) = wheel.remove(key) {
            self.publish_earliest(w, &wheel);
        }
    }

    /// Worker `w`'s pass: fire every expired alarm; return the next deadline.
    pub(crate) fn poll(&self, w: usize, smr: &percore_smr::Smr) -> Option<Instant> {
        // ORDERING: acquire pairs with `publish_earliest`.
        let e = self.wheels[w].earliest.load(Acquire);
        if e == u64::MAX {
            return None;
        }
        let now = self.nanos(Instant::now());
        if now < e {
            return Some(self.epoch + Duration::from_nanos(e));
        }
        // NOTE: `e <= now` iff the next tick `<= tick_floor(now)`; an entry
        // is handed out only once its (rounded-up) tick is, so at or after
        // its deadline.
        let now = tick_floor(now);
        // NOTE: the section covers taking entries out of the wheel too: an
        // entry's cell may be cancelled and freed the moment the lock drops.
        let _g = smr.enter();
        loop {
            let mut due = [None; 32];
            let mut n = 0;
            {
                let mut wheel = self.lock(w);
                while n < due.len() {
                    match wheel.pop_due_keyed(now) {
                        Some(v) => {
                            due[n] = Some(v);
                            n += 1;
                        }
                        None => break,
                    }
                }
                self.publish_earliest(w, &wheel);
            }
            for &(key, (p, gen)) in due.iter().flatten() {
                // SAFETY: `p` was in the wheel inside this read section, so
                // it points to a constructed cell (type-stable zone memory).
                self.fire(w, unsafe { p.0.as_ref() }, p, (key, gen), now);
            }
            if n < due.len() {
                break;
            }
        }
        let e = self.wheels[w].earliest.load(Acquire);
        (e != u64::MAX).then(|| self.epoch + Duration::from_nanos(e))
    }

    /// Worker `w`'s due entry `(key, gen)` of `cell` (at `p`): fire the
    /// arming unless it was cancelled; if it was moved to a later deadline
    /// in place (`Alarm::set`), fire it if that deadline's tick is `now` or
    /// earlier, or else put it back in the wheel for its new deadline.
    fn fire(&self, w: usize, cell: &AlarmObject, p: Ptr, (key, gen): (Key, u64), now: u64) {
        let fired = cell.state.fire(
            gen,
            &(w, key),
            |when| tick_ceil(when) <= now,
            // NOTE: under the cell's record lock, then the wheel's: the
            // order `Alarm::set` takes them in too.
            |g, when| (w, self.insert(w, when, p, g).0),
            |g| {
                // NOTE: the queue is the cell's own and never closed.
                let _ = cell.queue.post(Event::new(ALARM_EVENT, g));
            },
        );
        if fired == Fire::Fired {
            stats().alarms_fired.inc();
        }
    }
}

/// A one-shot timer that posts [`ALARM_EVENT`] to its own
/// [`queue`](Alarm::queue) when it expires; re-armable; cancel waits for a
/// firing in flight (see the module docs). The object comes from the
/// runtime's shared alarm zone and returns there on drop.
///
/// ```
/// use percore_evq::Alarm;
/// use std::time::{Duration, Instant};
///
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let mut a = Alarm::new().unwrap();
///     let t0 = Instant::now();
///     a.set_after(Duration::from_millis(5)).unwrap();
///     a.wait(None).unwrap(); // blocks this uthread, not the worker
///     assert!(t0.elapsed() >= Duration::from_millis(5));
///     a.set_after(Duration::from_secs(60)).unwrap();
///     assert!(a.cancel()); // stopped before it fired
/// }).unwrap();
/// ```
pub struct Alarm {
    /// The object, allocated from the driver's alarm zone in `new_in` and
    /// freed to it in `drop`; the handle owns it, and workers reach it only
    /// through wheel entries (inside read sections of the zone's domain).
    cell: NonNull<AlarmObject>,
    /// The generation of the handle's latest arming (`&mut self` only):
    /// what `cancel` and `is_armed` compare with the object's state word.
    gen: u64,
    /// A firing may have posted to the queue since it was last cleared
    /// (so `set` must clear it; the seed's bug is a stale alarm event).
    /// `&mut self` only.
    dirty: bool,
    /// The runtime's evq driver (its wheels and zone); set once in `new_in`.
    driver: Arc<EvqDriver>,
    /// The runtime the alarm belongs to; set once in `new_in`.
    handle: Handle,
}

// SAFETY: the cell is only used through `&AlarmObject` (thread-safe fields); the
// rest is `Send + Sync`.
unsafe impl Send for Alarm {}
// SAFETY: as above; mutation needs `&mut Alarm`.
unsafe impl Sync for Alarm {}

impl std::fmt::Debug for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarm").field("armed", &self.is_armed()).finish()
    }
}

impl Alarm {
    /// An unarmed alarm of the calling uthread's runtime
    /// ([`Error::NoRuntime`] elsewhere: use [`Alarm::new_in`]).
    pub fn new() -> Result<Alarm, Error> {
        let h = Handle::current().ok_or(Error::NoRuntime)?;
        Self::new_in(&h)
    }

    /// An unarmed alarm of the runtime of `handle`.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let mut a = percore_evq::Alarm::new_in(rt.handle()).unwrap();
    /// a.set_after(std::time::Duration::from_millis(1)).unwrap();
    /// a.wait(None).unwrap(); // a foreign thread blocks too
    /// ```
    ///
    /// [`Error::Shutdown`] once the runtime has shut down.
    pub fn new_in(handle: &Handle) -> Result<Alarm, Error> {
        if handle.is_shutdown() {
            return Err(Error::Shutdown);
        }
        let driver = driver::get(handle)?;
        let cell = driver.alarm_zone()?.alloc_raw()?;
        // SAFETY: freshly allocated from the zone: a constructed cell.
        let gen = unsafe { cell.as_ref() }.state.generation();
        Ok(Alarm { cell, gen, dirty: false, driver, handle: handle.clone() })
    }

    fn cell(&self) -> &AlarmObject {
        // SAFETY: we own the allocation until drop.
        unsafe { self.cell.as_ref() }
    }

    /// The alarm's own queue: each firing posts
    /// `Event { kind: ALARM_EVENT, payload: generation }` to it. Block on it
    /// together with other queues ([`wait_any`](crate::wait_any)).
    pub fn queue(&self) -> &EventQueue {
        &self.cell().queue
    }

    /// Whether it is armed and has not fired yet.
    pub fn is_armed(&self) -> bool {
        self.cell().state.is_armed()
    }

    /// Arm for `at` (an instant already past fires at the worker's next
    /// pass). An alarm armed and not yet fired, set for `at` or earlier, is
    /// moved to `at` in place (no lock, no timer-set update; see the module
    /// docs); otherwise an armed alarm is cancelled first, and an event of
    /// an earlier firing still in the queue is dropped. Either way, after
    /// `set` the queue holds only this arming's event, once it fires.
    ///
    /// [`Error::Shutdown`] once the runtime has shut down (no worker would
    /// ever fire it).
    pub fn set(&mut self, at: Instant) -> Result<(), Error> {
        if self.handle.is_shutdown() {
            return Err(Error::Shutdown);
        }
        let when = self.driver.wheels.nanos(at);
        // Armed, not fired, to a deadline no earlier: move it in place.
        if self.cell().state.rearm(self.gen, when) {
            self.gen += 1;
            stats().alarms_set.inc();
            return Ok(());
        }
        self.set_slow(when)
    }

    /// [`set`](Alarm::set) by cancel and a fresh arming.
    fn set_slow(&mut self, when: u64) -> Result<(), Error> {
        // NOTE: an arming cancelled before it fired posted nothing, and the
        // queue was cleared before it was armed: no lock needed then.
        if !self.cancel() && self.dirty {
            self.cell().queue.clear();
        }
        self.dirty = true;
        let w = self.handle.local_worker();
        let wi = w.unwrap_or(0);
        self.gen += 1;
        let (wheels, p, gen) = (&self.driver.wheels, Ptr(self.cell), self.gen);
        let first = self.cell().state.arm(gen, when, || {
            let (key, first) = wheels.insert(wi, when, p, gen);
            ((wi, key), first)
        });
        stats().alarms_set.inc();
        if first && w.is_none() {
            // A foreign thread armed worker 0's earliest alarm: make it
            // recompute its sleep.
            let _ = self.handle.run_on(0, || {});
        }
        Ok(())
    }

    /// [`set`](Alarm::set) for `d` from now.
    pub fn set_after(&mut self, d: Duration) -> Result<(), Error> {
        let at = wait::deadline(Some(d)).ok_or_else(|| Error::Invalid("bad duration".into()))?;
        self.set(at)
    }

    /// Disarm. Returns `true` if the alarm was armed and is now stopped
    /// before firing; `false` if it was not armed or has fired (its event is
    /// then in [`queue`](Alarm::queue) unless taken). If its worker is
    /// firing it right now, waits until that firing completes: afterwards no
    /// worker touches this arming any more.
    pub fn cancel(&mut self) -> bool {
        match self.cell().state.cancel(self.gen) {
            Cancel::Stopped(key) => {
                if let Some((w, k)) = key {
                    self.driver.wheels.remove(w, k);
                }
                stats().alarms_cancelled.inc();
                self.dirty = false;
                true
            }
            Cancel::Fired { waited } => {
                if waited {
                    stats().alarms_cancel_waits.inc();
                }
                false
            }
        }
    }

    /// Block until the alarm fires ([`Error::TimedOut`] after `timeout`;
    /// returns at once if it already fired and its event is still queued).
    ///
    /// [`Error::Shutdown`] when the runtime has shut down and the event is
    /// not there: at once, or (a foreign thread waiting while it shuts
    /// down) within a few tens of milliseconds.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = wait::deadline(timeout);
        loop {
            if self.handle.is_shutdown() && self.cell().queue.is_empty() {
                return Err(Error::Shutdown);
            }
            match self.cell().queue.recv(wait::slice(deadline)) {
                Ok(e) if e.kind == ALARM_EVENT && e.payload == self.gen => return Ok(()),
                Ok(_) => {}
                // A foreign thread's slice ended before the deadline.
                Err(Error::TimedOut) if deadline.is_none_or(|d| Instant::now() < d) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        // The next owner of the cell gets an empty queue.
        if !self.cancel() && self.dirty {
            self.cell().queue.clear();
        }
        if let Ok(z) = self.driver.alarm_zone() {
            // SAFETY: allocated from this zone by `new_in`, freed once; it is
            // in no wheel (cancelled, or fired) and the firing worker is done
            // with it but for reads inside its SMR section.
            unsafe { z.free_raw(self.cell) };
        }
    }
}

/// The canceller waiting for a firing in flight is a [`Waiter`].
impl state::Park for Waiter {
    fn current() -> Self {
        Waiter::current()
    }

    fn park() {
        // NOTE: a canceller inside a critical or SMR section may not block;
        // the firing it waits for is a few instructions on another worker,
        // so it spins (its caller loops) instead.
        if percore_lwkt::park_until(None).is_err() {
            std::hint::spin_loop();
        }
    }

    fn unpark(self) {
        self.wake();
    }
}
