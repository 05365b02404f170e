//! `execute`: fire-and-forget closures carried in the queue entry itself.
//! Every closure runs exactly once, its captures are dropped exactly once,
//! panics are caught and counted, `drain` waits for them, and a stress run
//! of several producers racing `drain` loses and duplicates nothing.

mod common;

use common::{Counted, Gate, LONG};
use percore_pool::{JobStatus, ThreadPool};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn every_closure_runs_once_and_drain_waits_for_them() {
    let pool = ThreadPool::builder().name("exec-count").max_threads(2).build().unwrap();
    let hits: Arc<Vec<AtomicU64>> = Arc::new((0..1000).map(|_| AtomicU64::new(0)).collect());
    for round in 0..3 {
        for i in 0..1000 {
            let hits = hits.clone();
            pool.execute(move || {
                hits[i].fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
        pool.drain_timeout(LONG).unwrap();
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == round + 1), "round {round}");
    }
    assert_eq!(pool.stats().jobs_run, 3000);
    assert_eq!(pool.stats().panics, 0);
}

#[test]
fn captures_of_every_size_are_dropped_exactly_once() {
    let pool = ThreadPool::builder().name("exec-drops").max_threads(2).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    // One word (inline), eight words (boxed: past the entry's four), and
    // over-aligned (boxed).
    #[repr(align(64))]
    struct Aligned(u64);
    for i in 0..100u64 {
        let (c, r) = (Counted(drops.clone()), ran.clone());
        pool.execute(move || {
            let _keep = &c;
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let (c, r, pad) = (Counted(drops.clone()), ran.clone(), [i; 8]);
        pool.execute(move || {
            let _keep = &c;
            // The sum of eight `i` over eight, less `i`, plus one: 1.
            r.fetch_add((pad.iter().sum::<u64>() / 8 - i + 1) as usize, Ordering::SeqCst);
        })
        .unwrap();
        let (c, r, a) = (Counted(drops.clone()), ran.clone(), Aligned(1));
        pool.execute(move || {
            let _keep = &c;
            r.fetch_add(a.0 as usize, Ordering::SeqCst);
        })
        .unwrap();
    }
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 300);
    assert_eq!(drops.load(Ordering::SeqCst), 300);
}

#[test]
fn a_panic_is_caught_counted_and_costs_no_worker() {
    let pool = ThreadPool::builder().name("exec-panic").max_threads(1).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let c = Counted(drops.clone());
        pool.execute(move || {
            let _keep = &c;
            panic!("executed boom");
        })
        .unwrap();
    }
    pool.drain_timeout(LONG).unwrap();
    let s = pool.stats();
    assert_eq!(s.panics, 10);
    assert_eq!(s.jobs_run, 10);
    // Captures were dropped by the unwinding, once each.
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    // The one worker survived all ten.
    assert_eq!(pool.spawn(|| 5).join().unwrap(), 5);
}

#[test]
fn executed_closures_keep_fifo_order_from_one_producer_on_one_worker() {
    let pool = ThreadPool::builder().name("exec-fifo").max_threads(1).build().unwrap();
    let gate = Arc::new(Gate::default());
    let g2 = gate.clone();
    // Hold the one worker so that everything below queues up behind it.
    let blocker = pool.spawn(move || g2.wait());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..500 {
        let seen = seen.clone();
        pool.execute(move || seen.lock().unwrap().push(i)).unwrap();
    }
    gate.open();
    blocker.join().unwrap();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..500).collect::<Vec<_>>());
}

#[test]
fn execute_and_jobs_share_the_queue_and_cancel_skips_executed_entries() {
    let pool = ThreadPool::builder().name("exec-mixed").max_threads(1).build().unwrap();
    let gate = Arc::new(Gate::default());
    let g2 = gate.clone();
    let blocker = pool.spawn(move || g2.wait());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    pool.execute(move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let job = percore_pool::Job::new("exec-mixed-job", 0u32, |run| {
        let mut g = run.lock();
        *g += 1;
        g.done()
    });
    assert!(pool.schedule(&job));
    let r = ran.clone();
    pool.execute(move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    // The queued job is found past an executed entry and removed; the
    // executed entries on either side stay.
    assert!(job.cancel_async());
    assert_eq!(job.status(), JobStatus::Idle);
    gate.open();
    blocker.join().unwrap();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    assert_eq!(*job.lock(), 0);
}

/// Several producers execute while another thread drains over and over:
/// every closure runs exactly once, none is lost or run twice, and a drain
/// that returns has seen every closure executed before it started.
#[test]
fn stress_producers_racing_drain() {
    const PRODUCERS: usize = 4;
    const EACH: usize = if cfg!(debug_assertions) { 20_000 } else { 100_000 };
    let pool = ThreadPool::builder().name("exec-stress").max_threads(2).build().unwrap();
    let hits: Arc<Vec<AtomicU64>> = Arc::new((0..PRODUCERS * EACH).map(|_| AtomicU64::new(0)).collect());
    let submitted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (pool, hits, submitted) = (pool.clone(), hits.clone(), submitted.clone());
            s.spawn(move || {
                for i in 0..EACH {
                    let hits = hits.clone();
                    let k = p * EACH + i;
                    pool.execute(move || {
                        hits[k].fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                    submitted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let (pool, hits, submitted, done) = (pool.clone(), hits.clone(), submitted.clone(), done.clone());
        s.spawn(move || {
            let mut rounds = 0;
            while done.load(Ordering::SeqCst) == 0 || rounds == 0 {
                // Everything submitted before the drain began has run when
                // it returns; sample a few of those closures to check.
                let before = submitted.load(Ordering::SeqCst);
                pool.drain_timeout(LONG).unwrap();
                let ran = hits.iter().filter(|h| h.load(Ordering::Relaxed) == 1).count();
                assert!(ran >= before, "drain returned with {ran} run of {before} submitted");
                rounds += 1;
                if submitted.load(Ordering::SeqCst) == PRODUCERS * EACH {
                    done.store(1, Ordering::SeqCst);
                }
            }
        });
    });
    pool.drain_timeout(LONG).unwrap();
    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "a closure ran twice or never");
    assert_eq!(pool.stats().jobs_run as usize, PRODUCERS * EACH);
}
