//! A futex for loom models: compare-and-queue under a mutex, wake under the
//! same mutex. No timeouts: a model that would need one to make progress is a
//! lost wake-up, and loom reports it as a deadlock.

use loom::sync::atomic::AtomicU32;
use loom::sync::{Condvar, Mutex};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Emulated futex queue for one word.
#[derive(Debug, Default)]
pub(crate) struct Futex {
    lock: Mutex<()>,
    cv: Condvar,
}

impl Futex {
    pub(crate) fn new() -> Self {
        Futex { lock: Mutex::new(()), cv: Condvar::new() }
    }

    /// Sleep while `word == expected`.
    pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let g = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(self.cv.wait(g).unwrap());
        }
    }

    /// Wake every sleeper on the word.
    pub(crate) fn wake(&self, _word: &AtomicU32) {
        let _g = self.lock.lock().unwrap();
        self.cv.notify_all();
    }
}
