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
//! * `lwkt_parked_memory`: RSS growth per parked uthread / task, 10,000 of
//!   them (uthreads in `tsleep`, tasks on a `Notify`).

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
    parked_memory(report);
}

/// Resident set size of the process in bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// 10,000 parked uthreads / tasks: RSS growth divided by count.
fn parked_memory(report: &mut Report) {
    const N: usize = 10_000;
    static CHAN: u8 = 0;
    let rt = Runtime::builder().workers(1).name("bench-mem").stack_cache(0).build().expect("runtime");
    rt.block_on(|| ()).expect("warm up");
    let before = rss();
    let hs: Vec<_> =
        (0..N).map(|_| rt.spawn(|| lwkt::tsleep(&CHAN, Some(Duration::from_secs(60)))).expect("spawn")).collect();
    rt.block_on(|| ()).expect("all parked"); // FIFO: every sleeper ran first
    let per = rss().saturating_sub(before) as f64 / N as f64;
    let mut woken = 0;
    while woken < N {
        woken += lwkt::wakeup(&CHAN);
        std::thread::sleep(Duration::from_millis(1));
    }
    hs.into_iter().for_each(|h| drop(h.join()));
    report.push(Row::new("lwkt_parked_memory", "percore", "bytes_per_uthread", per, "B", Better::Lower));
    drop(rt);
    let trt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
    let per = trt.block_on(async {
        let n = Arc::new(tokio::sync::Notify::new());
        let before = rss();
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let n = n.clone();
                tokio::spawn(async move { n.notified().await })
            })
            .collect();
        tokio::task::yield_now().await;
        let per = rss().saturating_sub(before) as f64 / N as f64;
        for h in hs {
            // A task not yet registered on the Notify misses a wake-up:
            // repeat until this one is done.
            while !h.is_finished() {
                n.notify_waiters();
                tokio::task::yield_now().await;
            }
            h.await.expect("join");
        }
        per
    });
    report.push(Row::new("lwkt_parked_memory", "tokio", "bytes_per_uthread", per, "B", Better::Lower));
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
