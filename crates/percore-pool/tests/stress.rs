//! Bounded stress: many threads schedule, delay, cancel and re-arm shared
//! jobs. Counters kept under each job's lock prove that every schedule that
//! was not cancelled ran exactly once after it, and that nothing ran after
//! the job was destroyed. Deterministic pseudo-random operations; no timing
//! assertions; sized to finish in a few seconds on 2 cores.

mod common;

use common::LONG;
use percore_pool::{Job, JobStatus, ThreadPool};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const JOBS: usize = 8;
const THREADS: usize = 4;
const OPS: usize = if cfg!(debug_assertions) { 20_000 } else { 100_000 };

/// Per-job bookkeeping, all under the job's lock.
#[derive(Default)]
struct Book {
    /// Schedules (ours or re-arms) not yet consumed by a run: 0 or 1.
    outstanding: u64,
    /// Successful schedules by the stress threads.
    scheduled: u64,
    /// Re-arms by the job itself.
    rearmed: u64,
    /// Pending schedules removed by cancel.
    removed: u64,
    /// Runs.
    runs: u64,
    /// Re-arms the job may still do.
    rearm_budget: u32,
    /// A run started with no outstanding schedule, or two were pending.
    violations: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn make_job(i: usize, destroyed: Arc<AtomicBool>, after_destroy: Arc<AtomicU64>) -> Job<Book> {
    Job::new(format!("stress{i}"), Book::default(), move |run| {
        if destroyed.load(Ordering::SeqCst) {
            after_destroy.fetch_add(1, Ordering::SeqCst);
        }
        let mut g = run.lock();
        if g.outstanding != 1 {
            g.violations += 1;
        }
        g.outstanding = g.outstanding.saturating_sub(1);
        g.runs += 1;
        // Work without the lock for a moment, then decide under it.
        let run = g.unlock();
        std::hint::black_box(0..64).for_each(drop);
        let mut g = run.lock();
        if g.rearm_budget > 0 {
            g.rearm_budget -= 1;
            g.outstanding += 1;
            g.rearmed += 1;
            g.rearm()
        } else {
            g.done()
        }
    })
}

fn hammer(pool: &ThreadPool, jobs: &[Job<Book>], seed: u64) {
    let mut rng = Rng(seed);
    for _ in 0..OPS {
        let job = &jobs[rng.next() as usize % jobs.len()];
        let mut g = job.lock();
        match rng.next() % 16 {
            0..=7 => {
                if g.schedule(pool) {
                    g.scheduled += 1;
                    g.outstanding += 1;
                }
            }
            8 | 9 => {
                if g.schedule_after(pool, Duration::from_micros(rng.next() % 200)) {
                    g.scheduled += 1;
                    g.outstanding += 1;
                }
            }
            10 | 11 => {
                let pending = matches!(g.status(), JobStatus::Scheduled | JobStatus::Delayed);
                let ok = g.cancel_async();
                if pending {
                    assert!(ok, "a pending job must be cancellable");
                    g.removed += 1;
                    g.outstanding -= 1;
                }
            }
            12 => {
                g.cancel_timeout(LONG).expect("cancel waits for a run, boundedly");
                // Whatever was pending when cancel returned was removed by it.
                let left = g.outstanding;
                g.removed += left;
                g.outstanding = 0;
                assert_eq!(g.status(), JobStatus::Idle);
            }
            13 | 14 => g.rearm_budget = (rng.next() % 4) as u32,
            _ => {
                drop(g);
                std::thread::yield_now();
                continue;
            }
        }
        if g.outstanding > 1 {
            g.violations += 1;
        }
    }
}

#[test]
fn every_uncancelled_schedule_runs_exactly_once_and_nothing_after_destroy() {
    let pool = ThreadPool::builder().name("stress").idle_timeout(Duration::from_millis(5)).build().unwrap();
    let destroyed: Vec<Arc<AtomicBool>> = (0..JOBS).map(|_| Arc::default()).collect();
    let after_destroy = Arc::new(AtomicU64::new(0));
    let jobs: Vec<Job<Book>> = (0..JOBS).map(|i| make_job(i, destroyed[i].clone(), after_destroy.clone())).collect();

    // Phase 1: hammer, quiesce, and check the books exactly.
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, jobs) = (&pool, &jobs);
            s.spawn(move || hammer(pool, jobs, 0x9e37_79b9_7f4a_7c15 ^ t as u64));
        }
    });
    pool.drain_timeout(LONG).unwrap();
    let mut total_runs = 0;
    for job in &jobs {
        let stats = job.stats();
        let b = job.lock();
        assert_eq!(b.violations, 0, "{}: a run without exactly one pending schedule", job.name());
        assert_eq!(b.outstanding, 0, "{}: a schedule never ran", job.name());
        assert_eq!(b.runs, b.scheduled + b.rearmed - b.removed, "{}", job.name());
        assert_eq!(b.runs, stats.runs, "{}", job.name());
        assert_eq!(stats.panics, 0);
        total_runs += b.runs;
    }
    let s = pool.stats();
    eprintln!("stress: {total_runs} runs; pool {s:?}");
    assert!(total_runs > 0);
    assert_eq!(pool.stats().panics, 0);

    // Phase 2: hammer again and destroy the jobs while work is in flight.
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, jobs) = (&pool, &jobs);
            s.spawn(move || hammer(pool, jobs, 0x51_7cc1_b727_220a ^ t as u64));
        }
    });
    for (job, flag) in jobs.into_iter().zip(&destroyed) {
        drop(job); // cancels, waits for a running call and for references
        flag.store(true, Ordering::SeqCst);
    }
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(after_destroy.load(Ordering::SeqCst), 0, "a job ran after it was destroyed");
    assert_eq!(pool.stats().panics, 0);
}

