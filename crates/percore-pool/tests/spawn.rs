//! `spawn` and `JoinHandle`: results, panics, cancellation, detaching, reuse.

mod common;

use common::{Counted, Gate, LONG};
use percore_pool::{JoinError, ThreadPool, PRI_NONE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn results_come_back() {
    let pool = ThreadPool::get(PRI_NONE).unwrap();
    let hs: Vec<_> = (0..1000u64).map(|i| pool.spawn(move || i * 2)).collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u64 * 2);
    }
    let s = pool.spawn(|| String::from("owned")).join().unwrap();
    assert_eq!(s, "owned");
}

#[test]
fn a_panic_is_caught_and_observable() {
    let pool = ThreadPool::builder().name("spawn-panic").max_threads(1).build().unwrap();
    let h = pool.spawn(|| -> u8 { panic!("spawned boom") });
    match h.join() {
        Err(JoinError::Panicked(p)) => {
            assert_eq!(p.message(), "spawned boom");
            assert!(p.take().is_some());
            assert!(p.take().is_none());
        }
        other => panic!("{other:?}"),
    }
    let h = pool.spawn(|| std::panic::panic_any(7u32));
    match h.join() {
        Err(e @ JoinError::Panicked(_)) => assert!(e.to_string().contains("non-string")),
        other => panic!("{other:?}"),
    }
    // The worker survived both.
    assert_eq!(pool.spawn(|| 1).join().unwrap(), 1);
    let s = pool.stats();
    assert_eq!(s.panics, 2);
    assert_eq!(s.threads_created, 1);
}

#[test]
fn cancel_before_start_and_not_after() {
    let pool = ThreadPool::builder().name("spawn-cancel").max_threads(1).build().unwrap();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let blocker = pool.spawn(move || g.wait());
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let victim = pool.spawn(move || r.fetch_add(1, Ordering::SeqCst));
    assert!(victim.cancel());
    assert!(victim.cancel(), "cancelling twice is fine");
    assert!(victim.is_finished());
    gate.open();
    blocker.join().unwrap();
    assert!(matches!(victim.join(), Err(JoinError::Cancelled)));
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let done = pool.spawn(|| 3);
    assert!(done.wait_timeout(LONG));
    assert!(!done.cancel(), "finished: too late");
    assert_eq!(done.join().unwrap(), 3);
}

#[test]
fn wait_timeout_gives_up_and_the_work_goes_on() {
    let pool = ThreadPool::builder().name("spawn-wait").build().unwrap();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let h = pool.spawn(move || {
        g.wait();
        9
    });
    assert!(!h.wait_timeout(std::time::Duration::from_millis(1)));
    assert!(!h.is_finished());
    gate.open();
    assert_eq!(h.join().unwrap(), 9);
}

#[test]
fn detached_work_runs_and_cells_are_recycled() {
    let pool = ThreadPool::builder().name("spawn-detach").build().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    for _ in 0..3 {
        for _ in 0..10_000 {
            let c = count.clone();
            drop(pool.spawn(move || c.fetch_add(1, Ordering::Relaxed)));
        }
        pool.drain_timeout(LONG).unwrap();
    }
    assert_eq!(count.load(Ordering::Relaxed), 30_000);
    assert_eq!(pool.stats().jobs_run, 30_000);
}

/// Spawned closures' cells come from the `pool.cells` zone and go back to
/// it: rounds of deep queues (every spawn far ahead of the workers) reuse
/// the cells of the rounds before instead of growing, and every closure's
/// captures are dropped exactly once.
#[test]
fn cells_come_from_the_zone_and_are_reused_across_deep_queues() {
    let pool = ThreadPool::builder().name("spawn-zone").max_threads(2).build().unwrap();
    let (ran, dropped) = (Arc::new(AtomicU64::new(0)), Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    let items = || percore_cpu::stats::get("zone.pool.cells.items").expect("the pool.cells zone is registered");
    let mut after_first = 0;
    for round in 0..4 {
        let gate = Arc::new(Gate::default());
        let g2 = gate.clone();
        // Hold both workers' attention on one closure each while 5,000 cells
        // queue up behind them.
        let blockers: Vec<_> = (0..2)
            .map(|_| {
                let g = g2.clone();
                pool.spawn(move || g.wait())
            })
            .collect();
        for _ in 0..5_000 {
            let (r, c) = (ran.clone(), Counted(dropped.clone()));
            drop(pool.spawn(move || {
                let _keep = &c;
                r.fetch_add(1, Ordering::Relaxed);
            }));
        }
        gate.open();
        for b in blockers {
            b.join().unwrap();
        }
        pool.drain_timeout(LONG).unwrap();
        if std::env::var_os("PERCORE_ZONE_NOCACHE").is_some_and(|v| v == "1") {
            // No cache (valgrind runs): each cell went back to the system.
            assert!(items() < 5_000, "cells were not freed: {} outstanding", items());
        } else if round == 0 {
            after_first = items();
            assert!(after_first >= 5_000, "a deep queue of 5,000 needs 5,000 cells: {after_first}");
        } else {
            // Other tests of this binary spawn too (on other threads, at most
            // a few thousand at a time); a leak here would add 5,000 a round.
            assert!(items() < after_first + 5_000, "cells grew from {after_first} to {} in round {round}", items());
        }
    }
    assert_eq!(ran.load(Ordering::Relaxed), 20_000);
    assert_eq!(dropped.load(Ordering::SeqCst), 20_000);
}
