//! Loom models of the bucket/depot exchange (`--cfg loom`, see
//! `ci/loom.sh`). Under loom the bucket size shrinks to 2..3 items (see
//! `src/loom.rs`), so a handful of operations per thread fills buckets,
//! trades them at the depot, refills from the slabs, and drains a thread's
//! buckets when it exits. Loom checks that no slot cell is ever touched by
//! two threads at once and explores the interleavings of the depot lock.
#![cfg(loom)]

use loom::thread;
use percore_zone::Zone;
use std::collections::HashSet;
use std::ptr::NonNull;

fn free_all(zone: &Zone<u64>, items: Vec<usize>) {
    for p in items {
        // SAFETY: each was allocated from `zone` and is freed once.
        unsafe { zone.free_raw(NonNull::new(p as *mut u64).unwrap()) };
    }
}

fn alloc_n(zone: &Zone<u64>, n: usize) -> Vec<usize> {
    (0..n).map(|_| zone.alloc_raw().unwrap().as_ptr() as usize).collect()
}

/// Two threads allocate and free enough to push full buckets into the depot
/// and pull them out again; the spawned thread exits with cached buckets.
#[test]
fn exchange_and_exit_drain() {
    loom::model(|| {
        let zone = Zone::builder("loom.exchange", || 0u64).participants(4).build().unwrap();
        let z2 = zone.clone();
        let t = thread::spawn(move || {
            let mine = alloc_n(&z2, 5);
            free_all(&z2, mine);
            let again = alloc_n(&z2, 1);
            free_all(&z2, again);
        });
        let mine = alloc_n(&zone, 5);
        let uniq: HashSet<_> = mine.iter().collect();
        assert_eq!(uniq.len(), 5);
        free_all(&zone, mine);
        t.join().unwrap();
        let s = zone.stats();
        assert_eq!(s.allocs, s.frees);
        assert_eq!(s.allocs, 11);
        // The spawned thread's buckets came back at its exit.
        let back = alloc_n(&zone, 4);
        free_all(&zone, back);
    });
}

/// Items allocated on one thread and freed on another, with a thread that
/// has no slot (participants(1)) going through the depot's loose bucket.
#[test]
fn cross_thread_free_and_slotless_thread() {
    loom::model(|| {
        let zone = Zone::builder("loom.cross", || 0u64).participants(1).build().unwrap();
        let handed = alloc_n(&zone, 3);
        let z2 = zone.clone();
        let t = thread::spawn(move || {
            free_all(&z2, handed);
            let more = alloc_n(&z2, 2);
            free_all(&z2, more);
        });
        let mine = alloc_n(&zone, 2);
        free_all(&zone, mine);
        t.join().unwrap();
        let s = zone.stats();
        assert_eq!(s.allocs, s.frees);
        assert!(s.items as usize <= 7);
    });
}
