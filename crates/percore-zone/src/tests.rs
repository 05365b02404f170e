//! Unit tests of the engine through the public types, plus SMR-zone logic
//! driven by a fake domain whose expiry the test controls.

use crate::cache::{Cache, Config, Hooks};
use crate::grace::fake::FakeGrace;
use crate::{Error, SmrZone, Zone};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts of hook calls.
#[derive(Default)]
struct Calls {
    init: AtomicUsize,
    fini: AtomicUsize,
    ctor: AtomicUsize,
    dtor: AtomicUsize,
}

fn counted_zone(name: &str, calls: &Arc<Calls>) -> crate::Builder<u64> {
    let (a, b, c, d) = (calls.clone(), calls.clone(), calls.clone(), calls.clone());
    Zone::builder(name, move || {
        a.init.fetch_add(1, SeqCst);
        7u64
    })
    .fini(move |v| {
        assert_eq!(*v, 7, "fini must see the constructed state");
        b.fini.fetch_add(1, SeqCst);
    })
    .ctor(move |_| {
        c.ctor.fetch_add(1, SeqCst);
    })
    .dtor(move |v| {
        *v = 7; // restore the constructed state
        d.dtor.fetch_add(1, SeqCst);
    })
}

#[test]
fn init_once_ctor_dtor_every_time_fini_on_drop() {
    let calls = Arc::new(Calls::default());
    let zone = counted_zone("t.hooks", &calls).build().unwrap();
    for _ in 0..1000 {
        let mut b = zone.try_alloc().unwrap();
        assert_eq!(*b, 7);
        *b = 99;
    }
    assert_eq!(calls.ctor.load(SeqCst), 1000);
    assert_eq!(calls.dtor.load(SeqCst), 1000);
    // One bucket's worth was constructed once and reused.
    let inits = calls.init.load(SeqCst);
    assert!((1..=crate::tuning::BUCKET_MAX).contains(&inits), "{inits}");
    assert_eq!(calls.fini.load(SeqCst), 0);
    drop(zone);
    assert_eq!(calls.fini.load(SeqCst), inits, "drop runs fini on every constructed item");
}

#[test]
fn items_are_unique_and_survive_bucket_exchanges() {
    let zone = Zone::new("t.unique", || [0u8; 64]).unwrap();
    let mut held = Vec::new();
    let mut seen = HashSet::new();
    for round in 0..3 {
        for _ in 0..2000 {
            let p = zone.alloc_raw().unwrap();
            assert!(seen.insert(p.as_ptr() as usize) || round > 0);
            held.push(p);
        }
        let set: HashSet<_> = held.iter().map(|p| p.as_ptr() as usize).collect();
        assert_eq!(set.len(), held.len(), "an item was handed out twice");
        for p in held.drain(..) {
            // SAFETY: allocated above, freed once.
            unsafe { zone.free_raw(p) };
        }
    }
    let s = zone.stats();
    assert_eq!((s.allocs, s.frees), (6000, 6000));
    assert_eq!(s.items, 2000, "reuse, not growth");
    assert!(s.depot_items > 0);
}

#[test]
fn thread_exit_returns_its_buckets_to_the_depot() {
    let calls = Arc::new(Calls::default());
    let zone = counted_zone("t.exit", &calls).build().unwrap();
    // NOTE: `join` on a plain thread returns after its thread-local
    // destructors ran (a scoped thread reports completion before them).
    let z = zone.clone();
    std::thread::spawn(move || {
        let v: Vec<_> = (0..10).map(|_| z.try_alloc().unwrap()).collect();
        drop(v);
        assert_eq!(z.stats().depot_items, 0, "cached privately while alive");
    })
    .join()
    .unwrap();
    let s = zone.stats();
    assert_eq!(s.depot_items, s.items, "every cached item went back to the depot");
    assert!(s.items >= 10);
    // And the main thread can use them.
    let before = calls.init.load(SeqCst);
    let v: Vec<_> = (0..10).map(|_| zone.try_alloc().unwrap()).collect();
    assert_eq!(calls.init.load(SeqCst), before, "reused, not constructed again");
    drop(v);
    drop(zone);
    assert_eq!(calls.fini.load(SeqCst), calls.init.load(SeqCst));
}

