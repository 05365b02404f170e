//! Scheduling semantics of uthreads: priorities, round robin, yield, sleep,
//! migration, critical sections, hold/release.
mod common;
use common::{stat, watchdog};
use percore_lwkt::{Builder, Error, Runtime};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn log() -> Arc<Mutex<Vec<u32>>> {
    Arc::new(Mutex::new(Vec::new()))
}

#[test]
fn round_robin_within_a_priority() {
    watchdog("round_robin", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let l = log();
        let l2 = l.clone();
        rt.block_on(move || {
            let _c = percore_lwkt::critical(); // spawn all before any runs
            let hs: Vec<_> = (0..3u32)
                .map(|i| {
                    let l = l2.clone();
                    percore_lwkt::spawn(move || {
                        for _ in 0..3 {
                            l.lock().unwrap().push(i);
                            percore_lwkt::yield_now();
                        }
                    })
                    .unwrap()
                })
                .collect();
            drop(_c);
            hs
        })
        .unwrap()
        .into_iter()
        .for_each(|h| h.join().unwrap());
        assert_eq!(*l.lock().unwrap(), vec![0, 1, 2, 0, 1, 2, 0, 1, 2]);
    });
}

#[test]
fn higher_priority_runs_first() {
    watchdog("priority", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let l = log();
        let l2 = l.clone();
        rt.block_on(move || {
            let hs: Vec<_> = [3u8, 20, 10, 31, 0]
                .into_iter()
                .map(|p| {
                    let l = l2.clone();
                    Builder::new().priority(p).spawn(move || l.lock().unwrap().push(p as u32)).unwrap()
                })
                .collect();
            // Let them all run: we are at the default priority (16), so a
            // yield runs the higher ones first; blocking runs the rest.
            for h in hs {
                h.join().unwrap();
            }
        })
        .unwrap();
        assert_eq!(*l.lock().unwrap(), vec![31, 20, 10, 3, 0]);
    });
}

#[test]
fn set_priority_reorders() {
    watchdog("set_priority", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let l = log();
        let l2 = l.clone();
        rt.block_on(move || {
            let la = l2.clone();
            let lb = l2.clone();
            let a = Builder::new().priority(5).spawn(move || la.lock().unwrap().push(1)).unwrap();
            let b = Builder::new().priority(5).spawn(move || lb.lock().unwrap().push(2)).unwrap();
            b.uthread().set_priority(6).unwrap();
            assert!(matches!(a.uthread().set_priority(99), Err(Error::BadPriority(99))));
            a.join().unwrap();
            b.join().unwrap();
        })
        .unwrap();
        assert_eq!(*l.lock().unwrap(), vec![2, 1]);
    });
}

#[test]
fn sleep_waits_at_least_the_duration() {
    watchdog("sleep", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let hs: Vec<_> = (0..100u64)
            .map(|i| {
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        let t = Instant::now();
                        let d = Duration::from_millis(i % 7);
                        percore_lwkt::sleep(d).unwrap();
                        t.elapsed() >= d
                    })
                    .unwrap()
            })
            .collect();
        assert!(hs.into_iter().all(|h| h.join().unwrap()));
    });
}

#[test]
fn migrate_moves_the_uthread() {
    watchdog("migrate", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let cpus = percore_cpu::allowed_cpus().unwrap();
        let r = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                let mut seen = Vec::new();
                for i in 0..20 {
                    // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                    unsafe { percore_lwkt::migrate(i % 2) }.unwrap();
                    seen.push((percore_lwkt::worker_index().unwrap(), percore_cpu::current_cpu().unwrap()));
                    assert_eq!(percore_lwkt::current().unwrap().worker(), i % 2);
                }
                seen
            })
            .unwrap()
            .join()
            .unwrap();
        for (i, (w, cpu)) in r.into_iter().enumerate() {
            assert_eq!(w, i % 2);
            assert_eq!(cpu, cpus[w % cpus.len()]);
        }
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        let e = rt.block_on(|| unsafe { percore_lwkt::migrate(9) }).unwrap();
        assert!(matches!(e, Err(Error::NoSuchWorker { .. })));
    });
}

#[test]
fn blocking_is_refused_in_critical_and_smr_sections() {
    watchdog("crit_refusal", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            static CHAN: u8 = 0;
            {
                let _c = percore_lwkt::critical();
                assert!(percore_lwkt::in_critical());
                assert!(matches!(percore_lwkt::sleep(Duration::from_millis(1)), Err(Error::InCritical)));
                assert!(matches!(percore_lwkt::tsleep(&CHAN, None), Err(Error::InCritical)));
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                assert!(matches!(unsafe { percore_lwkt::migrate(1) }, Err(Error::InCritical)));
                assert!(matches!(percore_lwkt::wait_msg(None), Err(Error::InCritical)));
                let h = percore_lwkt::spawn(|| ()).unwrap();
                assert!(matches!(h.join(), Err(percore_lwkt::JoinError::Wait(Error::InCritical))));
            }
            assert!(!percore_lwkt::in_critical());
            let smr = percore_smr::Smr::new("lwkt-test").unwrap();
            {
                let _g = smr.enter();
                assert!(percore_lwkt::in_critical());
                assert!(matches!(percore_lwkt::sleep(Duration::from_millis(1)), Err(Error::InSmrSection)));
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                assert!(matches!(unsafe { percore_lwkt::migrate(1) }, Err(Error::InSmrSection)));
            }
            percore_lwkt::sleep(Duration::from_millis(1)).unwrap();
        })
        .unwrap();
    });
}

