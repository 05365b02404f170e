//! loom model of the IPI FIFO: one producer, one consumer, a ring of two
//! slots (shrunk under loom) and three messages, so the full case is hit.
//! Checks FIFO order, no loss, no duplication, and (through loom's cell
//! tracking) that no slot is read and written concurrently.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_ipi` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use percore_lwkt::__loom::{Ring, CAPACITY};

#[test]
fn fifo_in_order_through_a_full_ring() {
    assert_eq!(CAPACITY, 2);
    loom::model(|| {
        let ring = Arc::new(Ring::<Box<u32>>::new());
        let r = ring.clone();
        let producer = thread::spawn(move || {
            for i in 0..3 {
                // SAFETY: the only producer.
                assert!(unsafe { r.push_wait(Box::new(i), || true) });
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            // SAFETY: the only consumer.
            match unsafe { ring.pop() } {
                Some(v) => got.push(*v),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![0, 1, 2]);
        // SAFETY: as above.
        assert!(unsafe { ring.pop() }.is_none());
    });
}

#[test]
fn drop_frees_unconsumed_messages() {
    loom::model(|| {
        let ring = Arc::new(Ring::<Arc<()>>::new());
        let token = Arc::new(());
        let r = ring.clone();
        let t = token.clone();
        thread::spawn(move || {
            // SAFETY: the only producer.
            let _ = unsafe { r.push(t) };
        })
        .join()
        .unwrap();
        drop(ring);
        assert_eq!(Arc::strong_count(&token), 1);
    });
}
