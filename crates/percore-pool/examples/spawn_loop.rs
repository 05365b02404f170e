//! The `pool_throughput` loop of percore-bench, alone: for instruction
//! counts per job (`valgrind --tool=callgrind`, two job counts, the
//! difference divided by the difference of jobs) without the bench's peers.
//!
//! `cargo run --release -p percore-pool --example spawn_loop -- [JOBS] [spawn|execute]`
//! submits `JOBS` closures (default 1,000,000), each capturing one
//! `&'static`, on a 2-thread pool, waits for the last, and prints the mean
//! time per job. `spawn` (the default) detaches each `JoinHandle`;
//! `execute` uses the fire-and-forget `ThreadPool::execute`, which is what
//! percore-bench's pool rows measure.

use percore_pool::ThreadPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Shared by every job: leaked once, so that a job captures one `&'static`.
struct Finish {
    done: AtomicU64,
    jobs: u64,
    tx: std::sync::Mutex<mpsc::SyncSender<()>>,
}

fn main() {
    let jobs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000).max(1);
    let execute = match std::env::args().nth(2).as_deref() {
        None | Some("spawn") => false,
        Some("execute") => true,
        Some(other) => {
            eprintln!("spawn_loop: unknown mode {other:?} (spawn or execute)");
            std::process::exit(2);
        }
    };
    let pool = ThreadPool::builder().name("spawn-loop").max_threads(2).build().expect("pool");
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let fin: &'static Finish = Box::leak(Box::new(Finish { done: AtomicU64::new(0), jobs, tx: tx.into() }));
    let t = Instant::now();
    let job = move || {
        if fin.done.fetch_add(1, Ordering::AcqRel) + 1 == fin.jobs {
            let _ = fin.tx.lock().map(|tx| tx.send(()));
        }
    };
    for _ in 0..jobs {
        if execute {
            pool.execute(job).expect("the pool is alive");
        } else {
            drop(pool.spawn(job));
        }
    }
    let finished = rx.recv_timeout(Duration::from_secs(600)).is_ok();
    let ns = t.elapsed().as_nanos() as f64 / jobs as f64;
    let mode = if execute { "execute" } else { "spawn" };
    println!("{jobs} jobs ({mode}), {ns:.1} ns each (finished: {finished})");
}
