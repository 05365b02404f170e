//! Loom model of the job state machine: schedule, the hand-off to a worker
//! (and the overseer's promotion of delayed entries), run, done, re-arm,
//! cancel and destroy, against the real `job.rs` and `core.rs` code. The
//! test plays the worker (through the workers' own `take_work` path) and
//! the overseer itself, through the hidden
//! `__loom::Model` (a pool core without OS threads). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p percore-pool --release --test loom_pool`
//! (see `ci/loom.sh`).

#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use percore_pool::__loom::Model;
use percore_pool::{Job, JobStatus};
use std::sync::Arc;
use std::time::Duration;

/// A job counting its runs in its data and in `runs` (outside its lock).
fn counter(runs: Arc<AtomicUsize>, rearms: usize) -> Job<usize> {
    Job::new("loom", 0usize, move |run| {
        runs.fetch_add(1, Ordering::SeqCst);
        let mut g = run.lock();
        *g += 1;
        if *g <= rearms {
            g.rearm()
        } else {
            g.done()
        }
    })
}

/// Run every queued entry (the "worker" finishing up after the threads).
fn quiesce(m: &Model) {
    m.overseer_step();
    while m.worker_step() {}
    assert_eq!(m.pending(), 0, "an entry was leaked");
}

#[test]
fn schedule_against_cancel_async_runs_exactly_once_or_never() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let job = Arc::new(counter(runs.clone(), 0));
        assert!(m.pool().schedule(&job));

        let (m2, j2) = (m.clone(), job.clone());
        let worker = thread::spawn(move || {
            m2.worker_step();
        });
        // Cancel under the lock, knowing whether it was still pending.
        let removed = {
            let mut g = job.lock();
            let pending = g.status() == JobStatus::Scheduled;
            let ok = g.cancel_async();
            assert_eq!(ok, pending || g.status() == JobStatus::Idle);
            pending && ok
        };
        worker.join().unwrap();
        quiesce(&m);
        let n = runs.load(Ordering::SeqCst);
        assert_eq!(n + usize::from(removed), 1, "runs {n}, removed {removed}");
        assert_eq!(j2.status(), JobStatus::Idle);
    });
}

#[test]
fn rescheduling_after_cancel_never_runs_a_stale_entry() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let job = Arc::new(counter(runs.clone(), 0));
        assert!(m.pool().schedule(&job));

        let m2 = m.clone();
        let worker = thread::spawn(move || {
            // Two worker steps: the stale entry and the fresh one.
            m2.worker_step();
            m2.worker_step();
        });
        // Cancel and schedule again: two tickets, at most one live.
        let (removed, again) = {
            let mut g = job.lock();
            let pending = g.status() == JobStatus::Scheduled;
            let removed = g.cancel_async() && pending;
            let again = g.schedule(m.pool());
            (removed, again)
        };
        worker.join().unwrap();
        quiesce(&m);
        let expected = 1 - usize::from(removed) + usize::from(again);
        assert_eq!(runs.load(Ordering::SeqCst), expected);
    });
}

#[test]
fn cancel_waits_for_done_and_stops_a_rearm() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let runs = Arc::new(AtomicUsize::new(0));
        // Re-arms once: would run twice if nobody cancelled.
        let job = Arc::new(counter(runs.clone(), 1));
        assert!(m.pool().schedule(&job));

        let m2 = m.clone();
        let worker = thread::spawn(move || {
            m2.worker_step();
            m2.worker_step();
        });
        job.cancel().unwrap();
        // After cancel returns nothing is pending or running.
        assert_eq!(job.status(), JobStatus::Idle);
        let at_cancel = runs.load(Ordering::SeqCst);
        worker.join().unwrap();
        quiesce(&m);
        assert_eq!(runs.load(Ordering::SeqCst), at_cancel, "ran after cancel returned");
    });
}