#[test]
fn cross_thread_frees() {
    /// An item pointer on its way to the freeing thread (keeps provenance).
    struct SendPtr(std::ptr::NonNull<u64>);
    // SAFETY: the pointer is only used by the receiving thread.
    unsafe impl Send for SendPtr {}
    let zone = Zone::new("t.cross", || 0u64).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..5000 {
                tx.send(SendPtr(zone.alloc_raw().unwrap())).unwrap();
            }
            drop(tx);
            // Settle this thread's fast-path counts now: a scoped thread's
            // exit drain may run after the scope ends.
            let _ = zone.stats();
        });
        s.spawn(|| {
            for p in rx {
                let p = p.0;
                // SAFETY: allocated by the other thread, freed once here.
                unsafe { zone.free_raw(p) };
            }
            let _ = zone.stats();
        });
    });
    let s = zone.stats();
    assert_eq!((s.allocs, s.frees), (5000, 5000));
}

#[test]
fn limits_fail_clearly_and_waiters_get_freed_items() {
    let zone = Zone::builder("t.limit", || 0u32).max_items(10).build().unwrap();
    let mut held: Vec<_> = (0..10).map(|_| zone.try_alloc().unwrap()).collect();
    match zone.try_alloc() {
        Err(Error::Full { limit: 10, zone }) => assert_eq!(zone, "t.limit"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(matches!(zone.alloc_wait(Duration::from_millis(5)), Err(Error::Timeout { .. })));
    assert_eq!(zone.stats().fails, 2);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| zone.alloc_wait(Duration::from_secs(60)).map(|b| *b));
        // Wait (bounded) until the waiter sleeps, then free one item.
        let start = Instant::now();
        while zone.stats().sleepers == 0 {
            assert!(start.elapsed() < Duration::from_secs(60), "waiter never slept");
            std::thread::yield_now();
        }
        held.pop();
        assert_eq!(waiter.join().unwrap().unwrap(), 0);
    });
    assert_eq!(zone.stats().items, 10);
}

#[test]
fn reclaim_returns_free_slabs_and_runs_fini() {
    let calls = Arc::new(Calls::default());
    let zone = counted_zone("t.reclaim", &calls).build().unwrap();
    let held: Vec<_> = (0..3000).map(|_| zone.alloc_raw().unwrap()).collect();
    let slabs = zone.stats().slabs;
    assert!(slabs > 1);
    let items = zone.stats().items as usize; // allocated plus bucket fill
    for p in held {
        // SAFETY: allocated above, freed once.
        unsafe { zone.free_raw(p) };
    }
    let r = zone.reclaim();
    assert_eq!(r.items, items);
    assert_eq!(r.slabs as u64, slabs);
    let s = zone.stats();
    assert_eq!((s.items, s.slabs, s.cached), (0, 0, 0));
    assert_eq!(calls.fini.load(SeqCst), calls.init.load(SeqCst));
    // Still usable.
    assert_eq!(*zone.try_alloc().unwrap(), 7);
}

#[test]
fn no_cache_mode_allocates_each_item() {
    let calls = Arc::new(Calls::default());
    let zone = counted_zone("t.nocache", &calls).no_cache(true).max_items(3).build().unwrap();
    let v: Vec<_> = (0..3).map(|_| zone.try_alloc().unwrap()).collect();
    assert!(zone.try_alloc().is_err());
    drop(v);
    assert_eq!(calls.init.load(SeqCst), 3);
    assert_eq!(calls.fini.load(SeqCst), 3, "freed at once");
    assert_eq!(zone.stats().slabs, 0);
}

#[test]
fn threads_without_a_slot_use_the_depot() {
    let zone = Zone::builder("t.noslot", || 1u8).participants(0).build().unwrap();
    let v: Vec<_> = (0..100).map(|_| zone.try_alloc().unwrap()).collect();
    drop(v);
    let s = zone.stats();
    assert_eq!((s.allocs, s.frees), (100, 100));
    assert_eq!(s.depot_items, s.items);
}

#[test]
fn bad_configuration_is_an_error() {
    assert!(matches!(Zone::new("", || 0u8), Err(Error::Config(_))));
    assert!(matches!(Zone::builder("t.zero", || 0u8).max_items(0).build(), Err(Error::Config(_))));
}

