//! Issue 16, item 3: panics in user destructors must never cost a worker.
//!
//! Scenario: on a `max_threads(1)` pool, a detached `spawn` returns a value
//! whose destructor panics. The result used to be dropped outside
//! `catch_unwind` (in the cell's release on the worker), so the panic killed
//! the only worker: the pool's `panics` counter stayed 0, the next spawn
//! never ran, and dropping the pool hung waiting for the dead thread. The
//! same holds for a closure's captures dropped when it is cancelled at
//! shutdown, and for a job's data dropped by the job's own run.
//!
//! Every scenario runs on a helper thread with a deadline, so a regression
//! fails instead of hanging.

mod common;

use common::{wait_for, Gate, LONG};
use percore_pool::{Job, JoinError, ThreadPool};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor panics (on purpose)");
    }
}

/// Run `f` on a helper thread; fail if it does not finish within `LONG`.
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(LONG) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => t.join().unwrap(), // re-raise its panic
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung"),
    }
}

#[test]
fn a_detached_result_with_a_panicking_destructor_costs_no_worker() {
    bounded("detached result", || {
        let pool = ThreadPool::builder().name("issue16-detached").max_threads(1).build().unwrap();
        // Detached: whichever of the handle and the worker is last drops the
        // result. NOTE: when the closure finishes before the handle is
        // dropped, the handle is last and the panic propagates from its
        // drop on this thread, as documented on `JoinHandle`'s `Drop`; the
        // test used to assume the worker always came last (a flake under
        // load).
        let h = pool.spawn(|| PanicOnDrop);
        let dropped_here = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h))).is_err();
        // The single worker must still be there to run this.
        assert_eq!(pool.spawn(|| 7).join().unwrap(), 7);
        if !dropped_here {
            assert!(pool.stats().panics >= 1, "the destructor's panic is counted");
        }
        drop(pool); // must not hang on a dead worker
    });
}

#[test]
fn a_joined_panic_and_a_result_dropped_after_the_join_still_work() {
    bounded("joined", || {
        let pool = ThreadPool::builder().name("issue16-joined").max_threads(1).build().unwrap();
        let h = pool.spawn(|| PanicOnDrop);
        assert!(h.wait_timeout(LONG));
        // The last of the handle and the worker drops the unjoined result:
        // on this thread the panic is ours (after the cell was recycled), on
        // the worker it is caught and counted.
        let ours = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(h))).is_err();
        wait_for("the destructor's panic", || ours || pool.stats().panics >= 1);
        assert_eq!(pool.spawn(|| 8).join().unwrap(), 8);
        drop(pool);
    });
}

#[test]
fn captures_with_panicking_destructors_dropped_by_cancel_leave_a_cancelled_handle() {
    bounded("cancelled captures", || {
        let pool = ThreadPool::builder().name("issue16-cancel").max_threads(1).build().unwrap();
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        let blocker = pool.spawn(move || g.wait());
        let p = PanicOnDrop;
        let queued = pool.spawn(move || drop(p));
        // Cancelled on this thread: the capture's panic is ours, and the
        // handle still says Cancelled instead of hanging.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queued.cancel()));
        assert!(r.is_err());
        assert!(matches!(queued.join(), Err(JoinError::Cancelled)));
        gate.open();
        blocker.join().unwrap();
        assert_eq!(pool.spawn(|| 9).join().unwrap(), 9);
        drop(pool);
    });
}

#[test]
fn a_job_whose_data_panics_when_its_own_run_drops_it_costs_no_worker() {
    bounded("job data", || {
        let pool = ThreadPool::builder().name("issue16-job").max_threads(1).build().unwrap();
        type Slot = Arc<Mutex<Option<Job<Option<PanicOnDrop>>>>>;
        let slot: Slot = Arc::default();
        let s = slot.clone();
        let job = Job::new("self-dropper", Some(PanicOnDrop), move |run| {
            // The job drops its own last handle while running: its data
            // (with a panicking destructor) goes when the run returns.
            let me = loop {
                if let Some(j) = s.lock().unwrap().take() {
                    break j;
                }
                std::thread::yield_now();
            };
            let done = run.lock().done();
            drop(me);
            done
        });
        assert!(pool.schedule(&job));
        *slot.lock().unwrap() = Some(job);
        assert_eq!(pool.spawn(|| 10).join().unwrap(), 10);
        assert!(pool.stats().panics >= 1, "the destructor's panic is counted");
        drop(pool);
    });
}
