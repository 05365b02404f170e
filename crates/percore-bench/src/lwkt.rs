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
}
