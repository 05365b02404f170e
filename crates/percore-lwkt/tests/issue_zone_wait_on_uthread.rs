//! Issue 16, "also seen": `Zone::alloc_wait` on a uthread blocked the whole
//! worker. Scenario: a one-worker runtime, a `max_items(1)` zone whose item
//! uthread A holds; uthread B calls `alloc_wait(2 s)`; A frees the item
//! after 10 ms. B used to wait on an OS condition variable, so A never ran
//! again and B timed out after 2 s. Now a wait on a uthread parks the
//! uthread (percore-lwkt installs `percore_cpu::coop`'s nap hook), and B
//! gets the item soon after A frees it.

mod common;
use common::watchdog;
use percore_lwkt::Runtime;
use percore_zone::Zone;
use std::time::{Duration, Instant};

#[test]
fn alloc_wait_on_a_uthread_parks_the_uthread_not_the_worker() {
    watchdog("zone wait on a uthread", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let zone = Zone::builder("issue16.zone-wait", || 0u64).max_items(1).build().unwrap();
        let r = rt
            .block_on(move || {
                let held = zone.try_alloc().unwrap();
                let z = zone.clone();
                let b = percore_lwkt::spawn(move || {
                    let t = Instant::now();
                    let got = z.alloc_wait(Duration::from_secs(2)).map(drop);
                    (got.is_ok(), t.elapsed())
                })
                .unwrap();
                percore_lwkt::yield_now(); // let B start waiting
                percore_lwkt::sleep(Duration::from_millis(10)).unwrap();
                drop(held);
                b.join().unwrap()
            })
            .unwrap();
        assert!(r.0, "B timed out after {:?}", r.1);
        assert!(r.1 < Duration::from_secs(1), "B waited {:?}", r.1);
    });
}
