//! Thread pool benchmarks: percore-pool against `rayon::spawn`, `threadpool`,
//! tokio's `spawn_blocking`, `blocking::unblock` and one `std::thread` per job.
//!
//! * `pool_dispatch` (`median_us`, `p99_us`; `mode` = `warm` or `idle`): from
//!   submit to the job starting. `warm`: the next job is submitted as soon as
//!   the previous one reported; `idle`: after the pool sat idle for a while.
//! * `pool_throughput` (`ns_per_job`): tiny jobs submitted from one thread,
//!   until all ran (the last one signals).
//! * `pool_idle_cpu` (`cpu_ms`): process CPU time while a just-used pool sits
//!   idle (2 s; 0.2 s with `--quick`).
//! * `pool_trickle_cpu` (`cpu_us_per_job`): process CPU time per job when one
//!   tiny job arrives every millisecond (2 s; 0.2 s with `--quick`). Pools
//!   that spin show up here.
//!
//! Each implementation is measured on its own, and its pool is dropped
//! before the next one starts (`rayon` and `blocking` use global pools that
//! cannot be dropped; they are idle by then).

use crate::report::{Better, Report, Row};
use crate::util::process_cpu_time;
use crate::Budget;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that runs a closure on another thread, soon.
trait Submit {
    const NAME: &'static str;
    /// How many jobs the throughput run uses, relative to the others
    /// (`std-thread` creates a thread per job).
    const THROUGHPUT_DIVISOR: u64 = 1;
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F);
}

struct Percore(percore::pool::ThreadPool);
impl Submit for Percore {
    const NAME: &'static str = "percore";
    #[inline]
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F) {
        // NOTE: fire and forget, like every peer here (`rayon::spawn`,
        // `threadpool::execute`, a dropped tokio or `blocking` handle).
        // A pool with a live handle is never dying, so this cannot fail.
        self.0.execute(f).expect("a live pool refused work");
    }
}

struct Rayon;
impl Submit for Rayon {
    const NAME: &'static str = "rayon";
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F) {
        rayon::spawn(f);
    }
}

struct Threadpool(threadpool::ThreadPool);
impl Submit for Threadpool {
    const NAME: &'static str = "threadpool";
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.execute(f);
    }
}

struct Tokio(tokio::runtime::Runtime);
impl Submit for Tokio {
    const NAME: &'static str = "tokio-blocking";
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F) {
        drop(self.0.spawn_blocking(f));
    }
}

struct Blocking;
impl Submit for Blocking {
    const NAME: &'static str = "blocking";
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F) {
        blocking::unblock(f).detach();
    }
}

struct StdThread;
impl Submit for StdThread {
    const NAME: &'static str = "std-thread";
    const THROUGHPUT_DIVISOR: u64 = 100;
    fn submit<F: FnOnce() + Send + 'static>(&self, f: F) {
        drop(std::thread::spawn(f));
    }
}

pub(crate) fn run(budget: Budget, report: &mut Report) {
    let cpus = crate::util::cpus();
    match percore::pool::ThreadPool::builder().name("bench").build() {
        Ok(p) => bench(Percore(p), budget, report),
        Err(e) => eprintln!("percore pool: {e}"),
    }
    bench(Rayon, budget, report);
    bench(Threadpool(threadpool::ThreadPool::new(cpus)), budget, report);
    match tokio::runtime::Builder::new_multi_thread().build() {
        Ok(rt) => bench(Tokio(rt), budget, report),
        Err(e) => eprintln!("tokio runtime: {e}"),
    }
    bench(Blocking, budget, report);
    bench(StdThread, budget, report);
}