#[test]
fn yield_in_critical_section_is_a_no_op() {
    // Issue 13: the same in debug and release (it panicked in debug only);
    // counted as `yields_refused` (tests/issue_edge_cases.rs).
    watchdog("crit_yield_no_op", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let _c = percore_lwkt::critical();
            percore_lwkt::yield_now();
        })
        .unwrap();
        assert_eq!(rt.block_on(|| 1).unwrap(), 1);
    });
}

#[test]
fn a_lone_yield_does_not_switch() {
    // Issue 15: with nobody else runnable, no timer armed and no driver
    // installed, the loop's pass has nothing to do, so a yield returns
    // without a switch (it used to switch out every `IO_POLL_EVERY` yields).
    // The counters are the worker's own, read on the worker: exact.
    watchdog("lone_yield", || {
        let rt = Runtime::builder().workers(1).name("lone-yield").build().unwrap();
        let (before, after) = rt
            .block_on(|| {
                let before = stat("lwkt.lone-yield.w0.switches");
                for _ in 0..1000 {
                    percore_lwkt::yield_now();
                }
                (before, stat("lwkt.lone-yield.w0.switches"))
            })
            .unwrap();
        assert!(before >= 1, "the block_on uthread's own resume is counted");
        assert_eq!(after, before);
    });
}

#[test]
fn a_lone_yielder_still_lets_timers_fire() {
    // Issue 15: with a timer armed, lone yields still switch out every
    // `IO_POLL_EVERY` yields so that the loop fires it: a uthread that
    // spins on `yield_now` until a sleeper wakes must not spin for ever.
    watchdog("lone_yield_timer", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let spins = rt
            .block_on(|| {
                let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let d = done.clone();
                let sleeper = percore_lwkt::spawn(move || {
                    percore_lwkt::sleep(Duration::from_millis(2)).unwrap();
                    d.store(true, std::sync::atomic::Ordering::SeqCst);
                })
                .unwrap();
                let mut spins = 0u64;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    percore_lwkt::yield_now();
                    spins += 1;
                }
                sleeper.join().unwrap();
                spins
            })
            .unwrap();
        assert!(spins > 0);
    });
}

#[test]
fn ipis_wait_for_critical_exit() {
    watchdog("ipi_at_crit_exit", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let h = rt.handle().clone();
        rt.block_on(move || {
            use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
            let ran = Arc::new(AtomicBool::new(false));
            let me = percore_lwkt::worker_index().unwrap();
            let c = percore_lwkt::critical();
            // A foreign thread runs a cpusync; our worker's part must wait
            // for our crit_exit.
            let r2 = ran.clone();
            let t = std::thread::spawn(move || {
                h.cpusync(move |i| {
                    if i == me {
                        r2.store(true, SeqCst)
                    }
                })
                .unwrap()
            });
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(20) {
                assert!(!ran.load(SeqCst));
                std::hint::spin_loop();
            }
            drop(c); // the IPI, once it arrives, now runs at a scheduling point
            while !ran.load(SeqCst) {
                percore_lwkt::yield_now();
            }
            t.join().unwrap();
        })
        .unwrap();
    });
}

#[test]
fn hold_and_release() {
    watchdog("hold", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let h = rt.spawn(|| 1).unwrap();
        let u = h.uthread().hold();
        assert_eq!(u.holds(), 1);
        assert_eq!(h.join().unwrap(), 1);
        assert!(u.id() > 0); // the record outlives the uthread while held
        u.clone().release();
        assert_eq!(u.holds(), 0);
    });
}

#[test]
fn named_uthreads_and_current() {
    watchdog("named", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let name = Builder::new()
            .name("worker-bee")
            .spawn_on(rt.handle(), || percore_lwkt::current().unwrap().name().map(String::from))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(name.as_deref(), Some("worker-bee"));
        assert!(percore_lwkt::current().is_none());
    });
}

/// The join slot moved into the record (issue 15) without changing what a
/// handle is: `Send` and `Sync` whenever its value is `Send` (even when the
/// value is not `Sync`), and `Unpin` whatever the value (so `&mut handle`
/// can be awaited). Checked by the compiler: this test fails to build if
/// either property is lost.
#[test]
fn join_handles_are_send_sync_and_unpin() {
    fn send_sync_unpin<X: Send + Sync + Unpin>() {}
    send_sync_unpin::<percore_lwkt::JoinHandle<std::cell::Cell<u8>>>();
    send_sync_unpin::<percore_lwkt::JoinHandle<std::marker::PhantomPinned>>();
}
