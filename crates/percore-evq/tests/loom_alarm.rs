//! loom model of alarm cancel-versus-fire (`src/alarm/state.rs`, the code
//! `Alarm` and the workers' timer passes run): the owner arms, then cancels
//! (and re-arms, as `Alarm::set` does) while a worker fires.
//!
//! What each model checks:
//! * a cancel that returns `Stopped` means the event is never posted; one
//!   that returns `Fired` means it was posted exactly once, *before* the
//!   cancel returned (the seed's bug was a waiter going on while its aborted
//!   alarm's message was still in flight);
//! * when cancel returns, no firer is inside its post (`in_flight`), and the
//!   object's memory the firer wrote is ordered before the owner's next
//!   write to it (a loom `UnsafeCell`: a missing happens-before is a
//!   reported causality violation);
//! * re-arming in place (`rearm`): a firing never precedes the deadline of
//!   the generation it fires; the worker puts a moved arming back at most
//!   once, under the record lock, so while armed there is exactly one timer
//!   entry and a cancel always takes out the live one (no entry outlives
//!   the cancel);
//! * a stale firing (an earlier generation) never fires a re-armed alarm,
//!   and the queue the owner cleared before re-arming never gets an event of
//!   the earlier arming; a canceller parked on a firing is always woken (a
//!   lost wake-up is a deadlock loom reports).
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2
//! cargo test -p percore-evq --release --test loom_alarm` (ci/loom.sh).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicBool;
use loom::sync::{Arc, Mutex};
use loom::thread;
use percore_evq::__loom::{AlarmState, Cancel, Fire, Park};
use std::sync::atomic::Ordering::SeqCst;

/// The canceller parks as a loom thread.
struct Parker(thread::Thread);

impl Park for Parker {
    fn current() -> Self {
        Parker(thread::current())
    }

    fn park() {
        thread::park();
    }

    fn unpark(self) {
        self.0.unpark();
    }
}

/// An alarm object of the model: the state machine, the alarm's own queue
/// (the generations posted), and what the firer touches while posting.
struct Model {
    state: AlarmState<u64, Parker>,
    queue: Mutex<Vec<u64>>,
    in_flight: AtomicBool,
    memory: UnsafeCell<u64>,
}

impl Model {
    fn new() -> Model {
        Model {
            state: AlarmState::new(),
            queue: Mutex::new(Vec::new()),
            in_flight: AtomicBool::new(false),
            memory: UnsafeCell::new(0),
        }
    }

    /// Owner: arm generation `gen`, its timer entry's key being `gen`.
    fn arm(&self, gen: u64) {
        self.state.arm(gen, 0, || (gen, ()));
    }

    /// The firer's post: the event of generation `gen`.
    fn post(&self, gen: u64) {
        assert!(!self.in_flight.swap(true, SeqCst), "two firers at once");
        // SAFETY: loom checks this access against the owner's.
        self.memory.with_mut(|p| unsafe { *p += 1 });
        self.queue.lock().unwrap().push(gen);
        self.in_flight.store(false, SeqCst);
    }

    /// Worker: the timer entry of `gen` (key `gen`) expired.
    fn fire(&self, gen: u64) -> bool {
        let r = self.state.fire(gen, &gen, |_| true, |_, _| unreachable!("never moved"), |g| self.post(g));
        r == Fire::Fired
    }

    /// Owner: cancel `gen` and check what cancel promises, right when it
    /// returns; then reuse the object's memory. Returns whether it stopped
    /// the alarm before firing.
    fn cancel(&self, gen: u64) -> bool {
        let c = self.state.cancel(gen);
        assert!(!self.in_flight.load(SeqCst), "cancel returned during a firing");
        // SAFETY: loom reports this write if it is not ordered after the
        // firer's (the object being reused while its firing is in flight).
        self.memory.with_mut(|p| unsafe { *p = 0 });
        let q = self.queue.lock().unwrap().clone();
        match c {
            Cancel::Stopped(key) => {
                assert_eq!(key, Some(gen), "the key of this arming's timer entry");
                assert!(!q.contains(&gen), "stopped, yet posted");
                true
            }
            Cancel::Fired { .. } => {
                assert_eq!(q.iter().filter(|&&g| g == gen).count(), 1, "fired, yet not posted exactly once");
                false
            }
        }
    }
}

#[test]
fn cancel_races_fire() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        m.arm(1);
        let w = m.clone();
        let worker = thread::spawn(move || w.fire(1));
        let stopped = m.cancel(1);
        let fired = worker.join().unwrap();
        assert!(stopped != fired, "cancel returns true XOR the alarm fired");
        let posted = m.queue.lock().unwrap().len();
        assert_eq!(posted, usize::from(fired), "posted at most once, only if fired");
        assert!(!m.state.is_armed());
    });
}