#[test]
fn delayed_promotion_against_cancel() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let job = Arc::new(counter(runs.clone(), 0));
        assert!(m.pool().schedule_after(&job, Duration::from_secs(1)));

        let m2 = m.clone();
        let overseer = thread::spawn(move || {
            m2.overseer_step(); // the overseer's hand-off to the queue
            m2.worker_step();
        });
        let removed = {
            let mut g = job.lock();
            let pending = matches!(g.status(), JobStatus::Delayed | JobStatus::Scheduled);
            g.cancel_async() && pending
        };
        overseer.join().unwrap();
        quiesce(&m);
        assert_eq!(runs.load(Ordering::SeqCst) + usize::from(removed), 1);
    });
}

#[test]
fn nothing_runs_after_destroy() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let destroyed = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicUsize::new(0));
        let (d2, l2) = (destroyed.clone(), late.clone());
        let job = Job::new("doomed", (), move |run| {
            if d2.load(Ordering::SeqCst) {
                l2.fetch_add(1, Ordering::SeqCst);
            }
            run.lock().rearm()
        });
        assert!(m.pool().schedule(&job));

        let m2 = m.clone();
        let worker = thread::spawn(move || {
            m2.worker_step();
            m2.worker_step();
        });
        drop(job); // cancel + wait for the running call + wait for refs
        destroyed.store(true, Ordering::SeqCst);
        worker.join().unwrap();
        quiesce(&m);
        assert_eq!(late.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn shutdown_refuses_a_rearm_and_tells_the_owner() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let job = Arc::new(counter(runs.clone(), 1));
        assert!(m.pool().schedule(&job));
        let m2 = m.clone();
        let worker = thread::spawn(move || {
            m2.worker_step();
        });
        m.begin_shutdown();
        worker.join().unwrap();
        quiesce(&m);
        let s = job.stats();
        // Either the re-arm got in before the pool began dying (and ran), or
        // it was refused and counted.
        assert_eq!(s.runs as usize + s.shutdown_cancelled as usize, 2);
    });
}

/// `execute` against the pool beginning to die, with a worker running:
/// the closure is either accepted and then runs exactly once (queued work
/// runs during shutdown), or refused with `Cancelled` and never runs; its
/// captures are dropped exactly once either way, and `pending` settles.
#[test]
fn execute_against_shutdown_runs_once_or_is_refused() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (m2, r2) = (m.clone(), runs.clone());
        let producer = thread::spawn(move || {
            let r = r2.clone();
            m2.pool()
                .execute(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .is_ok()
        });
        let m3 = m.clone();
        let worker = thread::spawn(move || {
            m3.worker_step();
        });
        m.begin_shutdown();
        let accepted = producer.join().unwrap();
        worker.join().unwrap();
        quiesce(&m);
        assert_eq!(runs.load(Ordering::SeqCst), usize::from(accepted));
        // `r2` was moved into the producer and `r` into the closure: both
        // are gone, run or refused.
        assert_eq!(Arc::strong_count(&runs), 1, "a closure's captures leaked");
    });
}

/// An executed closure and a job share the queue while a worker pops and
/// another thread cancels the job: the closure runs exactly once whatever
/// the interleaving, and the job runs once or is removed.
#[test]
fn execute_beside_a_cancelled_job() {
    loom::model(|| {
        let m = Arc::new(Model::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let job = Arc::new(counter(runs.clone(), 0));
        assert!(m.pool().schedule(&job));
        let c = calls.clone();
        m.pool()
            .execute(move || {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let m2 = m.clone();
        let worker = thread::spawn(move || {
            m2.worker_step();
        });
        // Cancel under the lock, knowing whether it was still pending (a
        // cancel of an idle job succeeds too, with nothing to remove).
        let removed = {
            let mut g = job.lock();
            let pending = g.status() == JobStatus::Scheduled;
            g.cancel_async() && pending
        };
        worker.join().unwrap();
        quiesce(&m);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(runs.load(Ordering::SeqCst) + usize::from(removed), 1);
    });
}
