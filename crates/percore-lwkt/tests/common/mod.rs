//! Shared helpers: every test body runs under a watchdog so that a hang
//! fails loudly instead of stalling the suite.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// Generous: the machine is shared and may be loaded.
pub(crate) const LIMIT: Duration = Duration::from_secs(120);

/// Run `f` on its own thread; panic if it does not finish within `LIMIT`,
/// and re-raise its panic if it panics.
pub(crate) fn watchdog<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(());
            r
        })
        .unwrap();
    match rx.recv_timeout(LIMIT) {
        Ok(()) => match h.join().unwrap() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("test `{name}` did not finish within {LIMIT:?}: hang"),
    }
}

/// Scale a stress size down in debug builds.
pub(crate) fn scaled(release: usize) -> usize {
    if cfg!(debug_assertions) {
        (release / 10).max(1)
    } else {
        release
    }
}

/// The value of one key of the stats tree (0 when absent).
pub(crate) fn stat(key: &str) -> u64 {
    percore_cpu::stats::snapshot().into_iter().find(|(k, _)| k == key).map_or(0, |(_, v)| v)
}

/// A uthread named `napper` that blocks its worker's OS thread twice for
/// 400 ms (`std::thread::sleep`: the watchdog's hazard), with a neighbour
/// waiting for its turn; returns once both finished.
pub(crate) fn nap_twice(rt: &percore_lwkt::Runtime) {
    let h = percore_lwkt::Builder::new()
        .name("napper")
        .spawn_on(rt.handle(), || {
            std::thread::sleep(Duration::from_millis(400));
            percore_lwkt::yield_now();
            std::thread::sleep(Duration::from_millis(400));
        })
        .unwrap();
    let neighbour = rt.spawn(|| ()).unwrap();
    h.join().unwrap();
    neighbour.join().unwrap();
}
