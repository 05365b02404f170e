//! Helpers shared by the integration tests: generous bounded waits that fail
//! loudly instead of hanging. No test asserts on timing.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Every bounded wait in the tests: long enough never to trip on a loaded
/// 2-core machine, short enough that a bug fails instead of hanging CI.
pub(crate) const LONG: Duration = Duration::from_secs(60);

/// Poll `cond` until it holds; panic with `what` after [`LONG`].
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A gate: jobs wait on it until the test opens it.
#[derive(Default)]
pub(crate) struct Gate {
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Gate {
    pub(crate) fn wait(&self) {
        let mut g = self.open.lock().unwrap();
        let start = Instant::now();
        while !*g {
            assert!(start.elapsed() < LONG, "gate never opened");
            g = self.cv.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
        }
    }

    pub(crate) fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// Counts its drops into the shared counter (captures dropped exactly once).
pub(crate) struct Counted(pub(crate) std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
