//! Runtime lifecycle: build, block_on, spawn errors, cpusync, stats, drop.
mod common;
use common::watchdog;
use percore_lwkt::{Builder, Error, JoinError, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn default_workers_match_affinity() {
    watchdog("default_workers", || {
        let rt = Runtime::new().unwrap();
        assert_eq!(rt.workers(), percore_cpu::allowed_cpus().unwrap().len());
        assert_eq!(rt.block_on(|| 5).unwrap(), 5);
    });
}

#[test]
fn zero_workers_is_an_error() {
    assert!(matches!(Runtime::builder().workers(0).build(), Err(Error::NoWorkers)));
}

#[test]
fn workers_are_pinned() {
    watchdog("pinned", || {
        let cpus = percore_cpu::allowed_cpus().unwrap();
        let rt = Runtime::builder().workers(2).build().unwrap();
        for w in 0..2 {
            let cpu = Builder::new().worker(w).spawn_on(rt.handle(), percore_cpu::current_cpu).unwrap().join().unwrap();
            assert_eq!(cpu, Some(cpus[w % cpus.len()]));
        }
    });
}

#[test]
fn spawn_argument_errors() {
    watchdog("spawn_errors", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let e = Builder::new().worker(7).spawn_on(rt.handle(), || ()).unwrap_err();
        assert!(matches!(e, Error::NoSuchWorker { worker: 7, workers: 2 }), "{e}");
        let e = Builder::new().priority(200).spawn_on(rt.handle(), || ()).unwrap_err();
        assert!(matches!(e, Error::BadPriority(200)));
        assert!(matches!(percore_lwkt::spawn(|| ()), Err(Error::NotUthread)));
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        assert!(matches!(unsafe { percore_lwkt::migrate(0) }, Err(Error::NotUthread)));
    });
}

#[test]
fn panics_are_returned_by_join_and_workers_survive() {
    watchdog("panics", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        for i in 0..20 {
            let h =
                Builder::new().rotate().spawn_on(rt.handle(), move || -> u32 { panic!("uthread {i} fails") }).unwrap();
            let e = h.join().unwrap_err();
            assert!(e.is_panic());
            assert_eq!(e.panic_message(), Some(format!("uthread {i} fails").as_str()));
        }
        // Joined from a uthread too.
        let m = rt
            .block_on(|| {
                let h = percore_lwkt::spawn(|| -> () { std::panic::panic_any(17u32) }).unwrap();
                match h.join() {
                    Err(e @ JoinError::Panicked(_)) => *e.into_panic().downcast::<u32>().unwrap(),
                    other => panic!("{other:?}"),
                }
            })
            .unwrap();
        assert_eq!(m, 17);
        assert_eq!(rt.block_on(|| 3).unwrap(), 3);
    });
}

#[test]
fn join_from_foreign_threads() {
    watchdog("foreign_join", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let hs: Vec<_> = (0..50)
            .map(|i| {
                rt.spawn(move || {
                    percore_lwkt::sleep(Duration::from_millis(1)).unwrap();
                    i
                })
                .unwrap()
            })
            .collect();
        let ts: Vec<_> = hs.into_iter().map(|h| std::thread::spawn(move || h.join().unwrap())).collect();
        assert_eq!(ts.into_iter().map(|t| t.join().unwrap()).sum::<i32>(), 1225);
    });
}

#[test]
fn cpusync_runs_on_every_worker() {
    watchdog("cpusync", || {
        let rt = Runtime::builder().workers(3).build().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        rt.cpusync(move |i| {
            assert_eq!(percore_lwkt::worker_index(), Some(i));
            assert!(percore_lwkt::in_critical());
            s.fetch_or(1 << i, SeqCst);
        })
        .unwrap();
        assert_eq!(seen.load(SeqCst), 0b111);
        // From a uthread as well.
        let h = rt.handle().clone();
        let seen2 = Arc::new(AtomicUsize::new(0));
        let s2 = seen2.clone();
        rt.block_on(move || {
            h.cpusync(move |_| {
                s2.fetch_add(1, SeqCst);
            })
            .unwrap()
        })
        .unwrap();
        assert_eq!(seen2.load(SeqCst), 3);
    });
}

#[test]
fn stats_are_registered() {
    watchdog("stats", || {
        let rt = Runtime::builder().workers(2).name("statstest").build().unwrap();
        rt.block_on(|| {
            for _ in 0..10 {
                percore_lwkt::spawn(|| ()).unwrap().join().unwrap();
            }
        })
        .unwrap();
        let s = percore_cpu::stats::with_prefix("lwkt.statstest");
        let get = |k: &str| s.iter().filter(|(n, _)| n.ends_with(k)).map(|(_, v)| *v).sum::<u64>();
        assert!(get("switches") >= 11, "{s:?}");
        assert!(get("cached_stacks") >= 1, "{s:?}");
        for k in [
            "ipis_sent",
            "ipis_received",
            "idle_sleeps",
            "wakeups",
            "runq_len",
            "token_contended",
            "given_away",
            "preempt_hit",
            "preempt_miss",
        ] {
            assert!(s.iter().any(|(n, _)| n.ends_with(k)), "missing {k}");
        }
        drop(rt);
        assert!(percore_cpu::stats::with_prefix("lwkt.statstest.").is_empty());
    });
}

/// Dropping the runtime cancels unfinished uthreads: blocked ones are
/// unwound (their destructors run, blocking inside them fails at once),
/// unstarted ones are dropped, and joiners see `Cancelled`.
#[test]
fn drop_cancels_unfinished_uthreads() {
    watchdog("drop_cancels", || {
        struct OnDrop(Arc<AtomicUsize>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                // Blocking from a destructor during shutdown returns at once.
                assert!(matches!(percore_lwkt::sleep(Duration::from_secs(3600)), Err(Error::Shutdown)));
                percore_lwkt::yield_now();
                self.0.fetch_add(1, SeqCst);
            }
        }
        static CHAN: u8 = 0;
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder().workers(2).build().unwrap();
        let mut hs = Vec::new();
        for _ in 0..20 {
            let d = OnDrop(dropped.clone());
            hs.push(
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        let _d = d;
                        percore_lwkt::tsleep(&CHAN, None).unwrap();
                    })
                    .unwrap(),
            );
        }
        // Started or not, each one is cancelled: started ones are unwound
        // from inside `tsleep`, unstarted ones dropped.
        drop(rt);
        assert_eq!(dropped.load(SeqCst), 20);
        for h in hs {
            assert!(matches!(h.join(), Err(JoinError::Cancelled)));
        }
        // A later wakeup on the channel finds no dangling sleeper.
        assert_eq!(percore_lwkt::wakeup(&CHAN), 0);
    });
}

#[test]
fn handle_after_drop_is_refused() {
    watchdog("handle_after_drop", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let h = rt.handle().clone();
        drop(rt);
        assert!(matches!(h.spawn(|| ()), Err(Error::Shutdown)));
        assert!(matches!(h.cpusync(|_| ()), Err(Error::Shutdown)));
    });
}

/// A uthread spinning on `yield_now` with nothing else runnable still lets
/// the runtime shut down (yield switches out once shutdown is signalled).
#[test]
fn drop_with_a_yield_spinner() {
    watchdog("yield_spinner", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let h = rt
            .spawn(move || {
                s.store(1, SeqCst);
                loop {
                    percore_lwkt::yield_now();
                }
            })
            .unwrap();
        while started.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        drop(rt);
        assert!(matches!(h.join(), Err(JoinError::Cancelled)));
    });
}
