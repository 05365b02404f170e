//! Light-weight threads: percore-lwkt against tokio (current_thread for one
//! worker) and a raw corosensei switch, in the same run.
//!
//! * `lwkt_switch`: one context switch round trip. corosensei: `resume` +
//!   `suspend`; percore: one uthread-to-uthread switch through the worker's
//!   scheduler (a `yield_now` with a peer runnable).
//! * `lwkt_yield`: yield ping-pong between two uthreads / tasks on one
//!   worker, ns per yield.
//! * `lwkt_handoff`: block / wake hand-off between two uthreads on one worker
//!   (percore: `park` / `unpark`, and `tsleep` / `wakeup` as
//!   `percore-tsleep`; tokio: `Notify`), ns per hand-off.
//! * `lwkt_spawn_join`: spawn an empty uthread / task and join it, from a
//!   uthread / task on the same worker.
//! * `lwkt_remote_wake`: a uthread on worker 0 unparks one parked on worker 1,
//!   which is either busy (another uthread there keeps yielding) or asleep
//!   (idle in its futex); median and p99 latency until the woken one runs.
//!   tokio: a multi_thread runtime with two workers and a `Notify`.
//! * `lwkt_pingpong`: two uthreads, pinned to workers 0 and 1, exchange a
//!   message back and forth; every round trip is timed on the
//!   sending side and kept, so the median and p99 are exact
//!   (`median_us`, `p99_us`; field `gap_us`: 0 back to back, 1000 with a
//!   1 ms sleep before each round trip, so both workers have gone idle).
//!   percore: lwkt ports (`Uthread::send` + `wait_msg`); `percore-evq`: two
//!   `EventQueue`s (`post` + `recv(None)`). tokio: two bounded `mpsc`
//!   channels (capacity 1), either between two current_thread runtimes on
//!   two threads (`tokio`, the same shape as percore's) or between two tasks
//!   of a 2-worker multi_thread runtime (`tokio-multi_thread`: tokio places
//!   them, possibly both on one worker). `cross_thread_pct` says in how
//!   many of the round trips the two sides ran on different OS threads
//!   (context, not a result: 100 for the pinned shapes by construction).
//!   `percore-unpinned`: the same as `percore` with `pin(false)` (not the
//!   default), to show what pinning costs a wake-up.
//! * `lwkt_idle_cpu` (`cpu_ms`): process CPU time while a 2-worker runtime
//!   sits idle for a window right after a burst of cross-worker round trips
//!   (which leave both workers' spin budgets at their largest); tokio: a
//!   2-worker multi_thread runtime after the same burst. Near zero is the
//!   goal: an idle runtime must not keep spinning.
//! * `lwkt_parked_memory`: memory per parked uthread / task, 10,000 of them
//!   (uthreads in `tsleep`, tasks on a `Notify`), each implementation in a
//!   fresh process of its own (this binary re-run, see [`child_main`]), so
//!   that heap pages freed by an earlier measurement cannot hide the growth:
//!   the larger of the RSS growth and the growth of the C heap in use
//!   (`mallinfo2`), per item.

use crate::report::{Better, Report, Row};
use crate::util::ns_per_iter;
use crate::Budget;
use percore::lwkt::{self, Builder, Runtime};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn row(bench: &'static str, imp: &'static str, ns: f64) -> Row {
    Row::new(bench, imp, "ns", ns, "ns", Better::Lower).field("workers", 1)
}

