//! Issue 13: dropping a runtime whose uthread never yields hung for ever,
//! without a word.
//!
//! Scenario: a uthread named `spinner` spins on a flag without ever reaching
//! a scheduling point, so its worker can never stop. Before the fix,
//! dropping the runtime waited for that worker for ever (the test's
//! watchdog fired). Now `Runtime::shutdown_timeout(d)` returns
//! `ShutdownTimeout` naming `spinner` once `d` has passed, and `Drop` waits
//! `RuntimeBuilder::shutdown_timeout` (default 10 s), then writes the same
//! report to stderr and returns with the workers detached (checked in a
//! child process, whose stderr the test reads).
mod common;
use common::watchdog;
use percore_lwkt::{Builder, Runtime};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = "PERCORE_LWKT_SHUTDOWN_CHILD";

/// Start a never-yielding uthread named `spinner`; returns its release flag.
fn stuck(rt: &Runtime) -> Arc<AtomicBool> {
    let started = Arc::new(AtomicBool::new(false));
    let hold = Arc::new(AtomicBool::new(true));
    let (s, h) = (started.clone(), hold.clone());
    Builder::new()
        .name("spinner")
        .spawn_on(rt.handle(), move || {
            s.store(true, SeqCst);
            while h.load(SeqCst) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    while !started.load(SeqCst) {
        std::thread::yield_now();
    }
    hold
}

#[test]
fn shutdown_timeout_names_the_stuck_uthread() {
    watchdog("shutdown_timeout", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let hold = stuck(&rt);
        let t0 = Instant::now();
        let e = rt.shutdown_timeout(Duration::from_millis(100)).unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
        assert_eq!(e.running().len(), 1, "{e}");
        assert_eq!(e.running()[0].name(), Some("spinner"));
        assert!(e.to_string().contains("uthread 'spinner'"), "{e}");
        hold.store(false, SeqCst); // the detached workers finish now
    });
}

#[test]
fn shutdown_timeout_is_ok_when_all_stop() {
    watchdog("shutdown_ok", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| ()).unwrap();
        rt.shutdown_timeout(Duration::from_secs(30)).unwrap();
    });
}

#[test]
fn shutdown_timeout_from_own_uthread_names_the_caller() {
    watchdog("shutdown_own", || {
        let rt = Arc::new(std::sync::Mutex::new(Some(Runtime::builder().workers(1).build().unwrap())));
        let r = rt.clone();
        let h = rt.lock().unwrap().as_ref().unwrap().handle().clone();
        let got = Builder::new()
            .name("self")
            .spawn_on(&h, move || {
                let rt = r.lock().unwrap().take().unwrap();
                let e = rt.shutdown_timeout(Duration::from_secs(30)).unwrap_err();
                e.running().iter().map(|u| u.name().map(String::from)).collect::<Vec<_>>()
            })
            .unwrap()
            .join();
        // The uthread returned before the cancellation reached it, or not.
        if let Ok(names) = got {
            assert_eq!(names, vec![Some("self".to_string())]);
        }
    });
}

/// The child side of `drop_reports_and_returns`.
#[test]
fn child() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let rt = Runtime::builder().workers(1).name("stuck").shutdown_timeout(Duration::from_millis(200)).build().unwrap();
    let _hold = stuck(&rt);
    drop(rt);
    eprintln!("drop returned");
    std::process::exit(0); // the spinner's worker stays detached
}

#[test]
fn drop_reports_and_returns() {
    watchdog("drop_reports", || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?}: {stderr}", out.status);
        assert!(stderr.contains("runtime 'stuck'"), "{stderr}");
        assert!(stderr.contains("uthread 'spinner'"), "{stderr}");
        assert!(stderr.contains("on worker 0"), "{stderr}");
        assert!(stderr.contains("drop returned"), "{stderr}");
    });
}
