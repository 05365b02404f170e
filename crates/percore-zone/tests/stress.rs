//! Bounded multi-threaded stress tests (deterministic op counts, no timing
//! assertions). `PERCORE_ZONE_STRESS_ITERS` scales them down (valgrind CI
//! run, `ci/valgrind.sh`), and `PERCORE_ZONE_NOCACHE=1` runs them without
//! caches so that valgrind sees every allocation and free.
//!
//! The SMR test is the type-stability check: readers inside SMR sections
//! read items that writers concurrently free and reallocate; `fini` poisons
//! an item, so a reader that ever saw a finalised (or unmapped, recycled)
//! item would see the poison or crash. Every allocation also claims the item
//! with a swap, so an item handed out twice is caught.

use percore_smr::Smr;
use percore_zone::{SmrZone, Zone};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

const LIVE: u64 = 0x5afe_c0de_0000_0001;
const POISON: u64 = 0xdead_dead_dead_dead;

fn iters(default: usize) -> usize {
    std::env::var("PERCORE_ZONE_STRESS_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A tiny xorshift, so every run does the same operations per thread.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

struct Node {
    magic: AtomicU64,
    in_use: AtomicBool,
    payload: AtomicU64,
}

#[test]
fn smr_readers_always_see_constructed_items() {
    const SLOTS: usize = 64;
    let n = iters(200_000);
    let smr = Smr::new("stress.smr").unwrap();
    let finis = Arc::new(AtomicUsize::new(0));
    let double = Arc::new(AtomicUsize::new(0));
    let f = finis.clone();
    let d = double.clone();
    let zone = SmrZone::builder("stress.smr", &smr, || Node {
        magic: AtomicU64::new(LIVE),
        in_use: AtomicBool::new(false),
        payload: AtomicU64::new(0),
    })
    .fini(move |node| {
        assert_eq!(*node.magic.get_mut(), LIVE, "fini twice");
        *node.magic.get_mut() = POISON;
        f.fetch_add(1, Relaxed);
    })
    .ctor(move |node| {
        if node.in_use.swap(true, AcqRel) {
            d.fetch_add(1, Relaxed);
        }
    })
    .dtor(|node| node.in_use.store(false, Release))
    .build()
    .unwrap();
    let slots: Vec<AtomicPtr<Node>> = (0..SLOTS).map(|_| AtomicPtr::new(ptr::null_mut())).collect();
    let writers_done = AtomicUsize::new(0);
    let bad_reads = AtomicUsize::new(0);
    let reads = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let (zone, slots, writers_done) = (&zone, &slots, &writers_done);
            s.spawn(move || {
                let mut r = rng(w + 1);
                for i in 0..n {
                    let node = zone.alloc_raw().unwrap();
                    // SAFETY: freshly allocated, constructed item.
                    let nref = unsafe { node.as_ref() };
                    assert_eq!(nref.magic.load(Relaxed), LIVE);
                    nref.payload.store(i as u64, Relaxed);
                    let old = slots[(r() as usize) % SLOTS].swap(node.as_ptr(), AcqRel);
                    if let Some(old) = NonNull::new(old) {
                        // SAFETY: unlinked by the swap; freed exactly once.
                        unsafe { zone.free_raw(old) };
                    }
                    if i % 4096 == 0 {
                        zone.reclaim();
                    }
                }
                // Settle this thread's fast-path counts into the stats now
                // (a scoped thread's exit drain may run after the join).
                let _ = zone.stats();
                writers_done.fetch_add(1, Release);
            });
        }
        for rd in 0..2u64 {
            let (smr, slots, writers_done, bad_reads, reads) = (&smr, &slots, &writers_done, &bad_reads, &reads);
            s.spawn(move || {
                let mut r = rng(100 + rd);
                while writers_done.load(Acquire) < 2 {
                    let _g = smr.enter();
                    let p = slots[(r() as usize) % SLOTS].load(Acquire);
                    if p.is_null() {
                        continue;
                    }
                    for _ in 0..8 {
                        // SAFETY: loaded inside the section from a live link:
                        // the zone guarantees a constructed `Node` until the
                        // section ends (type stability).
                        let node = unsafe { &*p };
                        if node.magic.load(Relaxed) != LIVE {
                            bad_reads.fetch_add(1, Relaxed);
                        }
                        std::hint::black_box(node.payload.load(Relaxed));
                        reads.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(bad_reads.load(Relaxed), 0, "a reader saw a finalised item");
    assert_eq!(double.load(Relaxed), 0, "an item was handed out twice");
    for slot in &slots {
        if let Some(p) = NonNull::new(slot.swap(ptr::null_mut(), AcqRel)) {
            // SAFETY: unlinked, freed once.
            unsafe { zone.free_raw(p) };
        }
    }
    let s = zone.stats();
    eprintln!("smr stress: {s:?}, {} reads, {} finis", reads.load(Relaxed), finis.load(Relaxed));
    assert_eq!(s.allocs, s.frees);
    assert_eq!(s.allocs as usize, 2 * n);
    // Freed items were reused after their grace period instead of growing
    // the zone without bound.
    assert!(s.items < (2 * n) as u64, "{s:?}");
    drop(zone);
    let _ = reads.load(Relaxed);
    assert!(finis.load(Relaxed) > 0);
}

#[test]
fn plain_zone_cross_thread_churn_never_double_allocates() {
    let n = iters(300_000);
    let double = Arc::new(AtomicUsize::new(0));
    let d = double.clone();
    let zone = Zone::builder("stress.plain", || (AtomicBool::new(false), [0u64; 7]))
        .ctor(move |(used, _)| {
            if used.swap(true, Relaxed) {
                d.fetch_add(1, Relaxed);
            }
        })
        .dtor(|(used, _)| used.store(false, Relaxed))
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<usize>(1024);
    std::thread::scope(|s| {
        let z = &zone;
        s.spawn(move || {
            let mut r = rng(7);
            let mut local = Vec::new();
            for _ in 0..n {
                let p = z.alloc_raw().unwrap();
                if r().is_multiple_of(2) {
                    tx.send(p.as_ptr() as usize).unwrap();
                } else {
                    local.push(p);
                }
                if local.len() > 300 || r().is_multiple_of(64) {
                    for p in local.drain(..) {
                        // SAFETY: allocated here, freed once.
                        unsafe { z.free_raw(p) };
                    }
                }
            }
            for p in local {
                // SAFETY: allocated here, freed once.
                unsafe { z.free_raw(p) };
            }
            let _ = z.stats(); // settle this thread's counts (see above)
        });
        s.spawn(move || {
            let mut r = rng(9);
            let mut held = Vec::new();
            for p in rx {
                held.push(NonNull::new(p as *mut (AtomicBool, [u64; 7])).unwrap());
                // Allocate some of our own too, so both threads churn.
                if r().is_multiple_of(3) {
                    held.push(z.alloc_raw().unwrap());
                }
                if held.len() > 200 {
                    for p in held.drain(..) {
                        // SAFETY: allocated by either thread, freed once here.
                        unsafe { z.free_raw(p) };
                    }
                }
            }
            for p in held {
                // SAFETY: as above.
                unsafe { z.free_raw(p) };
            }
            let _ = z.stats(); // settle this thread's counts
        });
    });
    assert_eq!(double.load(Relaxed), 0, "an item was handed out twice");
    let s = zone.stats();
    assert_eq!(s.allocs, s.frees);
    zone.reclaim();
}

#[test]
fn limited_zone_under_contention_never_exceeds_its_limit() {
    const LIMIT: usize = 16;
    let n = iters(20_000);
    let zone = Zone::builder("stress.limit", || 0u64).max_items(LIMIT).build().unwrap();
    let peak = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (zone, peak) = (&zone, &peak);
            s.spawn(move || {
                let mut r = rng(t + 50);
                let mut held = Vec::new();
                for _ in 0..n {
                    // 3 threads x 5 < LIMIT: some item is always free, so
                    // waits end (items cached by a waiter are its own).
                    if held.len() < 5 && r().is_multiple_of(2) {
                        // Generous: a stuck waiter fails the test loudly.
                        match zone.alloc_wait(Duration::from_secs(120)) {
                            Ok(b) => held.push(b),
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        held.pop();
                    }
                    peak.fetch_max(zone.stats().items as usize, Relaxed);
                }
            });
        }
    });
    assert!(peak.load(Relaxed) <= LIMIT, "peak {} > limit", peak.load(Relaxed));
}
