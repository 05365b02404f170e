//! loom model of the watchdog's nap (`worker/nap.rs`): workers count
//! themselves asleep around their sleeps, and the watchdog naps (parks with
//! no timeout) once every worker has slept through a whole tick. A nap that
//! no worker ends leaves the watchdog parked forever, which loom reports as
//! a deadlock; a nap taken while a worker is awake is caught by that
//! worker's assertion.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_nap` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use percore_lwkt::__loom::Nap;

/// `sleeps` sleeps of each of `workers` workers, against a watchdog that
/// ticks `ticks` times.
fn model(workers: usize, sleeps: usize, ticks: usize) {
    loom::model(move || {
        let nap = Arc::new(Nap::new());
        let watchdog = thread::current();
        let hs: Vec<_> = (0..workers)
            .map(|_| {
                let (nap, watchdog) = (nap.clone(), watchdog.clone());
                thread::spawn(move || {
                    for _ in 0..sleeps {
                        nap.sleep_begins();
                        // (the futex wait)
                        if nap.sleep_ends() {
                            watchdog.unpark();
                        }
                        // Awake (it would run uthreads now): no nap may
                        // start until it sleeps again.
                        assert!(!nap.napping(), "a nap began while a worker was awake");
                    }
                })
            })
            .collect();
        let mut last = None;
        let mut napped = 0;
        for _ in 0..ticks {
            let word = nap.snapshot();
            if last.replace(word).is_some_and(|w| nap.try_nap(w, workers)) {
                napped += 1;
                while nap.napping() {
                    thread::park();
                }
                last = None;
            }
        }
        for h in hs {
            h.join().unwrap();
        }
        assert!(!nap.napping(), "the nap outlived every worker's sleep");
        assert!(napped <= ticks / 2);
    });
}

#[test]
fn one_worker_one_sleep() {
    model(1, 1, 2);
}

#[test]
fn one_worker_sleeping_twice_between_ticks() {
    // The wake count tells a worker that woke and slept again between two
    // ticks from one that slept through.
    model(1, 2, 3);
}

#[test]
fn two_workers() {
    model(2, 1, 2);
}
