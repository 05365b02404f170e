//! `Job`: schedule, cancel, done, re-arm, delays, panics, names, destroy.

mod common;

use common::{wait_for, Gate, LONG};
use percore_pool::{Error, Job, JobStatus, ThreadPool};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn one_worker(name: &str) -> ThreadPool {
    ThreadPool::builder().name(name).max_threads(1).build().unwrap()
}

/// A job that blocks the pool's only worker until the gate opens.
fn blocker(gate: &Arc<Gate>) -> Job<()> {
    let gate = gate.clone();
    Job::new("blocker", (), move |run| {
        gate.wait();
        run.lock().done()
    })
}

fn counting(name: &str) -> Job<u64> {
    Job::new(name, 0u64, |run| {
        let mut g = run.lock();
        *g += 1;
        g.done()
    })
}

#[test]
fn a_scheduled_job_runs_once() {
    let pool = ThreadPool::builder().name("job-once").build().unwrap();
    let job = counting("once");
    assert!(pool.schedule(&job));
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*job.lock(), 1);
    assert_eq!(job.stats().runs, 1);
    assert_eq!(job.status(), JobStatus::Idle);
    assert_eq!(job.name(), "once");
}

#[test]
fn scheduling_a_scheduled_or_running_job_does_nothing() {
    let pool = one_worker("job-noop");
    let gate = Arc::new(Gate::default());
    let b = blocker(&gate);
    assert!(pool.schedule(&b));
    wait_for("blocker to run", || b.status() == JobStatus::Running);
    assert!(!pool.schedule(&b), "running: no-op");
    let job = counting("queued");
    assert!(pool.schedule(&job));
    assert_eq!(job.status(), JobStatus::Scheduled);
    assert!(!pool.schedule(&job), "scheduled: no-op");
    assert!(!pool.schedule_after(&job, Duration::from_millis(1)), "scheduled: no-op");
    gate.open();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*job.lock(), 1);
    assert_eq!(b.stats().runs, 1);
}

#[test]
fn cancel_async_succeeds_only_before_the_job_starts() {
    let pool = one_worker("job-cancel-async");
    let gate = Arc::new(Gate::default());
    let b = blocker(&gate);
    pool.schedule(&b);
    wait_for("blocker to run", || b.status() == JobStatus::Running);
    assert!(!b.cancel_async(), "running: too late");
    let job = counting("victim");
    assert!(job.cancel_async(), "idle: trivially not running");
    pool.schedule(&job);
    assert!(job.cancel_async(), "queued: removed");
    assert_eq!(job.status(), JobStatus::Idle);
    gate.open();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*job.lock(), 0, "a cancelled job never runs");
    assert_eq!(pool.stats().cancelled, 1);
}

#[test]
fn cancel_waits_for_a_running_job() {
    let pool = ThreadPool::builder().name("job-cancel-wait").build().unwrap();
    let gate = Arc::new(Gate::default());
    let finished = Arc::new(AtomicU64::new(0));
    let (g2, f2) = (gate.clone(), finished.clone());
    let job = Arc::new(Job::new("slow", (), move |run| {
        g2.wait();
        f2.store(1, Ordering::SeqCst);
        run.lock().done()
    }));
    pool.schedule(&job);
    wait_for("job to run", || job.status() == JobStatus::Running);
    assert!(matches!(job.cancel_timeout(Duration::from_millis(1)), Err(Error::Timeout)));
    let j = job.clone();
    let canceller = std::thread::spawn(move || j.cancel());
    gate.open();
    canceller.join().unwrap().unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 1, "cancel returned before the run said done");
    assert_eq!(job.status(), JobStatus::Idle);
}

#[test]
fn cancel_stops_a_job_that_rearms_itself() {
    let pool = ThreadPool::builder().name("job-cancel-rearm").build().unwrap();
    let job = Job::new("forever", 0u64, |run| {
        let mut g = run.lock();
        *g += 1;
        g.rearm()
    });
    pool.schedule(&job);
    wait_for("a few runs", || *job.lock() >= 3);
    job.cancel_timeout(LONG).unwrap();
    let runs = *job.lock();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*job.lock(), runs, "nothing ran after cancel returned");
}

#[test]
fn a_job_rearms_itself_race_free() {
    let pool = ThreadPool::builder().name("job-rearm").build().unwrap();
    let job = Job::new("thrice", 0u32, |run| {
        let mut g = run.lock();
        *g += 1;
        if *g < 3 {
            g.rearm()
        } else {
            g.done()
        }
    });
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*job.lock(), 3);
    assert_eq!(job.stats().runs, 3);
}

#[test]
fn work_posted_under_the_lock_is_never_lost() {
    // The NetBSD pattern: producers add work and schedule under the job lock;
    // the job drains the work and says done under the same lock.
    let pool = ThreadPool::builder().name("job-producer").build().unwrap();
    let done_items = Arc::new(AtomicU64::new(0));
    let d = done_items.clone();
    let job = Arc::new(Job::new("consumer", 0u64, move |run| {
        let mut g = run.lock();
        loop {
            let n = std::mem::take(&mut *g);
            if n == 0 {
                return g.done();
            }
            let run = g.unlock();
            d.fetch_add(n, Ordering::SeqCst);
            g = run.lock();
        }
    }));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    let mut g = job.lock();
                    *g += 1;
                    g.schedule(&pool);
                }
            });
        }
    });
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(done_items.load(Ordering::SeqCst), 4000);
}

