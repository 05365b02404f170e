//! Issue 16, item 6: panicking zone hooks must never use up capacity.
//!
//! Scenarios, each on a zone with a small `max_items` (cached and no-cache):
//! * `init` panics once: it used to leave a phantom item (counted in
//!   `stats.items`, never handed out), so a `max_items(4)` no-cache zone
//!   could only ever hand out 3;
//! * `ctor` panics once: the item it ran on was lost, so a `max_items(1)`
//!   zone was then always `Full`;
//! * `dtor` panics once: the freed item was lost the same way.
//!
//! Now the panic propagates to the caller of `alloc`/`free` after the
//! zone's accounting is settled: raw memory goes back to the keg (`init`),
//! and an item whose `ctor`/`dtor` panicked goes back to the cache as the
//! hook left it. Every item of the limit stays allocatable.

use percore_smr::Smr;
use percore_zone::{SmrZone, Zone};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

/// A switch that makes a hook panic exactly once.
fn once() -> (Arc<AtomicBool>, impl Fn() + Send + Sync + 'static) {
    let armed = Arc::new(AtomicBool::new(false));
    let a = armed.clone();
    (armed, move || {
        if a.swap(false, SeqCst) {
            panic!("hook panics (on purpose)");
        }
    })
}

/// All `n` items of the limit can be held at once.
fn assert_full_capacity<T: Send>(zone: &Zone<T>, n: usize) {
    let held: Vec<_> = (0..n).map(|i| zone.try_alloc().unwrap_or_else(|e| panic!("item {i} of {n}: {e}"))).collect();
    assert!(zone.try_alloc().is_err(), "the limit still holds");
    assert_eq!(zone.stats().items, n as u64);
    drop(held);
}

#[test]
fn a_panicking_init_leaves_no_phantom_item() {
    for nocache in [true, false] {
        let (armed, boom) = once();
        let zone = Zone::builder(&format!("issue16.init.{nocache}"), move || {
            boom();
            0u64
        })
        .max_items(4)
        .no_cache(nocache)
        .build()
        .unwrap();
        armed.store(true, SeqCst);
        assert!(catch_unwind(AssertUnwindSafe(|| zone.try_alloc().map(drop))).is_err(), "init's panic propagates");
        assert_full_capacity(&zone, 4);
    }
}

#[test]
fn a_panicking_ctor_loses_no_item() {
    for nocache in [true, false] {
        let (armed, boom) = once();
        let zone = Zone::builder(&format!("issue16.ctor.{nocache}"), || 0u64)
            .ctor(move |_| boom())
            .max_items(1)
            .no_cache(nocache)
            .build()
            .unwrap();
        armed.store(true, SeqCst);
        assert!(catch_unwind(AssertUnwindSafe(|| zone.try_alloc().map(drop))).is_err(), "ctor's panic propagates");
        assert_full_capacity(&zone, 1);
    }
}

#[test]
fn a_panicking_dtor_loses_no_item() {
    for nocache in [true, false] {
        let (armed, boom) = once();
        let zone = Zone::builder(&format!("issue16.dtor.{nocache}"), || 0u64)
            .dtor(move |_| boom())
            .max_items(1)
            .no_cache(nocache)
            .build()
            .unwrap();
        let item = zone.try_alloc().unwrap();
        armed.store(true, SeqCst);
        assert!(catch_unwind(AssertUnwindSafe(move || drop(item))).is_err(), "dtor's panic propagates");
        assert_full_capacity(&zone, 1);
    }
}

#[test]
fn smr_zone_hooks_that_panic_lose_no_item() {
    let smr = Smr::new("issue16.smrzone").unwrap();
    let (ctor_armed, ctor_boom) = once();
    let (dtor_armed, dtor_boom) = once();
    let zone = SmrZone::builder("issue16.smrzone", &smr, || AtomicU64::new(0))
        .ctor(move |_| ctor_boom())
        .dtor(move |_| dtor_boom())
        .max_items(1)
        .build()
        .unwrap();
    let wait = std::time::Duration::from_secs(60);
    ctor_armed.store(true, SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(|| zone.alloc_wait(wait).map(drop))).is_err());
    let item = zone.alloc_wait(wait).expect("the item survived the ctor panic");
    dtor_armed.store(true, SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(item))).is_err());
    drop(zone.alloc_wait(wait).expect("the item survived the dtor panic"));
}
