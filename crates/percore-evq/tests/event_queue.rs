//! `EventQueue` and `wait_any`: FIFO order, close semantics, waiting on
//! several queues from uthreads and foreign threads, and a bounded stress
//! test with exact counts (every event delivered exactly once, no waiter
//! left asleep while an event waits).

mod common;

use common::watchdog;
use percore_evq::{wait_any, Ceq, Coalesce, Error, Event, EventQueue, Queue};
use percore_lwkt::Runtime;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime")
}

#[test]
fn fifo_order() {
    let q = EventQueue::new();
    assert!(q.is_empty());
    for i in 0..100 {
        q.post(Event::new(i, u64::from(i) * 3)).unwrap();
    }
    assert_eq!(q.len(), 100);
    for i in 0..50 {
        assert_eq!(q.try_recv(), Some(Event::new(i, u64::from(i) * 3)));
    }
    // `recv` from a foreign thread takes in the same order.
    for i in 50..100 {
        assert_eq!(q.recv(None).unwrap(), Event::new(i, u64::from(i) * 3));
    }
    assert_eq!(q.try_recv(), None);
}

#[test]
fn fifo_order_across_a_blocked_uthread() {
    let rt = rt(2);
    let q = EventQueue::new();
    let q2 = q.clone();
    let h = rt.spawn(move || (0..1000).map(|_| q2.recv(None).unwrap().payload).collect::<Vec<_>>()).unwrap();
    for i in 0..1000 {
        q.post(Event::new(0, i)).unwrap();
    }
    assert_eq!(h.join().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn close_delivers_what_is_left_then_closed() {
    let q = EventQueue::new();
    q.post(Event::new(1, 1)).unwrap();
    q.post(Event::new(2, 2)).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.post(Event::new(3, 3)), Err(Error::Closed)));
    assert_eq!(q.recv(Some(Duration::ZERO)).unwrap(), Event::new(1, 1));
    assert_eq!(q.recv(None).unwrap(), Event::new(2, 2));
    assert!(matches!(q.recv(None), Err(Error::Closed)));
    assert!(matches!(q.recv(Some(Duration::ZERO)), Err(Error::Closed)));
}

#[test]
fn close_wakes_blocked_waiters() {
    let rt = rt(2);
    let q = EventQueue::new();
    let us: Vec<_> = (0..8)
        .map(|_| {
            let q = q.clone();
            rt.spawn(move || q.recv(None)).unwrap()
        })
        .collect();
    let ts: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || q.recv(None))
        })
        .collect();
    // Whether or not they blocked yet, close makes each of them return.
    q.close();
    watchdog(30, "close wakes waiters", String::new, move || {
        for h in us {
            assert!(matches!(h.join().unwrap(), Err(Error::Closed)));
        }
        for t in ts {
            assert!(matches!(t.join().unwrap(), Err(Error::Closed)));
        }
    });
}

#[test]
fn wait_any_returns_the_queue_index() {
    let (a, b, c) = (EventQueue::new(), EventQueue::new(), Ceq::new(4, Coalesce::Or));
    c.post(3, 1).unwrap();
    b.post(Event::new(9, 9)).unwrap();
    // Scanned in order: `b` before `c`.
    assert_eq!(wait_any(&[&a, &b, &c], None).unwrap(), (Event::new(9, 9), 1));
    assert_eq!(wait_any(&[&a, &b, &c], None).unwrap(), (Event::new(3, 1), 2));
    assert!(matches!(wait_any(&[&a, &b, &c], Some(Duration::ZERO)), Err(Error::TimedOut)));
}

#[test]
fn wait_any_errors() {
    assert!(matches!(wait_any(&[], None), Err(Error::Invalid(_))));
    let (a, b) = (EventQueue::new(), EventQueue::new());
    a.close();
    // One queue still open: a timeout, not `Closed`.
    assert!(matches!(wait_any(&[&a, &b], Some(Duration::from_millis(1))), Err(Error::TimedOut)));
    b.close();
    assert!(matches!(wait_any(&[&a, &b], None), Err(Error::Closed)));
}

#[test]
fn wait_any_times_out_not_early() {
    let rt = rt(1);
    let q = EventQueue::new();
    let d = Duration::from_millis(5);
    let (t0, r) = rt
        .block_on(move || {
            let t0 = Instant::now();
            (t0, wait_any(&[&q], Some(d)))
        })
        .unwrap();
    assert!(t0.elapsed() >= d);
    assert!(matches!(r, Err(Error::TimedOut)));
    let t0 = Instant::now();
    assert!(matches!(wait_any(&[&EventQueue::new()], Some(d)), Err(Error::TimedOut)));
    assert!(t0.elapsed() >= d);
}