pub(crate) fn run(budget: Budget, report: &mut Report) {
    let target = budget.millis(400);
    let reps = if budget.quick { 2 } else { 5 };
    let rt = Runtime::builder().workers(1).name("bench").build().expect("runtime");
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");

    // lwkt_switch
    let ns = ns_per_iter(target, reps, |iters| {
        let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), ()>, ()| loop {
            y.suspend(());
        });
        let t = Instant::now();
        for _ in 0..iters {
            co.resume(());
        }
        t.elapsed()
    });
    report.push(row("lwkt_switch", "corosensei", ns));
    let yield_pp = |iters: u64| -> Duration {
        rt.block_on(move || {
            let go = Arc::new(AtomicBool::new(false));
            let g = go.clone();
            let peer = lwkt::spawn(move || {
                while !g.load(SeqCst) {
                    lwkt::yield_now();
                }
            })
            .expect("spawn");
            lwkt::yield_now(); // let the peer start
            let t = Instant::now();
            for _ in 0..iters / 2 {
                lwkt::yield_now();
            }
            let d = t.elapsed();
            go.store(true, SeqCst);
            peer.join().expect("join");
            d
        })
        .expect("block_on")
    };
    let ns = ns_per_iter(target, reps, yield_pp);
    // Each of our `iters / 2` yields is answered by one of the peer's: `iters`
    // switches in all.
    report.push(row("lwkt_switch", "percore", ns));
    report.push(row("lwkt_yield", "percore", ns));
    let ns = ns_per_iter(target, reps, |iters| {
        tokio_rt.block_on(async move {
            let go = Arc::new(AtomicBool::new(false));
            let g = go.clone();
            let peer = tokio::spawn(async move {
                while !g.load(SeqCst) {
                    tokio::task::yield_now().await;
                }
            });
            tokio::task::yield_now().await;
            let t = Instant::now();
            for _ in 0..iters / 2 {
                tokio::task::yield_now().await;
            }
            let d = t.elapsed();
            go.store(true, SeqCst);
            peer.await.expect("join");
            d
        })
    });
    report.push(row("lwkt_yield", "tokio", ns));

    // lwkt_handoff
    let ns = ns_per_iter(target, reps, |iters| {
        rt.block_on(move || {
            static PING: u8 = 0;
            static PONG: u8 = 0;
            let rounds = iters / 2;
            let peer = lwkt::spawn(move || {
                for _ in 0..rounds {
                    let _ = lwkt::tsleep(&PING, Some(Duration::from_secs(10)));
                    lwkt::wakeup(&PONG);
                }
            })
            .expect("spawn");
            lwkt::yield_now(); // the peer sleeps on PING
            let t = Instant::now();
            for _ in 0..rounds {
                // The peer is linked on PING (it ran to its tsleep before we
                // got the worker back), so wake it, then sleep on PONG.
                lwkt::wakeup(&PING);
                let _ = lwkt::tsleep(&PONG, Some(Duration::from_secs(10)));
            }
            let d = t.elapsed();
            peer.join().expect("join");
            d
        })
        .expect("block_on")
    });
    report.push(row("lwkt_handoff", "percore-tsleep", ns));
    let ns = ns_per_iter(target, reps, |iters| {
        rt.block_on(move || {
            let rounds = iters / 2;
            let turn = Arc::new(AtomicBool::new(false)); // true: the peer's turn
            let me = lwkt::current().expect("uthread");
            let tp = turn.clone();
            let peer = lwkt::spawn(move || {
                for _ in 0..rounds {
                    while !tp.load(SeqCst) {
                        let _ = lwkt::park();
                    }
                    tp.store(false, SeqCst);
                    me.unpark();
                }
            })
            .expect("spawn");
            let pu = peer.uthread().clone();
            let t = Instant::now();
            for _ in 0..rounds {
                turn.store(true, SeqCst);
                pu.unpark();
                while turn.load(SeqCst) {
                    let _ = lwkt::park();
                }
            }
            let d = t.elapsed();
            peer.join().expect("join");
            d
        })
        .expect("block_on")
    });
    report.push(row("lwkt_handoff", "percore", ns));
    let ns = ns_per_iter(target, reps, |iters| {
        tokio_rt.block_on(async move {
            let ping = Arc::new(tokio::sync::Notify::new());
            let pong = Arc::new(tokio::sync::Notify::new());
            let rounds = iters / 2;
            let (pi, po) = (ping.clone(), pong.clone());
            let peer = tokio::spawn(async move {
                for _ in 0..rounds {
                    pi.notified().await;
                    po.notify_one();
                }
            });
            let t = Instant::now();
            for _ in 0..rounds {
                ping.notify_one();
                pong.notified().await;
            }
            let d = t.elapsed();
            peer.await.expect("join");
            d
        })
    });
    report.push(row("lwkt_handoff", "tokio", ns));

    // lwkt_spawn_join
    let ns = ns_per_iter(target, reps, |iters| {
        rt.block_on(move || {
            let t = Instant::now();
            for _ in 0..iters {
                Builder::new().spawn(|| ()).expect("spawn").join().expect("join");
            }
            t.elapsed()
        })
        .expect("block_on")
    });
    report.push(row("lwkt_spawn_join", "percore", ns));
    let ns = ns_per_iter(target, reps, |iters| {
        tokio_rt.block_on(async move {
            let t = Instant::now();
            for _ in 0..iters {
                tokio::spawn(async {}).await.expect("join");
            }
            t.elapsed()
        })
    });
    report.push(row("lwkt_spawn_join", "tokio", ns));
    drop(rt);
    remote_wake(budget, report);
    pingpong(budget, report);
    idle_cpu(budget, report);
    parked_memory(report);
}