fn bench<S: Submit>(s: S, budget: Budget, report: &mut Report) {
    // Warm up: threads exist, code and caches are hot.
    wait_all(&s, 200);
    dispatch(&s, "warm", budget.scale(2000) as usize, Duration::ZERO, report);
    let idle_gap = if budget.quick { Duration::from_millis(20) } else { Duration::from_millis(50) };
    dispatch(&s, "idle", budget.scale(40).max(5) as usize, idle_gap, report);
    throughput(&s, budget.scale(1_000_000) / S::THROUGHPUT_DIVISOR, report);
    idle_cpu(&s, budget.millis(2000), report);
    trickle(&s, budget.millis(2000), report);
}

/// Submit `n` empty jobs and wait until all ran.
fn wait_all<S: Submit>(s: &S, n: u64) {
    let (tx, rx) = mpsc::channel::<()>();
    let left = Arc::new(AtomicU64::new(n));
    for _ in 0..n {
        let (left, tx) = (left.clone(), tx.clone());
        s.submit(move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _ = tx.send(());
            }
        });
    }
    let _ = rx.recv_timeout(Duration::from_secs(600));
}

fn dispatch<S: Submit>(s: &S, mode: &'static str, samples: usize, gap: Duration, report: &mut Report) {
    let (tx, rx) = mpsc::channel::<Duration>();
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let tx = tx.clone();
        let t0 = Instant::now();
        s.submit(move || {
            let _ = tx.send(t0.elapsed());
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(d) => lat.push(d),
            Err(_) => {
                eprintln!("{}: a dispatch sample never ran", S::NAME);
                return;
            }
        }
    }
    lat.sort();
    let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
    let median = us(lat[lat.len() / 2]);
    let p99 = us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)]);
    report.push(Row::new("pool_dispatch", S::NAME, "median_us", median, "us", Better::Lower).field("mode", mode));
    report.push(Row::new("pool_dispatch", S::NAME, "p99_us", p99, "us", Better::Lower).field("mode", mode));
}

/// What throughput jobs share: leaked once per run, so that a job captures
/// one `&'static` and no reference count bounces between threads.
struct Finish {
    done: AtomicU64,
    jobs: u64,
    tx: std::sync::Mutex<mpsc::SyncSender<()>>,
}

fn throughput<S: Submit>(s: &S, jobs: u64, report: &mut Report) {
    let jobs = jobs.max(100);
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let fin: &'static Finish = Box::leak(Box::new(Finish { done: AtomicU64::new(0), jobs, tx: tx.into() }));
    let mut finished = true;
    let took = crate::util::time(|| {
        for _ in 0..jobs {
            s.submit(move || {
                if fin.done.fetch_add(1, Ordering::AcqRel) + 1 == fin.jobs {
                    let _ = fin.tx.lock().map(|tx| tx.send(()));
                }
            });
        }
        finished = rx.recv_timeout(Duration::from_secs(600)).is_ok();
    });
    if !finished {
        eprintln!("{}: throughput run did not finish", S::NAME);
        return;
    }
    let ns = took.as_nanos() as f64 / jobs as f64;
    report.push(Row::new("pool_throughput", S::NAME, "ns_per_job", ns, "ns", Better::Lower));
}

fn idle_cpu<S: Submit>(s: &S, window: Duration, report: &mut Report) {
    wait_all(s, 100);
    let before = process_cpu_time();
    std::thread::sleep(window);
    let used = process_cpu_time().saturating_sub(before);
    let ms = used.as_secs_f64() * 1000.0;
    report.push(
        Row::new("pool_idle_cpu", S::NAME, "cpu_ms", ms, "ms", Better::Lower).field("window_ms", window.as_millis()),
    );
}

fn trickle<S: Submit>(s: &S, window: Duration, report: &mut Report) {
    let ran = Arc::new(AtomicU64::new(0));
    let before = process_cpu_time();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < window {
        let ran = ran.clone();
        s.submit(move || {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ran.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let used = process_cpu_time().saturating_sub(before);
    let us = used.as_secs_f64() * 1e6 / sent.max(1) as f64;
    report.push(Row::new("pool_trickle_cpu", S::NAME, "cpu_us_per_job", us, "us", Better::Lower));
}
