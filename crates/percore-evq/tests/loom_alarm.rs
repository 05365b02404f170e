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
use percore_evq::__loom::{AlarmState, Cancel, Park};
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
        self.state.arm(gen, || (gen, ()));
    }

    /// Worker: the timer entry of `gen` expired.
    fn fire(&self, gen: u64) -> bool {
        self.state.fire(gen, || {
            assert!(!self.in_flight.swap(true, SeqCst), "two firers at once");
            // SAFETY: loom checks this access against the owner's.
            self.memory.with_mut(|p| unsafe { *p += 1 });
            self.queue.lock().unwrap().push(gen);
            self.in_flight.store(false, SeqCst);
        })
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