#[test]
fn wait_any_from_uthreads_and_threads() {
    let rt = rt(2);
    let qs: Vec<EventQueue> = (0..3).map(|_| EventQueue::new()).collect();
    let mut hs = Vec::new();
    for _ in 0..3 {
        let qs = qs.clone();
        hs.push(rt.spawn(move || wait_any(&[&qs[0], &qs[1], &qs[2]], None).unwrap()).unwrap());
    }
    let ts: Vec<_> = (0..3)
        .map(|_| {
            let qs = qs.clone();
            std::thread::spawn(move || wait_any(&[&qs[0], &qs[1], &qs[2]], None).unwrap())
        })
        .collect();
    for (i, q) in qs.iter().enumerate() {
        q.post(Event::new(i as u32, 10 + i as u64)).unwrap();
        q.post(Event::new(i as u32, 20 + i as u64)).unwrap();
    }
    let got = watchdog(30, "wait_any from uthreads and threads", String::new, move || {
        let mut got: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        got.extend(ts.into_iter().map(|t| t.join().unwrap()));
        got
    });
    let mut payloads: Vec<u64> = got
        .iter()
        .map(|(e, i)| {
            assert_eq!(e.kind as usize, *i, "the index names the queue the event came from");
            e.payload
        })
        .collect();
    payloads.sort();
    assert_eq!(payloads, vec![10, 11, 12, 20, 21, 22]);
    assert!(qs.iter().all(|q| q.is_empty()));
}

/// Many posters (uthreads and threads) and many waiters (uthreads and
/// threads, each on all the queues): every event is taken exactly once, and
/// since each waiter takes exactly its quota with no timeout, a wake-up lost
/// while an event waits would leave a waiter asleep forever (the watchdog
/// fails the test then).
#[test]
fn stress_many_waiters_many_posters_exact() {
    const QUEUES: usize = 3;
    const UWAITERS: usize = 12;
    const TWAITERS: usize = 2;
    const QUOTA: u64 = 150;
    const POSTERS: u64 = 6;
    const TOTAL: u64 = (UWAITERS + TWAITERS) as u64 * QUOTA;
    const PER_POSTER: u64 = TOTAL / POSTERS;
    let rt = rt(2);
    let qs: Arc<Vec<EventQueue>> = Arc::new((0..QUEUES).map(|_| EventQueue::new()).collect());
    let seen = Arc::new(Mutex::new(vec![0u8; TOTAL as usize]));
    let taken = Arc::new(AtomicU64::new(0));
    let t2 = taken.clone();
    watchdog(
        60,
        "event queue stress",
        move || format!("{} of {TOTAL} events taken", t2.load(SeqCst)),
        move || {
            let take = {
                let (qs, seen, taken) = (qs.clone(), seen.clone(), taken.clone());
                move || {
                    for _ in 0..QUOTA {
                        let (e, i) = wait_any(&[&qs[0], &qs[1], &qs[2]], None).unwrap();
                        assert_eq!(e.kind as usize, i);
                        seen.lock().unwrap()[e.payload as usize] += 1;
                        taken.fetch_add(1, SeqCst);
                    }
                }
            };
            let mut us: Vec<_> = (0..UWAITERS).map(|_| rt.spawn(take.clone()).unwrap()).collect();
            let ts: Vec<_> = (0..TWAITERS).map(|_| std::thread::spawn(take.clone())).collect();
            let post = |p: u64| {
                let qs = qs.clone();
                move || {
                    for k in 0..PER_POSTER {
                        let id = p * PER_POSTER + k;
                        let qi = (id % QUEUES as u64) as usize;
                        qs[qi].post(Event::new(qi as u32, id)).unwrap();
                        if k % 16 == 0 {
                            percore_lwkt::yield_now();
                        }
                    }
                }
            };
            us.extend((0..POSTERS - 2).map(|p| rt.spawn(post(p)).unwrap()));
            let tp: Vec<_> = (POSTERS - 2..POSTERS).map(|p| std::thread::spawn(post(p))).collect();
            for h in us {
                h.join().unwrap();
            }
            for t in ts.into_iter().chain(tp) {
                t.join().unwrap();
            }
            let seen = seen.lock().unwrap();
            let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, &n)| n != 1).take(5).collect();
            assert!(wrong.is_empty(), "events not taken exactly once (id, times): {wrong:?}");
            assert!(qs.iter().all(|q| q.is_empty()));
        },
    );
}

/// Regression: `wait_any` on a closed (empty) queue and an open one must
/// block on the open one. It used to treat the closed queue as "ready",
/// retry at once and spin: a uthread then never gave its worker back, so
/// on a 1-worker runtime the uthread that would post never ran.
#[test]
fn wait_any_blocks_on_the_open_queue_when_another_is_closed() {
    let (closed, open, ceq) = (EventQueue::new(), EventQueue::new(), Ceq::new(1, Coalesce::Or));
    closed.close();
    ceq.close();
    let (c2, o2, q2) = (closed.clone(), open.clone(), ceq.clone());
    // NOTE: the runtime lives in the watched closure: on a hang it leaks
    // instead of blocking the test in its drop.
    let r = watchdog(30, "wait_any with a closed queue", String::new, move || {
        let rt = rt(1);
        let waiter = rt.spawn(move || wait_any(&[&c2, &q2, &o2], None)).unwrap();
        let poster = rt
            .spawn(move || {
                percore_evq::sleep(Duration::from_millis(2)).unwrap();
                open.post(Event::new(5, 5)).unwrap();
            })
            .unwrap();
        poster.join().unwrap();
        waiter.join().unwrap()
    });
    assert_eq!(r.unwrap(), (Event::new(5, 5), 2));
    // Every queue closed and empty: `Closed`, at once.
    assert!(matches!(wait_any(&[&closed, &ceq], None), Err(Error::Closed)));
}
