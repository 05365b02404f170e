//! Issue 16 (item 3, zone hooks): `fini` and `T`'s `Drop` run at reclaim and
//! at teardown, where no caller can take a panic. Scenario: a zone whose
//! `fini` panics once, and a zone whose items' `Drop` panics once; the items
//! are freed, the zone reclaimed and dropped. Before the fix the panic
//! escaped `reclaim` (and a second one during the unwind aborted the
//! process); now each is caught, counted under `zone.<name>.hook_panics`,
//! and every item's memory is still given back.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use percore_zone::Zone;

fn hook_panics(name: &str) -> u64 {
    percore_cpu::stats::get(&format!("zone.{name}.hook_panics")).expect("the zone reports hook_panics")
}

#[test]
fn a_panicking_fini_at_reclaim_is_caught_and_counted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inits = Arc::new(AtomicUsize::new(0));
    let (c, i) = (calls.clone(), inits.clone());
    let zone = Zone::builder("issue16.fini", move || i.fetch_add(1, SeqCst) as u64)
        .fini(move |_| {
            if c.fetch_add(1, SeqCst) == 0 {
                panic!("fini fails once");
            }
        })
        .no_cache(false)
        .build()
        .unwrap();
    let items: Vec<_> = (0..8).map(|_| zone.try_alloc().unwrap()).collect();
    drop(items);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| zone.reclaim()));
    assert!(r.is_ok(), "a fini panic escaped reclaim");
    assert_eq!(hook_panics("issue16.fini"), 1);
    // NOTE: a slab's worth of items is constructed at once; each of them is
    // finalised, the one whose fini panicked included.
    assert_eq!(calls.load(SeqCst), inits.load(SeqCst), "every constructed item was finalised");
    assert_eq!(zone.stats().items, 0, "no item is counted as still allocated");
    drop(zone);
}

struct Grumpy(Arc<AtomicUsize>);

impl Drop for Grumpy {
    fn drop(&mut self) {
        if self.0.fetch_add(1, SeqCst) == 0 {
            panic!("drop fails once");
        }
    }
}

#[test]
fn a_panicking_drop_at_teardown_is_caught() {
    let drops = Arc::new(AtomicUsize::new(0));
    let inits = Arc::new(AtomicUsize::new(0));
    let (d, i) = (drops.clone(), inits.clone());
    let zone = Zone::new("issue16.drop", move || {
        i.fetch_add(1, SeqCst);
        Grumpy(d.clone())
    })
    .unwrap();
    let items: Vec<_> = (0..4).map(|_| zone.try_alloc().unwrap()).collect();
    drop(items);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(zone)));
    assert!(r.is_ok(), "a Drop panic escaped the zone's teardown");
    assert_eq!(drops.load(SeqCst), inits.load(SeqCst), "every constructed item was dropped");
}
