//! `ThreadPool`: sharing, priorities, configuration errors, idle timeout,
//! drain, shutdown semantics.

mod common;

use common::{wait_for, Gate, LONG};
use percore_pool::{Error, Job, ThreadPool, PRI_MAX, PRI_MIN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn invalid_priorities_are_errors_not_panics() {
    for pri in [-2, PRI_MAX + 1, 1000, i32::MIN, i32::MAX] {
        assert!(matches!(ThreadPool::get(pri), Err(Error::InvalidPriority(p)) if p == pri), "{pri}");
        assert!(matches!(percore_pool::PerCpuPool::get(pri), Err(Error::InvalidPriority(_))));
        assert!(matches!(ThreadPool::builder().priority(pri).build(), Err(Error::InvalidPriority(_))));
    }
    let e = ThreadPool::get(77).unwrap_err();
    assert!(e.to_string().contains("77"), "{e}");
}

#[test]
fn invalid_configurations_are_errors() {
    let b = ThreadPool::builder;
    for bad in [
        b().max_threads(0),
        b().idle_timeout(Duration::ZERO),
        b().stall_interval(Duration::ZERO),
        b().spin(Duration::from_secs(1)),
        b().name(""),
        b().name("a.b"),
        b().name("nul\0"),
    ] {
        assert!(matches!(bad.build(), Err(Error::InvalidConfig(_))), "{bad:?}");
        assert!(matches!(bad.build_per_cpu(), Err(Error::InvalidConfig(_))), "{bad:?}");
    }
}

#[test]
fn pools_are_shared_per_priority_and_die_with_the_last_reference() {
    let pri = 3; // used by no other test
    let prefix = "pool.u@3.jobs_run";
    let handles: Vec<ThreadPool> = std::thread::scope(|s| {
        let ts: Vec<_> = (0..4).map(|_| s.spawn(move || ThreadPool::get(pri).unwrap())).collect();
        ts.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // Whoever won the creation race, everybody holds the same pool.
    handles[0].spawn(|| ()).join().unwrap();
    handles[0].drain_timeout(LONG).unwrap();
    for h in &handles {
        assert_eq!(h.stats().jobs_run, 1);
        assert_eq!(h.name(), "u@3");
        assert_eq!(h.priority(), pri);
    }
    assert_eq!(percore_cpu::stats::get(prefix), Some(1));
    let clone = handles[1].clone();
    drop(handles);
    assert_eq!(percore_cpu::stats::get(prefix), Some(1), "a clone keeps it alive");
    drop(clone);
    assert_eq!(percore_cpu::stats::get(prefix), None, "destroyed with the last reference");
    // A new get creates a fresh pool.
    let again = ThreadPool::get(pri).unwrap();
    assert_eq!(again.stats().jobs_run, 0);
}

#[test]
fn priorities_are_applied_or_reported() {
    for pri in [PRI_MIN, 19, PRI_MAX] {
        let pool = ThreadPool::builder().name(format!("prio{pri}")).priority(pri).build().unwrap();
        pool.spawn(|| ()).join().unwrap();
        // The overseer and the worker each tried.
        wait_for("both threads to report", || {
            let s = pool.stats();
            s.priority_applied + s.priority_refused >= 2
        });
    }
    let none = ThreadPool::builder().name("prio-none").build().unwrap();
    none.spawn(|| ()).join().unwrap();
    let s = none.stats();
    assert_eq!(s.priority_applied + s.priority_refused, 0, "PRI_NONE leaves threads alone");
}

#[test]
fn idle_workers_exit_after_the_idle_timeout() {
    let pool = ThreadPool::builder().name("idle-short").idle_timeout(Duration::from_millis(20)).build().unwrap();
    let hs: Vec<_> = (0..8).map(|i| pool.spawn(move || i)).collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
    }
    wait_for("workers to idle out", || pool.stats().threads == 0);
    let s = pool.stats();
    assert!(s.threads_created >= 1);
    assert_eq!(s.threads_exited, s.threads_created);
    assert_eq!(s.idle_threads, 0);
    // The overseer makes new workers on demand.
    assert_eq!(pool.spawn(|| 5).join().unwrap(), 5);
    assert!(pool.stats().threads_created > s.threads_created);
    assert!(pool.stats().handoffs >= 2);
}

#[test]
fn drain_waits_for_everything_and_bounded_drain_times_out() {
    let pool = ThreadPool::builder().name("drain").max_threads(1).build().unwrap();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let blocker = pool.spawn(move || g.wait());
    let count = Arc::new(AtomicU64::new(0));
    for _ in 0..100 {
        let c = count.clone();
        drop(pool.spawn(move || c.fetch_add(1, Ordering::SeqCst)));
    }
    assert!(matches!(pool.drain_timeout(Duration::from_millis(1)), Err(Error::Timeout)));
    gate.open();
    pool.drain_timeout(LONG).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 100);
    assert!(blocker.is_finished());
}

#[test]
fn draining_from_inside_the_pool_is_refused() {
    let pool = ThreadPool::builder().name("drain-self").build().unwrap();
    let p = pool.clone();
    let r = pool.spawn(move || p.drain()).join().unwrap();
    assert!(matches!(r, Err(Error::WouldDeadlock)), "{r:?}");
}

#[test]
fn shutdown_runs_queued_work_and_reports_cancelled_delays() {
    let pool = ThreadPool::builder().name("shutdown").max_threads(1).build().unwrap();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    drop(pool.spawn(move || g.wait()));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let c = count.clone();
            pool.spawn(move || c.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    let delayed = Job::new("delayed", (), |run| run.lock().done());
    assert!(pool.schedule_after(&delayed, Duration::from_secs(3600)));
    let stats = pool.clone();
    // Destroy on another thread: the drop waits for the pool's threads.
    let destroyer = std::thread::spawn(move || drop(pool));
    gate.open();
    destroyer.join().unwrap();
    // The `stats` clone kept the pool alive until here; drop it too.
    let before = stats.stats();
    drop(stats);
    assert_eq!(count.load(Ordering::SeqCst), 10, "queued work ran");
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(delayed.stats().shutdown_cancelled, 1, "the owner is told");
    assert_eq!(delayed.stats().runs, 0);
    assert_eq!(delayed.status(), percore_pool::JobStatus::Idle);
    let _ = before;
}

#[test]
fn a_job_that_keeps_rearming_does_not_block_shutdown() {
    let pool = ThreadPool::builder().name("shutdown-rearm").build().unwrap();
    let job = Job::new("forever", 0u64, |run| {
        let mut g = run.lock();
        *g += 1;
        g.rearm()
    });
    pool.schedule(&job);
    wait_for("it to loop", || *job.lock() > 2);
    drop(pool);
    assert_eq!(job.stats().shutdown_cancelled, 1);
    assert_eq!(job.status(), percore_pool::JobStatus::Idle);
}

#[test]
fn the_last_handle_dropped_by_a_worker_does_not_deadlock() {
    let pool = ThreadPool::builder().name("self-drop").build().unwrap();
    let inner = pool.clone();
    let h = pool.spawn(move || {
        let n = inner.stats().threads;
        drop(inner); // by then the test dropped its handle: this is the last
        n
    });
    drop(pool);
    assert!(h.join().unwrap() >= 1);
}

#[test]
fn the_stats_tree_shows_the_pool() {
    let pool = ThreadPool::builder().name("tree").build().unwrap();
    pool.spawn(|| ()).join().unwrap();
    pool.drain_timeout(LONG).unwrap();
    let all = percore_cpu::stats::with_prefix("pool.tree.");
    for key in ["jobs_run", "idle_threads", "busy_threads", "threads_created", "threads_exited", "handoffs", "panics"] {
        assert!(all.iter().any(|(k, _)| k == &format!("pool.tree.{key}")), "{key} missing: {all:?}");
    }
    assert_eq!(percore_cpu::stats::get("pool.tree.jobs_run"), Some(1));
}

#[test]
fn an_idle_pool_has_every_worker_asleep() {
    let pool = ThreadPool::builder().name("idle-asleep").build().unwrap();
    let hs: Vec<_> = (0..4).map(|_| pool.spawn(|| ())).collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    pool.drain_timeout(LONG).unwrap();
    wait_for("workers to go idle", || {
        let s = pool.stats();
        s.busy_threads == 0 && s.idle_threads == s.threads
    });
}

#[test]
fn issue_shutdown_does_not_wait_for_the_idle_timeout() {
    // Regression: a worker that was spinning (not yet on the idle stack)
    // when the pool began dying went to sleep for its whole idle timeout,
    // and the drop waited for it. With an hour-long timeout the drop must
    // still return promptly; a bounded join fails loudly instead of hanging.
    for round in 0..20 {
        let pool = ThreadPool::builder()
            .name(format!("no-wait{round}"))
            .idle_timeout(Duration::from_secs(3600))
            .build()
            .unwrap();
        let hs: Vec<_> = (0..4).map(|_| pool.spawn(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(pool);
            let _ = tx.send(());
        });
        rx.recv_timeout(LONG).expect("the pool's drop hung");
    }
}
