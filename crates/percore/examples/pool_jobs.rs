//! Thread-pool jobs after NetBSD's `threadpool(9)` (`percore::pool`):
//! a job that re-arms itself on a period, a delayed job, a delayed job
//! cancelled before its time, and one-shot closures, on one private pool.
//!
//! A job's function ends each run by saying `done` (or `rearm`, or
//! `rearm_after`) under the job's own lock, so scheduling it again can never
//! be lost in a race with the run ending. Bounded: the periodic job stops
//! itself after `TICKS` runs.
//!
//! ```text
//! cargo run --release -p percore --example pool_jobs
//! ```

use percore::pool::{Job, JobStatus, ThreadPool};
use std::time::{Duration, Instant};

const TICKS: u32 = 5;
const PERIOD: Duration = Duration::from_millis(10);
const DELAY: Duration = Duration::from_millis(30);
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), percore::pool::Error> {
    let pool = ThreadPool::builder().name("example").build()?;
    let t0 = Instant::now();

    // A periodic job: its data counts the runs; it re-arms until TICKS.
    let ticker = Job::new("ticker", 0u32, |run| {
        let mut ticks = run.lock();
        *ticks += 1;
        if *ticks < TICKS {
            ticks.rearm_after(PERIOD)
        } else {
            ticks.done()
        }
    });

    // A delayed job: records when it ran.
    let delayed = Job::new("delayed", None::<Duration>, move |run| {
        let mut ran = run.lock();
        *ran = Some(t0.elapsed());
        ran.done()
    });

    // A delayed job cancelled before its time: must never run.
    let never = Job::new("never", false, |run| {
        let mut ran = run.lock();
        *ran = true;
        ran.done()
    });

    assert!(pool.schedule(&ticker));
    assert!(pool.schedule_after(&delayed, DELAY));
    assert!(pool.schedule_after(&never, Duration::from_secs(3600)));
    assert_eq!(never.status(), JobStatus::Delayed);
    assert!(never.cancel_async(), "not started, so the cancel succeeds");

    // One-shot closures meanwhile, with join handles.
    let squares: Vec<_> = (0..8u64).map(|i| pool.spawn(move || i * i)).collect();
    let sum: u64 = squares.into_iter().map(|h| h.join()).sum::<Result<u64, _>>()?;
    assert_eq!(sum, 140);

    delayed.wait_idle_timeout(PATIENCE)?;
    // The ticker re-arms itself: wait until it stops by itself.
    let deadline = Instant::now() + PATIENCE;
    while *ticker.lock() < TICKS || ticker.status() != JobStatus::Idle {
        assert!(Instant::now() < deadline, "the ticker did not finish");
        std::thread::sleep(PERIOD); // a plain OS thread: sleeping is fine here
    }

    let ran_at = delayed.lock().expect("the delayed job ran");
    assert!(ran_at >= DELAY, "ran after {ran_at:?}, before its {DELAY:?} delay");
    assert!(!*never.lock(), "the cancelled job ran");
    let ticks = *ticker.lock();
    let elapsed = t0.elapsed();
    assert!(elapsed >= PERIOD * (TICKS - 1), "{TICKS} ticks {PERIOD:?} apart took only {elapsed:?}");
    println!(
        "pool_jobs: ticker ran {ticks} times ({:?}), delayed ran at {ran_at:.1?}, the cancelled job never ran, in {elapsed:.1?}",
        ticker.stats()
    );
    pool.drain_timeout(PATIENCE)?;
    let stats: Vec<_> = percore::stats().into_iter().filter(|(k, _)| k.starts_with("pool.example.")).collect();
    for (k, v) in stats {
        println!("  {k} = {v}");
    }
    Ok(())
}
