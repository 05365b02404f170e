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