#[test]
fn rearm_after_cancel_races_stale_firing() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        m.arm(1);
        let w = m.clone();
        // The worker's timer set holds the entries of both armings (the
        // first one stale once the owner re-arms).
        let worker = thread::spawn(move || (w.fire(1), w.fire(2)));
        m.cancel(1);
        // `Alarm::set`: cancel, drop a leftover event, arm the next one.
        m.queue.lock().unwrap().clear();
        m.arm(2);
        let stopped2 = m.cancel(2);
        let (_, fired2) = worker.join().unwrap();
        assert!(stopped2 != fired2, "cancel returns true XOR the alarm fired");
        let q = m.queue.lock().unwrap().clone();
        let expect: &[u64] = if fired2 { &[2] } else { &[] };
        assert_eq!(q, expect, "no event of the cancelled arming after the clear");
    });
}

#[test]
fn cancel_after_fire_completes() {
    loom::model(|| {
        let m = Model::new();
        m.arm(1);
        assert!(m.fire(1));
        assert!(!m.fire(1), "an arming fires once");
        assert_eq!(m.state.cancel(1), Cancel::Fired { waited: false });
        m.arm(2);
        assert!(m.state.is_armed());
        assert!(m.cancel(2));
        assert!(!m.fire(2), "a cancelled arming never fires");
    });
}

/// A model of the worker's timer set and of deadlines, for re-arming in
/// place (`AlarmState::rearm`, the fast path of `Alarm::set`): the entries
/// `(key, generation, deadline)` and, per generation, the deadline the owner
/// set, which a firing must not precede.
struct Timers {
    m: Model,
    entries: Mutex<(Vec<(u64, u64, u64)>, u64)>,
    deadlines: Mutex<Vec<(u64, u64)>>,
}

impl Timers {
    fn new() -> Timers {
        Timers { m: Model::new(), entries: Mutex::new((Vec::new(), 100)), deadlines: Mutex::new(Vec::new()) }
    }

    /// The timer set's insert; returns the new entry's key.
    fn insert(&self, gen: u64, when: u64) -> u64 {
        let mut e = self.entries.lock().unwrap();
        e.1 += 1;
        let key = e.1;
        e.0.push((key, gen, when));
        key
    }

    fn entries(&self) -> Vec<(u64, u64, u64)> {
        self.entries.lock().unwrap().0.clone()
    }

    fn deadline(&self, gen: u64) -> u64 {
        self.deadlines.lock().unwrap().iter().find(|d| d.0 == gen).expect("a deadline per generation").1
    }

    /// Owner: `Alarm::set`: move arming `gen` in place, or cancel and arm
    /// afresh. Returns the new generation.
    fn set(&self, gen: u64, when: u64) -> u64 {
        self.deadlines.lock().unwrap().push((gen + 1, when));
        if self.m.state.rearm(gen, when) {
            return gen + 1;
        }
        self.cancel(gen);
        self.m.queue.lock().unwrap().clear();
        self.m.state.arm(gen + 1, when, || (self.insert(gen + 1, when), ()));
        gen + 1
    }

    /// Owner: cancel `gen` and check what cancel promises (as
    /// `Model::cancel`), removing the entry a `Stopped` names.
    fn cancel(&self, gen: u64) -> bool {
        let c = self.m.state.cancel(gen);
        assert!(!self.m.in_flight.load(SeqCst), "cancel returned during a firing");
        // SAFETY: as in `Model::cancel`.
        self.m.memory.with_mut(|p| unsafe { *p = 0 });
        let q = self.m.queue.lock().unwrap().clone();
        match c {
            Cancel::Stopped(key) => {
                if let Some(k) = key {
                    // A stale key (taken out by the worker) removes nothing.
                    self.entries.lock().unwrap().0.retain(|e| e.0 != k);
                }
                assert!(!q.contains(&gen), "stopped, yet posted");
                true
            }
            Cancel::Fired { .. } => {
                assert_eq!(q.iter().filter(|&&g| g == gen).count(), 1, "fired, yet not posted exactly once");
                false
            }
        }
    }

