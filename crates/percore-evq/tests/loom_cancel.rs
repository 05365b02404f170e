//! loom model of `CancellationToken`'s protocol (`src/cancel.rs`): a waker
//! registered concurrently with `cancel` is either told "ready" by the
//! registration or woken by the cancel, never neither (a lost wake-up); it
//! is woken at most once; and a registration taken out while a cancel runs
//! leaves nothing behind and is woken at most once.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2
//! cargo test -p percore-evq --release --test loom_cancel` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use percore_evq::__loom::CancellationToken;
use std::task::{RawWaker, RawWakerVTable, Waker};

/// A waker that counts its wake-ups in a loom atomic (std's `Wake` needs a
/// std `Arc`; loom's atomics must be reached through loom's).
fn counting_waker(count: Arc<AtomicUsize>) -> Waker {
    fn clone(p: *const ()) -> RawWaker {
        // SAFETY: `p` came from `Arc::into_raw` of an `Arc<AtomicUsize>`.
        unsafe { Arc::increment_strong_count(p as *const AtomicUsize) };
        RawWaker::new(p, &VTABLE)
    }
    fn wake(p: *const ()) {
        wake_by_ref(p);
        drop_(p);
    }
    fn wake_by_ref(p: *const ()) {
        // SAFETY: `p` is a live `Arc<AtomicUsize>` (this waker holds a count).
        unsafe { &*(p as *const AtomicUsize) }.fetch_add(1, SeqCst);
    }
    fn drop_(p: *const ()) {
        // SAFETY: gives back the count this waker held.
        drop(unsafe { Arc::from_raw(p as *const AtomicUsize) });
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_);
    // SAFETY: the vtable's functions treat the pointer as the `Arc` above.
    unsafe { Waker::from_raw(RawWaker::new(Arc::into_raw(count) as *const (), &VTABLE)) }
}

#[test]
fn register_racing_cancel_is_never_lost() {
    loom::model(|| {
        let t = CancellationToken::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = counting_waker(woken.clone());
        let t2 = t.clone();
        let canceller = thread::spawn(move || assert!(t2.cancel()));
        let mut key = None;
        let ready = t.__register(&mut key, &w).is_ready();
        canceller.join().unwrap();
        let n = woken.load(SeqCst);
        assert!(ready || n == 1, "neither ready nor woken: a lost wake-up");
        assert!(n <= 1, "woken {n} times");
        assert!(!ready || n == 0, "ready and woken: a registration after the cancel");
        assert_eq!(t.registered(), 0);
    });
}

#[test]
fn deregister_racing_cancel_leaves_nothing() {
    loom::model(|| {
        let t = CancellationToken::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = counting_waker(woken.clone());
        let t2 = t.clone();
        let mut key = None;
        let pending = t.__register(&mut key, &w).is_pending();
        let canceller = thread::spawn(move || t2.cancel());
        t.__deregister(&mut key);
        canceller.join().unwrap();
        assert!(pending, "nobody cancelled before the registration");
        // NOTE: a cancel that took the list before the deregistration wakes
        // the waker after it was taken out: allowed (a select's stale waker
        // posts to its closed queue), but only once.
        assert!(woken.load(SeqCst) <= 1);
        assert_eq!(t.registered(), 0);
    });
}

#[test]
fn two_registrations_both_woken() {
    loom::model(|| {
        let t = CancellationToken::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let (t1, t2) = (t.clone(), t.clone());
        let w1 = woken.clone();
        let a = thread::spawn(move || {
            let mut k = None;
            t1.__register(&mut k, &counting_waker(w1)).is_ready()
        });
        let mut k = None;
        let b_ready = t2.__register(&mut k, &counting_waker(woken.clone())).is_ready();
        let a_ready = a.join().unwrap();
        t.cancel();
        let expect = usize::from(!a_ready) + usize::from(!b_ready);
        assert_eq!(woken.load(SeqCst), expect);
        assert_eq!((a_ready, b_ready), (false, false), "nobody cancelled before");
    });
}
