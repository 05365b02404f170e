//! Issue 13: `Job::stats`, `Job::status` and `Job::take_panic` took the
//! job's lock, so calling one while a `JobLock` of the same job was alive
//! (one `println!("{job:?}")` inside a locked section) deadlocked.
//!
//! Scenario: with a `JobLock` held, call all three (and `Debug`) on the same
//! thread, for an idle job, a scheduled-then-run job and one whose function
//! panicked. Before the fix the first call never returned (the watchdog
//! fired); they now read lock-free snapshots.
use percore_pool::{Job, JobStatus, ThreadPool, PRI_NONE};
use std::sync::mpsc;
use std::time::Duration;

fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(60)).expect("deadlocked: a Job accessor waited for its own JobLock")
}

#[test]
fn accessors_while_locked() {
    within(|| {
        let pool = ThreadPool::get(PRI_NONE).unwrap();
        let job = Job::new("reentry", 0u32, |run| {
            let mut g = run.lock();
            *g += 1;
            if *g == 2 {
                panic!("second run");
            }
            g.done()
        });
        {
            let g = job.lock();
            assert_eq!(job.status(), JobStatus::Idle);
            assert_eq!(job.stats().runs, 0);
            assert!(job.take_panic().is_none());
            let _ = format!("{job:?}");
            drop(g);
        }
        for want_panics in [0, 1] {
            assert!(job.lock().schedule(&pool));
            job.wait_idle_timeout(Duration::from_secs(30)).unwrap();
            let g = job.lock();
            assert_eq!(job.status(), JobStatus::Idle);
            assert_eq!(job.stats().panics, want_panics);
            assert_eq!(job.take_panic().is_some(), want_panics == 1);
            drop(g);
        }
        assert_eq!(job.stats().runs, 2);
    });
}