#[test]
fn many_spawners_many_handles() {
    let pool = ThreadPool::builder().name("stress-spawn").build().unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let (pool, sum) = (&pool, &sum);
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                let mut handles = Vec::new();
                for i in 0..(OPS as u64) {
                    let h = pool.spawn(move || i);
                    match rng.next() % 3 {
                        0 => drop(h),
                        1 => {
                            if !h.cancel() {
                                assert_eq!(h.join().unwrap(), i);
                            }
                        }
                        _ => handles.push((i, h)),
                    }
                }
                for (i, h) in handles {
                    assert_eq!(h.join().unwrap(), i);
                    sum.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    pool.drain_timeout(LONG).unwrap();
    assert!(sum.load(Ordering::Relaxed) > 0);
}

/// A capture that counts its drops, padded to `N` words.
struct Capture<const N: usize> {
    drops: Arc<AtomicU64>,
    pad: [u64; N],
}

impl<const N: usize> Drop for Capture<N> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A 64-byte-aligned capture: always boxed by the cell.
#[repr(align(64))]
struct Aligned(u64);

#[test]
fn closures_inline_or_boxed_run_once_or_are_dropped_once() {
    // Closures of 1, 4 (the inline limit: a 1-word Arc plus 3 words) and 5
    // words, and over-aligned ones, spawned from many threads, half of them
    // raced by a cancel: each one either ran exactly once (its value comes
    // back) or was cancelled, and every capture is dropped exactly once.
    let pool = ThreadPool::builder().name("stress-thunk").build().unwrap();
    let drops = Arc::new(AtomicU64::new(0));
    let (ran, cancelled) = (AtomicU64::new(0), AtomicU64::new(0));
    let ops = OPS as u64 / 2;
    std::thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let (pool, drops, ran, cancelled) = (&pool, &drops, &ran, &cancelled);
            s.spawn(move || {
                let mut rng = Rng(t + 17);
                for i in 0..ops {
                    let h = match i % 4 {
                        0 => {
                            let c = Capture::<0> { drops: drops.clone(), pad: [] };
                            pool.spawn(move || i + c.pad.len() as u64)
                        }
                        1 => {
                            let c = Capture::<3> { drops: drops.clone(), pad: [i; 3] };
                            pool.spawn(move || c.pad[2])
                        }
                        2 => {
                            let c = Capture::<4> { drops: drops.clone(), pad: [i; 4] };
                            pool.spawn(move || c.pad[3])
                        }
                        _ => {
                            let (c, a) = (Capture::<0> { drops: drops.clone(), pad: [] }, Aligned(i));
                            pool.spawn(move || a.0 + c.pad.len() as u64)
                        }
                    };
                    if rng.next().is_multiple_of(2) && h.cancel() {
                        cancelled.fetch_add(1, Ordering::Relaxed);
                        assert!(h.join().unwrap_err().is_cancelled());
                    } else {
                        assert_eq!(h.join().unwrap(), i);
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    pool.drain_timeout(LONG).unwrap();
    let total = THREADS as u64 * ops;
    assert_eq!(ran.load(Ordering::Relaxed) + cancelled.load(Ordering::Relaxed), total);
    assert_eq!(drops.load(Ordering::Relaxed), total, "every capture dropped exactly once");
    assert_eq!(pool.stats().panics, 0);
}
