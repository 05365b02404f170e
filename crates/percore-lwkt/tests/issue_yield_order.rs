//! The order `yield_now` keeps (issue 15), whoever runs the scheduling
//! pass: the worker loop, or a yielding uthread hosting it on its own stack
//! (the design tried in issue 15, `docs/BENCHMARKS.md`). Scenarios: a pair
//! on one worker alternates; three or more rotate round-robin; a
//! higher-priority uthread woken by the uthread a yield switched to runs
//! before the yielder resumes; the uthread switched to may block, exit,
//! migrate or panic, and the yielder carries on; a runtime dropped while
//! uthreads yield to each other shuts down and unwinds them; and a bounded
//! stress of yields and cross-worker wake-ups on three workers.
mod common;
use common::{scaled, watchdog};
use percore_lwkt::{Builder, Runtime};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<usize>>>;

fn push(log: &Log, id: usize) {
    log.lock().unwrap().push(id);
}

/// Uthreads `0..n` on one worker (0 is the `block_on` one), each logging its
/// id then yielding, `rounds` times: the log is `0, 1, .., n-1` repeated.
fn round_robin(n: usize, rounds: usize) {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let log: Log = Arc::default();
    let l = log.clone();
    rt.block_on(move || {
        let peers: Vec<_> = (1..n)
            .map(|id| {
                let l = l.clone();
                percore_lwkt::spawn(move || {
                    for _ in 0..rounds {
                        push(&l, id);
                        percore_lwkt::yield_now();
                    }
                })
                .unwrap()
            })
            .collect();
        for _ in 0..rounds {
            push(&l, 0);
            percore_lwkt::yield_now();
        }
        for p in peers {
            p.join().unwrap();
        }
    })
    .unwrap();
    let log = log.lock().unwrap();
    let want: Vec<usize> = (0..rounds).flat_map(|_| 0..n).collect();
    assert_eq!(*log, want);
}

#[test]
fn a_pair_alternates() {
    watchdog("a_pair_alternates", || round_robin(2, 100));
}

#[test]
fn three_and_five_rotate_round_robin() {
    watchdog("round_robin", || {
        round_robin(3, 50);
        round_robin(5, 20);
    });
}

/// A (the yielder) and B share a priority; H, higher, is parked. A yields
/// to B, B wakes H and yields: H runs before A resumes, then A, then B.
#[test]
fn higher_priority_woken_by_the_switched_to_runs_before_the_yielder() {
    watchdog("higher_priority_first", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let log: Log = Arc::default();
        let l = log.clone();
        rt.block_on(move || {
            let lh = l.clone();
            let h = Builder::new()
                .priority(percore_lwkt::DEFAULT_PRIORITY + 4)
                .spawn(move || {
                    percore_lwkt::park().unwrap();
                    push(&lh, 2);
                })
                .unwrap();
            // H runs at once (higher priority) and parks.
            percore_lwkt::yield_now();
            let hu = h.uthread().clone();
            let lb = l.clone();
            let b = percore_lwkt::spawn(move || {
                push(&lb, 1);
                hu.unpark();
                percore_lwkt::yield_now();
                push(&lb, 1);
            })
            .unwrap();
            percore_lwkt::yield_now();
            push(&l, 0);
            b.join().unwrap();
            h.join().unwrap();
        })
        .unwrap();
        assert_eq!(*log.lock().unwrap(), vec![1, 2, 0, 1]);
    });
}