#[test]
fn stats_are_in_the_tree() {
    let zone = Zone::new("t.tree", || 0u8).unwrap();
    drop(zone.try_alloc().unwrap());
    let all = percore_cpu::stats::with_prefix("zone.t.tree.");
    for key in ["allocs", "frees", "fails", "items", "cached", "slabs", "bucket_size", "smr_waiting"] {
        assert!(all.iter().any(|(k, _)| k.ends_with(key)), "{key} missing from {all:?}");
    }
    drop(zone);
    assert!(percore_cpu::stats::with_prefix("zone.t.tree.").is_empty());
}

fn fake_cache(limit: Option<usize>, grace: &Arc<FakeGrace>, finis: &Arc<AtomicUsize>) -> Arc<Cache<u64>> {
    let f = finis.clone();
    let cfg = Config { name: "t.fake".into(), limit, nocache: false, participants: 8 };
    let hooks = Hooks {
        init: Box::new(|| 1),
        fini: Some(Box::new(move |_| {
            f.fetch_add(1, SeqCst);
        })),
        ctor: None,
        dtor: None,
        lost_panics: Default::default(),
    };
    Cache::new(cfg, hooks, Some(grace.clone())).unwrap()
}

#[test]
fn smr_items_are_not_reused_before_their_tag_expires() {
    let grace = Arc::new(FakeGrace::default());
    let finis = Arc::new(AtomicUsize::new(0));
    let cache = fake_cache(None, &grace, &finis);
    let n = 10 * crate::tuning::BUCKET_MAX;
    let first: Vec<_> = (0..n).map(|_| cache.alloc(None).unwrap()).collect();
    let freed: HashSet<_> = first.iter().map(|p| p.as_ptr() as usize).collect();
    for p in first {
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(p) };
    }
    assert!(cache.stats().smr_waiting > 0);
    // Nothing expired: every allocation is fresh memory.
    let second: Vec<_> = (0..n).map(|_| cache.alloc(None).unwrap()).collect();
    assert!(second.iter().all(|p| !freed.contains(&(p.as_ptr() as usize))), "reused before expiry");
    // Reclaim must not finalise unexpired items.
    cache.reclaim();
    assert_eq!(finis.load(SeqCst), 0);
    grace.expire_all();
    let third = cache.alloc(None).unwrap();
    assert!(freed.contains(&(third.as_ptr() as usize)), "expired bucket reused");
    for p in second.into_iter().chain([third]) {
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(p) };
    }
    grace.expire_all();
    drop(cache);
}

#[test]
fn smr_limited_zone_waits_for_expiry() {
    let grace = Arc::new(FakeGrace::default());
    let finis = Arc::new(AtomicUsize::new(0));
    let cache = fake_cache(Some(4), &grace, &finis);
    let v: Vec<_> = (0..4).map(|_| cache.alloc(None).unwrap()).collect();
    for p in v {
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(p) };
    }
    assert!(matches!(cache.alloc(None), Err(Error::Full { .. })));
    assert!(matches!(cache.alloc(Some(Instant::now() + Duration::from_millis(5))), Err(Error::Timeout { .. })));
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while cache.stats().sleepers == 0 && start.elapsed() < Duration::from_secs(60) {
                std::thread::yield_now();
            }
            grace.expire_all();
        });
        let p = cache.alloc(Some(Instant::now() + Duration::from_secs(60))).unwrap();
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(p) };
    });
    grace.expire_all();
    drop(cache);
    assert_eq!(finis.load(SeqCst), 4);
}

#[test]
fn real_smr_zone_round_trip_and_in_section_wait_is_an_error() {
    let smr = percore_smr::Smr::new("t.smrzone").unwrap();
    let zone = SmrZone::builder("t.smrzone", &smr, || 3u64).max_items(1).build().unwrap();
    drop(zone.try_alloc().unwrap());
    {
        let _g = smr.enter();
        assert!(matches!(zone.alloc_wait(Duration::from_secs(60)), Err(Error::InSection { .. })));
    }
    assert_eq!(*zone.alloc_wait(Duration::from_secs(60)).unwrap(), 3);
}