    /// Worker: its pass at time `now` takes the entry `key` out, if still
    /// there, and fires it.
    fn expire(&self, key: u64, now: u64) -> Option<Fire> {
        let gen = {
            let mut e = self.entries.lock().unwrap();
            let i = e.0.iter().position(|e| e.0 == key)?;
            let (_, gen, when) = e.0.remove(i);
            assert!(when <= now, "the model takes out only a due entry");
            gen
        };
        Some(self.m.state.fire(
            gen,
            &key,
            |when| when <= now,
            |g, when| {
                assert!(when > now, "moved to a deadline already due");
                self.insert(g, when)
            },
            |g| {
                assert!(self.deadline(g) <= now, "fired generation {g} before its deadline");
                self.m.post(g);
            },
        ))
    }
}

/// Re-arm in place racing the firing of the old deadline: either the firing
/// wins (the owner falls back to cancel and arm) or the worker puts the
/// moved arming back for its new deadline; never both, never early, and
/// exactly one timer entry while armed.
#[test]
fn rearm_races_fire() {
    loom::model(|| {
        let t = Arc::new(Timers::new());
        t.deadlines.lock().unwrap().push((1, 10));
        t.m.state.arm(1, 10, || (t.insert(1, 10), ()));
        let k1 = t.entries()[0].0;
        let w = t.clone();
        let worker = thread::spawn(move || w.expire(k1, 10));
        let g = t.set(1, 20);
        let r = worker.join().unwrap();
        assert_eq!(g, 2);
        assert!(t.m.state.is_armed(), "not due yet: still armed");
        let e = t.entries();
        assert_eq!(e.len(), 1, "one live entry: {e:?}, worker {r:?}");
        assert!(e[0].2 >= 10);
        let q = t.m.queue.lock().unwrap().clone();
        assert!(!q.contains(&2), "generation 2 fired early");
        assert!(t.cancel(2));
        assert!(t.entries().is_empty(), "cancel left an entry");
    });
}

/// Two moves then a cancel, racing the worker's pass between the deadlines:
/// it may fire the first move (due), retry after the second, or put the
/// arming back; the cancel must always take out the live entry.
#[test]
fn rearm_then_cancel_races_reinsert() {
    loom::model(|| {
        let t = Arc::new(Timers::new());
        t.deadlines.lock().unwrap().push((1, 10));
        t.m.state.arm(1, 10, || (t.insert(1, 10), ()));
        let k1 = t.entries()[0].0;
        let w = t.clone();
        let worker = thread::spawn(move || w.expire(k1, 25));
        let g = t.set(1, 20);
        let g = t.set(g, 30);
        let stopped = t.cancel(g);
        let r = worker.join().unwrap();
        assert!(t.entries().is_empty(), "an entry outlived the cancel: {:?}, worker {r:?}", t.entries());
        assert!(!t.m.state.is_armed());
        if stopped {
            assert!(!t.m.queue.lock().unwrap().contains(&g));
        }
    });
}

/// The moved arming is due when the worker takes the old entry: it fires
/// the current generation, racing a cancel.
#[test]
fn moved_and_due_races_cancel() {
    loom::model(|| {
        let t = Arc::new(Timers::new());
        t.deadlines.lock().unwrap().push((1, 10));
        t.m.state.arm(1, 10, || (t.insert(1, 10), ()));
        let k1 = t.entries()[0].0;
        assert_eq!(t.set(1, 20), 2);
        let w = t.clone();
        let worker = thread::spawn(move || w.expire(k1, 20));
        let stopped = t.cancel(2);
        let r = worker.join().unwrap();
        assert_eq!(stopped, r != Some(Fire::Fired), "cancel returns true XOR the alarm fired");
        assert_ne!(r, Some(Fire::Moved), "due: never put back");
        assert!(t.entries().is_empty());
    });
}

/// A move to an earlier deadline cancels and arms afresh (a new entry)
/// while the worker holds the old entry of an arming moved in place: the
/// worker must tell the stale entry from the moved one (the record names
/// the fresh entry, or none), and neither put it back nor fire by it.
#[test]
fn fresh_arm_races_stale_entry() {
    loom::model(|| {
        let t = Arc::new(Timers::new());
        t.deadlines.lock().unwrap().push((1, 10));
        t.m.state.arm(1, 10, || (t.insert(1, 10), ()));
        let k1 = t.entries()[0].0;
        assert_eq!(t.set(1, 20), 2, "later: moved in place");
        let w = t.clone();
        let worker = thread::spawn(move || w.expire(k1, 12));
        assert_eq!(t.set(2, 15), 3, "earlier: cancel and arm");
        let r = worker.join().unwrap();
        assert_ne!(r, Some(Fire::Fired), "nothing was due");
        let e = t.entries();
        assert_eq!(e.len(), 1, "one live entry: {e:?}, worker {r:?}");
        assert_eq!(e[0].1, 3);
        assert!(t.cancel(3));
        assert!(t.entries().is_empty());
    });
}