/// The uthread a yield switches to blocks, exits, migrates or panics; the
/// yielder keeps yielding and finds each outcome.
#[test]
fn the_switched_to_blocks_exits_migrates_or_panics() {
    watchdog("switched_to_outcomes", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let spin = || {
                for _ in 0..8 {
                    percore_lwkt::yield_now();
                }
            };
            let parked = Builder::new()
                .worker(0)
                .spawn(|| {
                    percore_lwkt::yield_now();
                    percore_lwkt::park().unwrap();
                    7
                })
                .unwrap();
            let exits = Builder::new().worker(0).spawn(percore_lwkt::yield_now).unwrap();
            let moves = Builder::new()
                .worker(0)
                .spawn(|| {
                    percore_lwkt::yield_now();
                    // SAFETY: nothing `!Send` lives across the move.
                    unsafe { percore_lwkt::migrate(1) }.unwrap();
                    percore_lwkt::yield_now();
                    percore_lwkt::worker_index()
                })
                .unwrap();
            let panics = Builder::new()
                .worker(0)
                .spawn(|| {
                    percore_lwkt::yield_now();
                    panic!("the switched-to uthread panics");
                })
                .unwrap();
            spin();
            assert_eq!(percore_lwkt::worker_index(), Some(0));
            parked.uthread().unpark();
            assert_eq!(parked.join().unwrap(), 7);
            exits.join().unwrap();
            assert_eq!(moves.join().unwrap(), Some(1));
            assert!(panics.join().is_err());
            spin();
        })
        .unwrap();
    });
}

/// Dropping the runtime while uthreads yield to each other shuts it down
/// and unwinds every one of them.
#[test]
fn shutdown_while_uthreads_yield_to_each_other() {
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    watchdog("shutdown_while_yielding", || {
        let dropped = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder().workers(1).build().unwrap();
        for _ in 0..3 {
            let c = Count(dropped.clone());
            let s = started.clone();
            rt.spawn(move || {
                let _c = c;
                s.fetch_add(1, SeqCst);
                loop {
                    percore_lwkt::yield_now();
                }
            })
            .unwrap();
        }
        // NOTE: waits without a timing threshold: the loops are running
        // once all three have counted themselves.
        while started.load(SeqCst) < 3 {
            std::thread::yield_now();
        }
        drop(rt);
        assert_eq!(dropped.load(SeqCst), 3);
    });
}

/// Three workers, each with yielders and one pinger that calls a ponger on
/// the next worker (cross-worker wake-ups), everybody yielding in between:
/// every yield returns, every call is answered.
#[test]
fn stress_yields_with_cross_worker_wakeups() {
    watchdog("stress_yields", || {
        const WORKERS: usize = 3;
        const YIELDERS: usize = 4;
        let rounds = scaled(20_000) as u64;
        let rt = Runtime::builder().workers(WORKERS).build().unwrap();
        let yields = Arc::new(AtomicU64::new(0));
        let answers = Arc::new(AtomicU64::new(0));
        let mut joins = Vec::new();
        for w in 0..WORKERS {
            for _ in 0..YIELDERS {
                let y = yields.clone();
                joins.push(
                    Builder::new()
                        .worker(w)
                        .spawn_on(rt.handle(), move || {
                            for _ in 0..rounds {
                                percore_lwkt::yield_now();
                                y.fetch_add(1, SeqCst);
                            }
                        })
                        .unwrap(),
                );
            }
            let pong = Builder::new()
                .worker((w + 1) % WORKERS)
                .spawn_on(rt.handle(), move || {
                    for _ in 0..rounds / 16 {
                        let mut m = percore_lwkt::wait_msg(None).unwrap();
                        let x = m.take::<u64>().unwrap();
                        percore_lwkt::yield_now();
                        m.reply(x + 1);
                    }
                })
                .unwrap();
            let peer = pong.uthread().clone();
            let a = answers.clone();
            let ping = Builder::new()
                .worker(w)
                .spawn_on(rt.handle(), move || {
                    let mut x = 0u64;
                    for _ in 0..rounds / 16 {
                        x = peer.call::<_, u64>(x).unwrap();
                        percore_lwkt::yield_now();
                    }
                    a.fetch_add(x, SeqCst);
                })
                .unwrap();
            joins.push(pong);
            joins.push(ping);
        }
        for j in joins {
            j.join().unwrap();
        }
        assert_eq!(yields.load(SeqCst), (WORKERS * YIELDERS) as u64 * rounds);
        assert_eq!(answers.load(SeqCst), WORKERS as u64 * (rounds / 16));
    });
}
