//! `Ceq`: Or / Add / Last coalescing, order of ids, ids out of range,
//! close, blocking receivers, and a bounded stress test whose merged sums
//! must come out exact.

mod common;

use common::watchdog;
use percore_evq::{Ceq, Coalesce, Error, Queue};
use percore_lwkt::Runtime;
use std::time::Duration;

fn take(q: &Ceq) -> Option<(u32, u64)> {
    q.try_recv().map(|e| (e.kind, e.payload))
}

#[test]
fn or_merges_bits() {
    let q = Ceq::new(4, Coalesce::Or);
    q.post(1, 0b001).unwrap();
    q.post(1, 0b100).unwrap();
    q.post(1, 0b001).unwrap();
    assert_eq!(take(&q), Some((1, 0b101)));
    assert_eq!(take(&q), None);
    // Taken: the slot starts from zero again.
    q.post(1, 0b010).unwrap();
    assert_eq!(take(&q), Some((1, 0b010)));
}

#[test]
fn add_sums_wrapping() {
    let q = Ceq::new(2, Coalesce::Add);
    for _ in 0..10 {
        q.post(0, 3).unwrap();
    }
    q.post(1, u64::MAX).unwrap();
    q.post(1, 2).unwrap();
    assert_eq!(take(&q), Some((0, 30)));
    assert_eq!(take(&q), Some((1, 1)));
}

#[test]
fn last_keeps_the_latest() {
    let q = Ceq::new(2, Coalesce::Last);
    q.post(0, 7).unwrap();
    q.post(0, 5).unwrap();
    q.post(0, 9).unwrap();
    assert_eq!(take(&q), Some((0, 9)));
}

#[test]
fn ids_come_out_in_order_of_first_post() {
    let q = Ceq::new(8, Coalesce::Add);
    for id in [5, 2, 7, 2, 5, 0] {
        q.post(id, 1).unwrap();
    }
    let order: Vec<_> = std::iter::from_fn(|| take(&q)).collect();
    assert_eq!(order, vec![(5, 2), (2, 2), (7, 1), (0, 1)]);
}

#[test]
fn id_out_of_range_is_an_error() {
    let q = Ceq::new(3, Coalesce::Or);
    assert_eq!(q.ids(), 3);
    assert!(matches!(q.post(3, 1), Err(Error::Invalid(_))));
    assert!(matches!(q.post(u32::MAX, 1), Err(Error::Invalid(_))));
    assert_eq!(take(&q), None, "a refused post queues nothing");
    let empty = Ceq::new(0, Coalesce::Or);
    assert!(matches!(empty.post(0, 1), Err(Error::Invalid(_))));
}

#[test]
fn close_delivers_pending_then_closed() {
    let q = Ceq::new(2, Coalesce::Or);
    q.post(1, 4).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.post(0, 1), Err(Error::Closed)));
    assert_eq!(q.recv(None).unwrap().payload, 4);
    assert!(matches!(q.recv(None), Err(Error::Closed)));
}

#[test]
fn recv_times_out_and_blocks_until_posted() {
    let q = Ceq::new(2, Coalesce::Or);
    assert!(matches!(q.recv(Some(Duration::from_millis(1))), Err(Error::TimedOut)));
    let rt = Runtime::builder().workers(2).build().unwrap();
    let q2 = q.clone();
    let h = rt.spawn(move || q2.recv(None)).unwrap();
    q.post(1, 8).unwrap();
    let e = watchdog(30, "ceq recv", String::new, move || h.join().unwrap().unwrap());
    assert_eq!((e.kind, e.payload), (1, 8));
}

/// Posters add 1 to random-ish ids; receivers (uthreads and a thread) take
/// merged counts until the grand total is reached. The per-id sums must be
/// exact: coalescing never loses or duplicates a count.
#[test]
fn stress_add_counts_are_exact() {
    const IDS: usize = 8;
    const POSTERS: u64 = 4;
    const PER: u64 = 2000;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let q = Ceq::new(IDS, Coalesce::Add);
    let sums = watchdog(60, "ceq stress", String::new, move || {
        let posters: Vec<_> = (0..POSTERS)
            .map(|p| {
                let q = q.clone();
                rt.spawn(move || {
                    for k in 0..PER {
                        q.post(((p * 7 + k * 3) % IDS as u64) as u32, 1).unwrap();
                        if k % 64 == 0 {
                            percore_lwkt::yield_now();
                        }
                    }
                })
                .unwrap()
            })
            .collect();
        let mut sums = [0u64; IDS];
        let mut total = 0;
        while total < POSTERS * PER {
            let e = q.recv(None).unwrap();
            assert!(e.payload > 0, "an id queued with nothing merged in");
            sums[e.kind as usize] += e.payload;
            total += e.payload;
        }
        for p in posters {
            p.join().unwrap();
        }
        assert!(q.try_recv().is_none());
        sums
    });
    let mut expect = [0u64; IDS];
    for p in 0..POSTERS {
        for k in 0..PER {
            expect[((p * 7 + k * 3) % IDS as u64) as usize] += 1;
        }
    }
    assert_eq!(sums, expect);
}
