//! percore-bench's warm `pool_dispatch` loop, alone and in more detail: the
//! time from `execute` to the job's start, one clock for both ends, and on
//! which CPU each end ran.
//!
//! `cargo run --release -p percore-pool --example dispatch -- [SAMPLES] [SPIN_US]`
//! submits `SAMPLES` jobs (default 3,000) one at a time, each submitted as
//! soon as the previous one reported through an `mpsc` channel (as the
//! bench does), on a pool with the default settings or a spin of `SPIN_US`
//! microseconds (`0`: workers never spin). It prints percentiles of the
//! latency, how many samples took over 3 us, and how many ran on the
//! submitter's CPU (on a 2-CPU machine those are the slow ones: the worker
//! cannot start before the submitter gives up its CPU).

use percore_pool::ThreadPool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The CPU the calling thread runs on now (-1 if unknown).
fn cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    unsafe { libc::sched_getcpu() }
}

fn main() {
    let samples: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3000).max(1);
    let mut builder = ThreadPool::builder().name("dispatch");
    if let Some(us) = std::env::args().nth(2).and_then(|s| s.parse::<u64>().ok()) {
        builder = builder.spin(Duration::from_micros(us));
    }
    let pool = builder.build().expect("pool");
    let (tx, rx) = mpsc::channel::<(Duration, i32)>();
    // Warm up: the workers exist and have run.
    for _ in 0..200 {
        let tx = tx.clone();
        pool.execute(move || {
            let _ = tx.send((Duration::ZERO, -1));
        })
        .expect("the pool is alive");
        rx.recv().expect("a warm-up job ran");
    }
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let tx = tx.clone();
        let mine = cpu();
        let t0 = Instant::now();
        pool.execute(move || {
            let d = t0.elapsed();
            let _ = tx.send((d, cpu()));
        })
        .expect("the pool is alive");
        let (d, theirs) = rx.recv().expect("the job ran");
        lat.push((d.as_nanos() as f64 / 1000.0, mine == theirs));
    }
    let over = lat.iter().filter(|s| s.0 > 3.0).count();
    let over_same = lat.iter().filter(|s| s.0 > 3.0 && s.1).count();
    let same = lat.iter().filter(|s| s.1).count();
    let mut us: Vec<f64> = lat.iter().map(|s| s.0).collect();
    us.sort_by(f64::total_cmp);
    let pct = |q: f64| us[((us.len() as f64 * q) as usize).min(us.len() - 1)];
    println!(
        "{samples} samples: p50 {:.2} p90 {:.2} p99 {:.2} p99.5 {:.2} us; over 3 us: {over} ({over_same} on the submitter's CPU); on the submitter's CPU: {same}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.995),
    );
}
