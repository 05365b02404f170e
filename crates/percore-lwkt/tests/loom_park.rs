//! loom model of the park word (`uthread/park.rs`): a uthread parks in a
//! loop on its condition while an unparker (and, in the second model, an
//! expiring timer) wakes it. Checked in every interleaving:
//!
//! * no lost wake-up: the uthread always sees the unparker's condition and
//!   returns (a lost wake-up leaves it blocked for ever, which loom reports
//!   as a deadlock);
//! * no double resume: a uthread is scheduled at most once per park, and
//!   never while it is not parked (the `schedule` assertion);
//! * the waker's write before `unpark` is visible to the uthread after it
//!   (the condition is a relaxed flag: only the park word orders it).
//!
//! The scheduler's switch-out is modelled by a loom condition variable the
//! parked uthread waits on until a waker "schedules" it.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_park` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::atomic::AtomicBool;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use percore_lwkt::__loom::ParkWord;
use std::sync::atomic::Ordering::Relaxed;

struct U {
    park: ParkWord,
    /// The condition the uthread waits for; relaxed, so that only the park
    /// word's orderings can make it visible.
    done: AtomicBool,
    /// Schedules not yet consumed by a resume: 0 or 1.
    queued: Mutex<usize>,
    cv: Condvar,
}

impl U {
    fn new() -> Arc<U> {
        Arc::new(U { park: ParkWord::new(), done: AtomicBool::new(false), queued: Mutex::new(0), cv: Condvar::new() })
    }

    /// The owner puts it on its run queue (`worker::ipi::schedule`).
    fn schedule(&self) {
        let mut q = self.queued.lock().unwrap();
        assert_eq!(*q, 0, "scheduled twice for one park: a double resume");
        *q += 1;
        self.cv.notify_one();
    }

    /// A waker or a timer (`worker::ipi::unpark`).
    fn unpark(&self) {
        if self.park.unpark() {
            self.schedule();
        }
    }

    /// The uthread: `park_current` in its caller's condition loop.
    fn park_until_done(&self) {
        while !self.done.load(Relaxed) {
            if self.park.take_notified() {
                continue;
            }
            if !self.park.prepare_park() {
                continue;
            }
            // Switched out, blocked: resumed only by a schedule.
            let mut q = self.queued.lock().unwrap();
            while *q == 0 {
                q = self.cv.wait(q).unwrap();
            }
            *q -= 1;
            drop(q);
            self.park.finish_park();
        }
    }

    fn assert_no_stray_schedule(&self) {
        assert_eq!(*self.queued.lock().unwrap(), 0, "scheduled while it was not parked");
    }
}

#[test]
fn unpark_versus_park_loses_no_wakeup() {
    loom::model(|| {
        let u = U::new();
        let w = u.clone();
        let waker = thread::spawn(move || {
            w.done.store(true, Relaxed);
            w.unpark();
        });
        u.park_until_done();
        waker.join().unwrap();
        u.assert_no_stray_schedule();
    });
}

#[test]
fn timeout_versus_unpark_resumes_once() {
    loom::model(|| {
        let u = U::new();
        let (w, t) = (u.clone(), u.clone());
        let waker = thread::spawn(move || {
            w.done.store(true, Relaxed);
            w.unpark();
        });
        // The uthread's timer expires at any moment: `fire_timers` unparks.
        let timer = thread::spawn(move || t.unpark());
        u.park_until_done();
        waker.join().unwrap();
        timer.join().unwrap();
        u.assert_no_stray_schedule();
    });
}
