//! loom model of the event queues' wait/post protocol (`src/queue.rs`:
//! `wait_any`, the shared mailbox, the claim-one wake-up, the hand-on and
//! the per-thread slot cache), the same code production runs, with loom's
//! locks, atomics, `Arc` and thread-locals (`percore_cpu::loom`) and loom threads
//! as waiters (`percore_lwkt::Waiter` in its loom form).
//!
//! What each model checks:
//! * a waiter is never left asleep while an event it waits for sits in a
//!   queue: a lost wake-up leaves a parked thread nobody unparks, which loom
//!   reports as a deadlock;
//! * each event is delivered exactly once, to one waiter or to a later
//!   `try_recv`, and none is lost;
//! * a waiter claimed by one queue's post that takes another queue's event
//!   hands the wake-up on to a waiter of the first;
//! * close and timeout (a zero timeout: the give-up path right after
//!   linking) end a wait with `Closed`/`TimedOut` or with the event, never a
//!   hang, and leave no event behind unaccounted.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2
//! cargo test -p percore-evq --release --test loom_queue` (ci/loom.sh).
//!
//! NOTE: a failing model aborts the test binary (SIGABRT, "panic in a
//! destructor during cleanup") after loom's own message: the per-thread
//! slot cache's loom `Arc` is dropped while loom unwinds. Run one model with
//! `-- --exact <name>` to see each verdict.
#![cfg(loom)]

use loom::thread;
use percore_evq::__loom::{wait_any, Ceq, Coalesce, Event, EventQueue, Queue};
use percore_evq::Error;
use std::time::Duration;

const A: Event = Event::new(1, 10);
const B: Event = Event::new(2, 20);

/// One poster, one waiter: the waiter gets the event, once.
#[test]
fn post_wakes_waiter() {
    loom::model(|| {
        let q = EventQueue::new();
        let p = q.clone();
        let poster = thread::spawn(move || p.post(A).unwrap());
        assert_eq!(q.recv(None).unwrap(), A);
        poster.join().unwrap();
        assert_eq!(q.try_recv(), None, "delivered twice");
    });
}

/// Two waiters, two posts on one queue: both return, each with its own
/// event (one wake-up per post, none lost, none doubled).
#[test]
fn two_waiters_two_posts() {
    loom::model(|| {
        let q = EventQueue::new();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.recv(None).unwrap())
            })
            .collect();
        q.post(A).unwrap();
        q.post(B).unwrap();
        let mut got: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap().kind).collect();
        got.sort_unstable();
        assert_eq!(got, [A.kind, B.kind]);
        assert_eq!(q.try_recv(), None);
    });
}

/// One waiter on an event queue and a coalescing queue, a post to each from
/// its own thread: the waiter gets one, the other stays takeable.
#[test]
fn wait_any_two_queues_two_posters() {
    loom::model(|| {
        let (a, b) = (EventQueue::new(), Ceq::new(4, Coalesce::Or));
        let (a2, b2) = (a.clone(), b.clone());
        let pa = thread::spawn(move || a2.post(A).unwrap());
        let pb = thread::spawn(move || b2.post(B.kind, B.payload).unwrap());
        let (ev, which) = wait_any(&[&a, &b], None).unwrap();
        pa.join().unwrap();
        pb.join().unwrap();
        let (other, rest): (&dyn Queue, Event) = if which == 0 { (&b, B) } else { (&a, A) };
        assert_eq!(ev, if which == 0 { A } else { B });
        assert_eq!(other.try_recv(), Some(rest), "the other event was lost");
        assert_eq!((a.try_recv(), b.try_recv()), (None, None), "delivered twice");
    });
}

/// The hand-on: W1 waits on `[a, b]`, W2 on `b` only; `b` then `a` get an
/// event. When `b`'s post claims W1 and W1 then takes `a`'s event (it scans
/// in order), W1 must wake W2 for `b`'s: without the hand-on W2 sleeps
/// forever next to its event (a deadlock). If W1 took `b`'s event instead,
/// `a`'s is still there, and W2 is released by a second post to `b`.
#[test]
fn hand_on_wakes_second_waiter() {
    loom::model(|| {
        let (a, b) = (EventQueue::new(), Ceq::new(4, Coalesce::Or));
        let (a1, b1, b2) = (a.clone(), b.clone(), b.clone());
        let w1 = thread::spawn(move || wait_any(&[&a1, &b1], None).unwrap());
        let w2 = thread::spawn(move || b2.recv(None).unwrap());
        b.post(B.kind, B.payload).unwrap();
        a.post(A).unwrap();
        match w1.join().unwrap() {
            (e, 0) => {
                assert_eq!(e, A);
                assert_eq!(w2.join().unwrap(), B, "b's event, by the hand-on if W1 was claimed by b");
            }
            (e, _) => {
                assert_eq!(e, B);
                assert_eq!(a.try_recv(), Some(A), "a's event was lost");
                b.post(B.kind, B.payload).unwrap();
                assert_eq!(w2.join().unwrap(), B);
            }
        }
        assert_eq!((a.try_recv(), b.try_recv()), (None, None), "delivered twice");
    });
}

/// Close racing a post and a waiter: the waiter gets the event if the post
/// won, `Closed` if the close did; it never hangs.
#[test]
fn close_races_waiter() {
    loom::model(|| {
        let q = EventQueue::new();
        let (p, c) = (q.clone(), q.clone());
        let poster = thread::spawn(move || p.post(A).is_ok());
        let closer = thread::spawn(move || c.close());
        let r = q.recv(None);
        let posted = poster.join().unwrap();
        closer.join().unwrap();
        match r {
            Ok(e) => assert!(posted && e == A),
            Err(Error::Closed) => assert!(!posted, "closed while an event was left"),
            Err(e) => panic!("unexpected {e}"),
        }
        assert_eq!(q.try_recv(), None);
    });
}

/// A timeout racing a post: W1 gives up right after linking (zero
/// timeout), W2 waits without limit. If the post's wake-up went to W1 and
/// W1 timed out, the event must still reach W2 or W1 (its last look); the
/// main thread posts a second event only for a W1 that took the first, so a
/// lost wake-up shows as W2 hanging.
#[test]
fn timeout_races_post() {
    loom::model(|| {
        let q = EventQueue::new();
        let (q1, q2) = (q.clone(), q.clone());
        let w1 = thread::spawn(move || q1.recv(Some(Duration::ZERO)));
        let w2 = thread::spawn(move || q2.recv(None).unwrap());
        q.post(A).unwrap();
        match w1.join().unwrap() {
            Ok(e) => {
                assert_eq!(e, A);
                q.post(B).unwrap();
                assert_eq!(w2.join().unwrap(), B);
            }
            Err(Error::TimedOut) => assert_eq!(w2.join().unwrap(), A),
            Err(e) => panic!("unexpected {e}"),
        }
        assert_eq!(q.try_recv(), None);
    });
}