/// Resident set size of the process in bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Bytes of the C heap in use (glibc's `mallinfo2`, all arenas, `mmap`ed
/// chunks included); 0 where there is no such call.
fn heap_in_use() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` takes no arguments and returns plain data.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

/// Parked uthreads / tasks per `lwkt_parked_memory` measurement.
const PARKED: usize = 10_000;
/// The environment variable that makes this binary a measuring child.
const CHILD_ENV: &str = "PERCORE_BENCH_CHILD";

/// In a child run (`PERCORE_BENCH_CHILD=parked-memory-<impl>`), measure and
/// print `RSS_GROWTH HEAP_GROWTH` in bytes, then return the exit code;
/// `None` in a normal run.
pub(crate) fn child_main() -> Option<i32> {
    let what = std::env::var(CHILD_ENV).ok()?;
    let growth = match what.as_str() {
        "parked-memory-percore" => parked_percore(),
        "parked-memory-tokio" => parked_tokio(),
        _ => {
            eprintln!("{CHILD_ENV}={what}: unknown measurement");
            return Some(2);
        }
    };
    println!("{} {}", growth.0, growth.1);
    Some(0)
}

/// (RSS growth, heap growth) in bytes with `PARKED` uthreads parked.
fn parked_percore() -> (u64, u64) {
    use std::sync::atomic::AtomicUsize;
    static CHAN: u8 = 0;
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let rt = Runtime::builder().workers(1).name("bench-mem").stack_cache(0).build().expect("runtime");
    rt.block_on(|| ()).expect("warm up");
    let (rss0, heap0) = (rss(), heap_in_use());
    let hs: Vec<_> = (0..PARKED)
        .map(|_| {
            rt.spawn(|| {
                STARTED.fetch_add(1, SeqCst);
                lwkt::tsleep(&CHAN, Some(Duration::from_secs(60)))
            })
            .expect("spawn")
        })
        .collect();
    while STARTED.load(SeqCst) < PARKED {
        rt.block_on(|| ()).expect("let the sleepers run"); // FIFO: they run first
    }
    let growth = (rss().saturating_sub(rss0), heap_in_use().saturating_sub(heap0));
    let mut woken = 0;
    while woken < PARKED {
        woken += lwkt::wakeup(&CHAN);
        std::thread::sleep(Duration::from_millis(1));
    }
    hs.into_iter().for_each(|h| drop(h.join()));
    growth
}

/// (RSS growth, heap growth) in bytes with `PARKED` tasks on a `Notify`.
fn parked_tokio() -> (u64, u64) {
    use std::sync::atomic::AtomicUsize;
    let trt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
    trt.block_on(async {
        let n = Arc::new(tokio::sync::Notify::new());
        let started = Arc::new(AtomicUsize::new(0));
        let (rss0, heap0) = (rss(), heap_in_use());
        let hs: Vec<_> = (0..PARKED)
            .map(|_| {
                let (n, started) = (n.clone(), started.clone());
                tokio::spawn(async move {
                    // The first poll counts and registers on the Notify.
                    started.fetch_add(1, SeqCst);
                    n.notified().await
                })
            })
            .collect();
        // NOTE: one yield lets current_thread run only about
        // `event_interval` (61) tasks before block_on's future is polled
        // again; wait until every task has been polled and is parked.
        while started.load(SeqCst) < PARKED {
            tokio::task::yield_now().await;
        }
        let growth = (rss().saturating_sub(rss0), heap_in_use().saturating_sub(heap0));
        for h in hs {
            while !h.is_finished() {
                n.notify_waiters();
                tokio::task::yield_now().await;
            }
            h.await.expect("join");
        }
        growth
    })
}

/// `lwkt_parked_memory`: each implementation in a fresh child process.
///
/// NOTE: measured in this process (until issue 15), tokio's tasks came out
/// at 0-190 B: its allocations reused heap pages that earlier benchmarks had
/// freed and glibc kept resident, so RSS did not grow. A fresh process has
/// no such pages, and the heap's own count (`mallinfo2`) does not depend on
/// residency at all.
fn parked_memory(report: &mut Report) {
    for imp in ["percore", "tokio"] {
        let Some((rss, heap)) = run_child(&format!("parked-memory-{imp}")) else {
            eprintln!("  lwkt_parked_memory / {imp}: the measuring child process failed; row skipped");
            continue;
        };
        let per = rss.max(heap) as f64 / PARKED as f64;
        // A parked task or uthread holds at least a waker (two words).
        let floor = 16.0;
        report.push(Row::new("lwkt_parked_memory", imp, "bytes_per_uthread", per, "B", Better::Lower).floor(floor));
        // The two parts, to read the figure by (stacks are `mmap`ed, not
        // heap; tokio's tasks are all heap).
        let (rss, heap) = (rss as f64 / PARKED as f64, heap as f64 / PARKED as f64);
        report.push(Row::new("lwkt_parked_memory", imp, "rss_bytes_per_uthread", rss, "B", Better::Lower));
        report.push(Row::new("lwkt_parked_memory", imp, "heap_bytes_per_uthread", heap, "B", Better::Lower));
    }
}

/// Run this binary as a measuring child; its two numbers.
fn run_child(what: &str) -> Option<(u64, u64)> {
    let me = std::env::current_exe().ok()?;
    let out = std::process::Command::new(me).env(CHILD_ENV, what).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>());
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

fn percentiles(mut v: Vec<u64>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

fn push_wake(report: &mut Report, imp: &'static str, target: &str, v: Vec<u64>) {
    let (p50, p99) = percentiles(v);
    for (metric, x) in [("median_us", p50), ("p99_us", p99)] {
        report.push(Row::new("lwkt_remote_wake", imp, metric, x, "us", Better::Lower).field("target", target));
    }
}

fn remote_wake(budget: Budget, report: &mut Report) {
    use std::sync::atomic::AtomicU64;
    let n = budget.scale(2_000) as usize;
    let rt = Runtime::builder().workers(2).name("bench-wake").build().expect("runtime");
    for busy in [true, false] {
        let samples = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                let base = Instant::now();
                let stop = Arc::new(AtomicBool::new(false));
                let spinner = busy.then(|| {
                    let stop = stop.clone();
                    Builder::new()
                        .worker(1)
                        .spawn(move || {
                            while !stop.load(SeqCst) {
                                lwkt::yield_now();
                            }
                        })
                        .expect("spawn")
                });
                let go = Arc::new(AtomicBool::new(false));
                let sent_at = Arc::new(AtomicU64::new(0));
                let (g, at) = (go.clone(), sent_at.clone());
                let sleeper = Builder::new()
                    .worker(1)
                    .spawn(move || {
                        let mut v = Vec::with_capacity(n);
                        for _ in 0..n {
                            while !g.load(SeqCst) {
                                let _ = lwkt::park();
                            }
                            v.push(base.elapsed().as_nanos() as u64 - at.load(SeqCst));
                            g.store(false, SeqCst);
                        }
                        v
                    })
                    .expect("spawn");
                let peer = sleeper.uthread().clone();
                for _ in 0..n {
                    // Give the target time to park (and, if idle, to fall
                    // asleep in its futex).
                    let _ = lwkt::sleep(Duration::from_micros(if busy { 20 } else { 300 }));
                    sent_at.store(base.elapsed().as_nanos() as u64, SeqCst);
                    go.store(true, SeqCst);
                    peer.unpark();
                    while go.load(SeqCst) {
                        std::hint::spin_loop();
                    }
                }
                stop.store(true, SeqCst);
                if let Some(s) = spinner {
                    s.join().expect("join");
                }
                sleeper.join().expect("join")
            })
            .expect("spawn")
            .join()
            .expect("join");
        push_wake(report, "percore", if busy { "busy" } else { "asleep" }, samples);
    }
    drop(rt);
    let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("tokio");
    for busy in [true, false] {
        let samples = trt.block_on(async move {
            let base = Instant::now();
            let stop = Arc::new(AtomicBool::new(false));
            let spinner = busy.then(|| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.load(SeqCst) {
                        tokio::task::yield_now().await;
                    }
                })
            });
            let notify = Arc::new(tokio::sync::Notify::new());
            let sent_at = Arc::new(AtomicU64::new(0));
            let go = Arc::new(AtomicBool::new(false));
            let (nt, at, g) = (notify.clone(), sent_at.clone(), go.clone());
            let sleeper = tokio::spawn(async move {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    nt.notified().await;
                    v.push(base.elapsed().as_nanos() as u64 - at.load(SeqCst));
                    g.store(false, SeqCst);
                }
                v
            });
            for _ in 0..n {
                tokio::time::sleep(Duration::from_micros(if busy { 20 } else { 300 })).await;
                go.store(true, SeqCst);
                sent_at.store(base.elapsed().as_nanos() as u64, SeqCst);
                notify.notify_one();
                while go.load(SeqCst) {
                    tokio::task::yield_now().await;
                }
            }
            stop.store(true, SeqCst);
            if let Some(s) = spinner {
                s.await.expect("join");
            }
            sleeper.await.expect("join")
        });
        push_wake(report, "tokio", if busy { "busy" } else { "asleep" }, samples);
    }
}

// ---------------------------------------------------------------------------
// lwkt_idle_cpu

fn idle_cpu(budget: Budget, report: &mut Report) {
    let window = budget.millis(2000);
    let push = |report: &mut Report, imp: &'static str, used: Duration| {
        report.push(
            Row::new("lwkt_idle_cpu", imp, "cpu_ms", used.as_secs_f64() * 1000.0, "ms", Better::Lower)
                .field("workers", 2)
                .field("window_ms", window.as_millis()),
        );
    };
    let rt = Runtime::builder().workers(2).name("bench-idle").build().expect("runtime");
    port_pingpong(rt.handle(), 0, 200, Duration::ZERO);
    let before = crate::util::process_cpu_time();
    std::thread::sleep(window);
    push(report, "percore", crate::util::process_cpu_time().saturating_sub(before));
    drop(rt);
    let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("tokio");
    let (ping_tx, ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let echo_at = Arc::new(AtomicU64::new(0));
    let at = echo_at.clone();
    trt.block_on(async move {
        let echo = tokio::spawn(tokio_echo(ping_rx, pong_tx, at));
        tokio::spawn(tokio_ping(ping_tx, pong_rx, echo_at, 0, 200, Duration::ZERO)).await.expect("join");
        echo.await.expect("join");
    });
    let before = crate::util::process_cpu_time();
    std::thread::sleep(window);
    push(report, "tokio", crate::util::process_cpu_time().saturating_sub(before));
}

// ---------------------------------------------------------------------------
// lwkt_pingpong

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The `q` quantile of sorted `v` by nearest rank (exact: one of the samples).
fn nearest_rank(v: &[u64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64
}

fn pingpong(budget: Budget, report: &mut Report) {
    // (gap before each round trip, round trips measured)
    let shapes =
        [(Duration::ZERO, budget.scale(20_000) as usize), (Duration::from_millis(1), budget.scale(2_000) as usize)];
    let warm = 100;
    for (gap, n) in shapes {
        let mut push = |imp: &'static str, (mut v, cross): (Vec<u64>, usize)| {
            let pct = 100.0 * cross as f64 / v.len().max(1) as f64;
            report.push(
                Row::new("lwkt_pingpong", imp, "cross_thread_pct", pct, "%", Better::Context)
                    .field("workers", 2)
                    .field("gap_us", gap.as_micros())
                    .field("samples", v.len()),
            );
            v.sort_unstable();
            for (metric, q) in [("median_us", 0.5), ("p99_us", 0.99)] {
                let us = nearest_rank(&v, q) / 1e3;
                report.push(
                    Row::new("lwkt_pingpong", imp, metric, us, "us", Better::Lower)
                        .field("workers", 2)
                        .field("gap_us", gap.as_micros())
                        .field("samples", v.len()),
                );
            }
        };
        let rt = Runtime::builder().workers(2).name("bench-pingpong").build().expect("runtime");
        push("percore", port_pingpong(rt.handle(), warm, n, gap));
        push("percore-evq", evq_pingpong(rt.handle(), warm, n, gap));
        drop(rt);
        // NOTE: not the default; context for the cost of pinning: an unpinned
        // worker woken by the other may be run on the waker's CPU, which is
        // not idle, while a pinned one must wait for its own CPU to leave its
        // idle state (issue 15).
        let rt = Runtime::builder().workers(2).pin(false).name("bench-pingpong-unpinned").build().expect("runtime");
        push("percore-unpinned", port_pingpong(rt.handle(), warm, n, gap));
        drop(rt);
        push("tokio", tokio_pingpong_2rt(warm, n, gap));
        let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("tokio");
        let (ping_tx, ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (pong_tx, pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let echo_at = Arc::new(AtomicU64::new(0));
        let at = echo_at.clone();
        let v = trt.block_on(async move {
            let echo = tokio::spawn(tokio_echo(ping_rx, pong_tx, at));
            let v = tokio::spawn(tokio_ping(ping_tx, pong_rx, echo_at, warm, n, gap)).await.expect("join");
            echo.await.expect("join");
            v
        });
        push("tokio-multi_thread", v);
    }
}

/// A number unique to the calling OS thread (the address of a thread-local).
fn thread_tag() -> u64 {
    thread_local!(static TAG: u8 = const { 0 });
    TAG.with(|t| t as *const u8 as u64)
}

/// Round trips timed (ns) and how many of them crossed OS threads.
type Trips = (Vec<u64>, usize);

/// Round trips between a uthread on worker 0 and one on worker 1, through
/// their lwkt ports.
fn port_pingpong(h: &percore::lwkt::Handle, warm: usize, n: usize, gap: Duration) -> Trips {
    Builder::new()
        .worker(0)
        .spawn_on(h, move || {
            let me = lwkt::current().expect("a uthread");
            let echo_at = Arc::new(AtomicU64::new(0));
            let at = echo_at.clone();
            let peer = Builder::new()
                .worker(1)
                .spawn(move || loop {
                    let mut m = lwkt::wait_msg(None).expect("wait_msg");
                    at.store(thread_tag(), Relaxed);
                    match m.take::<u64>() {
                        Some(v) if v != u64::MAX => me.send(v),
                        _ => break,
                    }
                })
                .expect("spawn");
            let to = peer.uthread().clone();
            let (mut v, mut cross) = (Vec::with_capacity(n), 0);
            for i in 0..warm + n {
                if !gap.is_zero() {
                    let _ = lwkt::sleep(gap);
                }
                let t = Instant::now();
                to.send(i as u64);
                let reply = lwkt::wait_msg(None).expect("the reply");
                let d = t.elapsed();
                drop(std::hint::black_box(reply));
                if i >= warm {
                    v.push(d.as_nanos() as u64);
                    cross += usize::from(echo_at.load(Relaxed) != thread_tag());
                }
            }
            to.send(u64::MAX);
            peer.join().expect("join");
            (v, cross)
        })
        .expect("spawn")
        .join()
        .expect("join")
}

/// The same through two `EventQueue`s.
fn evq_pingpong(h: &percore::lwkt::Handle, warm: usize, n: usize, gap: Duration) -> Trips {
    use percore::evq::{Event, EventQueue};
    Builder::new()
        .worker(0)
        .spawn_on(h, move || {
            let (ping, pong) = (EventQueue::new(), EventQueue::new());
            let (pi, po) = (ping.clone(), pong.clone());
            let echo_at = Arc::new(AtomicU64::new(0));
            let at = echo_at.clone();
            let peer = Builder::new()
                .worker(1)
                .spawn(move || loop {
                    let e = pi.recv(None).expect("recv");
                    at.store(thread_tag(), Relaxed);
                    if e.payload == u64::MAX {
                        break;
                    }
                    po.post(e).expect("post");
                })
                .expect("spawn");
            let (mut v, mut cross) = (Vec::with_capacity(n), 0);
            for i in 0..warm + n {
                if !gap.is_zero() {
                    let _ = lwkt::sleep(gap);
                }
                let t = Instant::now();
                ping.post(Event::new(1, i as u64)).expect("post");
                std::hint::black_box(pong.recv(None).expect("recv"));
                let d = t.elapsed();
                if i >= warm {
                    v.push(d.as_nanos() as u64);
                    cross += usize::from(echo_at.load(Relaxed) != thread_tag());
                }
            }
            ping.post(Event::new(1, u64::MAX)).expect("post");
            peer.join().expect("join");
            (v, cross)
        })
        .expect("spawn")
        .join()
        .expect("join")
}

/// The sending side: `warm + n` round trips, the last `n` timed (ns).
async fn tokio_ping(
    tx: tokio::sync::mpsc::Sender<u64>,
    mut rx: tokio::sync::mpsc::Receiver<u64>,
    echo_at: Arc<AtomicU64>,
    warm: usize,
    n: usize,
    gap: Duration,
) -> Trips {
    let (mut v, mut cross) = (Vec::with_capacity(n), 0);
    for i in 0..warm + n {
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        let t = Instant::now();
        tx.send(i as u64).await.expect("send");
        std::hint::black_box(rx.recv().await.expect("recv"));
        let d = t.elapsed();
        if i >= warm {
            v.push(d.as_nanos() as u64);
            cross += usize::from(echo_at.load(Relaxed) != thread_tag());
        }
    }
    (v, cross) // dropping `tx` ends the echo side
}

/// The answering side: echo until the sender is gone.
async fn tokio_echo(
    mut rx: tokio::sync::mpsc::Receiver<u64>,
    tx: tokio::sync::mpsc::Sender<u64>,
    echo_at: Arc<AtomicU64>,
) {
    while let Some(v) = rx.recv().await {
        echo_at.store(thread_tag(), Relaxed);
        if tx.send(v).await.is_err() {
            break;
        }
    }
}

/// Two current_thread runtimes on two threads, one side each.
fn tokio_pingpong_2rt(warm: usize, n: usize, gap: Duration) -> Trips {
    let (ping_tx, ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let echo_at = Arc::new(AtomicU64::new(0));
    let at = echo_at.clone();
    let peer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        rt.block_on(tokio_echo(ping_rx, pong_tx, at));
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio");
    let v = rt.block_on(tokio_ping(ping_tx, pong_rx, echo_at, warm, n, gap));
    peer.join().expect("echo thread");
    v
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_is_one_of_the_samples() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), 50.0);
        assert_eq!(nearest_rank(&v, 0.99), 99.0);
        assert_eq!(nearest_rank(&[7], 0.99), 7.0);
        let v: Vec<u64> = (1..=200).collect();
        assert_eq!(nearest_rank(&v, 0.99), 198.0);
    }
}