#[test]
fn delayed_jobs_run_and_can_be_cancelled() {
    let pool = ThreadPool::builder().name("job-delay").build().unwrap();
    let soon = counting("soon");
    let late = counting("late");
    assert!(pool.schedule_after(&soon, Duration::from_millis(5)));
    assert!(pool.schedule_after(&late, Duration::from_secs(3600)));
    assert_eq!(late.status(), JobStatus::Delayed);
    assert!(!pool.schedule(&late), "delayed counts as scheduled");
    assert!(late.cancel_async());
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*soon.lock(), 1);
    assert_eq!(*late.lock(), 0);
    // Huge delays saturate instead of overflowing.
    assert!(pool.schedule_after(&late, Duration::MAX));
    late.cancel().unwrap();
}

#[test]
fn a_panicking_job_is_marked_done_and_the_worker_survives() {
    let pool = ThreadPool::builder().name("job-panic").max_threads(1).build().unwrap();
    let job = Job::new("bomb", 0u32, |run| {
        let g = run.lock();
        if *g == 0 {
            panic!("job exploded");
        }
        g.done()
    });
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(job.status(), JobStatus::Idle, "marked done by the worker");
    assert_eq!(job.stats().panics, 1);
    assert_eq!(job.take_panic().unwrap().message(), "job exploded");
    assert!(job.take_panic().is_none());
    assert_eq!(pool.stats().panics, 1);
    // The same worker runs the job again.
    *job.lock() = 1;
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(job.stats().runs, 2);
    let s = pool.stats();
    assert_eq!(s.threads_created, 1);
    assert_eq!(s.threads_exited, 0);
}

#[test]
fn a_panic_after_done_is_counted_without_a_second_done() {
    let pool = ThreadPool::builder().name("job-panic-late").build().unwrap();
    let job = Job::new("late-bomb", (), |run| {
        let d = run.lock().done();
        if std::hint::black_box(true) {
            panic!("after done");
        }
        d
    });
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(job.stats().panics, 1);
    assert_eq!(job.status(), JobStatus::Idle);
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(job.stats().runs, 2);
}

#[cfg(target_os = "linux")]
#[test]
fn the_worker_thread_is_named_after_the_job_while_it_runs() {
    fn comm() -> String {
        std::fs::read_to_string("/proc/thread-self/comm").unwrap().trim().to_string()
    }
    let pool = ThreadPool::builder().name("job-name").max_threads(1).build().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    let job = Job::new("disk-flusher-with-a-long-name", (), move |run| {
        *s.lock().unwrap() = comm();
        run.lock().done()
    });
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*seen.lock().unwrap(), "disk-flusher-wi", "cut to 15 bytes");
    let after = pool.spawn(comm).join().unwrap();
    assert_eq!(after, "poolthr/job-nam", "restored afterwards");
}

#[test]
fn a_job_cancelling_itself_is_refused_not_deadlocked() {
    let pool = ThreadPool::builder().name("job-self-cancel").build().unwrap();
    type Slot = Mutex<Option<Arc<Job<Option<Error>>>>>;
    let me: Arc<Slot> = Arc::default();
    let m = me.clone();
    let job = Arc::new(Job::new("selfish", None, move |run| {
        let this = m.lock().unwrap().take().expect("set before scheduling");
        let err = this.cancel().err();
        // Dropping the last handle from inside its own run must not hang.
        let mut g = run.lock();
        *g = err;
        drop(this);
        g.done()
    }));
    *me.lock().unwrap() = Some(job.clone());
    pool.schedule(&job);
    pool.drain_timeout(LONG).unwrap();
    assert!(matches!(*job.lock(), Some(Error::WouldDeadlock)));
}

#[test]
fn dropping_a_job_cancels_it_and_waits_for_its_run() {
    let pool = ThreadPool::builder().name("job-destroy").build().unwrap();
    let gate = Arc::new(Gate::default());
    let ran_after = Arc::new(AtomicU64::new(0));
    let destroyed = Arc::new(AtomicU64::new(0));
    let (g2, r2, d2) = (gate.clone(), ran_after.clone(), destroyed.clone());
    let job = Job::new("doomed", (), move |run| {
        g2.wait();
        if d2.load(Ordering::SeqCst) == 1 {
            r2.fetch_add(1, Ordering::SeqCst);
        }
        run.lock().rearm()
    });
    pool.schedule(&job);
    wait_for("job to run", || job.status() == JobStatus::Running);
    let dropper = std::thread::spawn(move || {
        drop(job);
        destroyed.store(1, Ordering::SeqCst);
    });
    gate.open();
    dropper.join().unwrap();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(ran_after.load(Ordering::SeqCst), 0, "nothing ran after destroy");
    // A delayed job is cancelled by its drop.
    let delayed = counting("delayed");
    pool.schedule_after(&delayed, Duration::from_secs(3600));
    drop(delayed);
    pool.drain_timeout(LONG).unwrap();
}
