//! loom model of the join slot (`uthread/oneshot.rs`): its one completer
//! racing its one waiter, which is an async task (a waker registered with
//! `poll`, replaced by a re-poll) or a blocked thread (`wait`). Checked in
//! every interleaving:
//!
//! * complete racing a poll: the poll's waker is woken, or the poll (or the
//!   next one) sees the value; never neither;
//! * a re-poll with a new waker racing complete: the new waker is the one
//!   woken, or the re-poll sees the value (a wake of only the old waker
//!   would strand a task that moved on to the new one);
//! * a poll, then a blocking wait racing complete: the wait returns the
//!   value (a lost wake-up leaves it parked for ever, which loom reports as
//!   a deadlock);
//! * the value is read once, whole, after the completer wrote it (loom
//!   checks every `UnsafeCell` access against the orderings).
//!
//! The blocked waiter is `percore_lwkt::Waiter` in its loom form (a loom
//! thread, woken with `unpark`).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_join` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::atomic::AtomicUsize;
use loom::sync::Arc;
use loom::thread;
use percore_lwkt::__loom::Oneshot;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll, Wake, Waker};

/// A task's waker that counts its wake-ups.
struct Flag(AtomicUsize);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn flag() -> (std::sync::Arc<Flag>, Waker) {
    let f = std::sync::Arc::new(Flag(AtomicUsize::new(0)));
    let w = Waker::from(f.clone());
    (f, w)
}

fn woken(f: &Flag) -> bool {
    f.0.load(SeqCst) > 0
}

/// Poll a slot that must be done: its value.
fn take(slot: &Oneshot<u32>, w: &Waker) -> u32 {
    match slot.poll(&mut Context::from_waker(w)) {
        Poll::Ready(v) => v.unwrap(),
        Poll::Pending => panic!("done (or woken), but the value is not there"),
    }
}

/// Complete racing a first poll: woken or seen done, never neither.
#[test]
fn complete_races_poll() {
    loom::model(|| {
        let slot = Arc::new(Oneshot::new());
        let s = slot.clone();
        let completer = thread::spawn(move || s.complete(7u32));
        let (f, w) = flag();
        let first = slot.poll(&mut Context::from_waker(&w));
        completer.join().unwrap();
        match first {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 7),
            Poll::Pending => {
                assert!(woken(&f), "a pending poll's waker was never woken");
                // The wake-up means the value is there.
                assert_eq!(take(&slot, &w), 7);
            }
        }
    });
}

/// A re-poll with a new waker racing complete: the new waker is the one
/// woken, or the re-poll sees the value.
#[test]
fn repoll_with_new_waker_races_complete() {
    loom::model(|| {
        let slot = Arc::new(Oneshot::new());
        let (_old, w1) = flag();
        assert!(slot.poll(&mut Context::from_waker(&w1)).is_pending());
        let s = slot.clone();
        let completer = thread::spawn(move || s.complete(7u32));
        let (new, w2) = flag();
        let again = slot.poll_done(&mut Context::from_waker(&w2));
        completer.join().unwrap();
        if again.is_pending() {
            assert!(woken(&new), "the re-poll's waker was not woken (only the old one, or none)");
        }
        assert!(slot.is_done());
        assert_eq!(take(&slot, &w2), 7);
    });
}

/// A poll (its waker left registered), then a blocking wait racing
/// complete: the wait takes the slot back and returns the value.
#[test]
fn poll_then_wait_races_complete() {
    loom::model(|| {
        let slot = Arc::new(Oneshot::new());
        let (_f, w) = flag();
        assert!(slot.poll_done(&mut Context::from_waker(&w)).is_pending());
        let s = slot.clone();
        let completer = thread::spawn(move || s.complete(7u32));
        assert_eq!(slot.wait().unwrap(), 7);
        completer.join().unwrap();
    });
}
