//! The watchdog naps while every worker sleeps (`worker/nap.rs`): an idle
//! runtime makes no wake-ups, and the first worker to wake ends the nap
//! before it runs anything, so a stall after a nap is still seen.
//!
//! In its own test binary: the descheduled-worker test of
//! `issue_watchdog.rs` runs a nice-19 worker whose every blocked sample counts
//! towards a stall, and this test's polling of the stats tree would compete
//! with it for the tree's lock.
mod common;
use common::{nap_twice, stat, watchdog};
use percore_lwkt::Runtime;
use std::time::Duration;

#[test]
fn an_idle_runtime_naps_and_a_stall_after_the_nap_is_still_seen() {
    watchdog("watchdog_nap", || {
        let rt =
            Runtime::builder().workers(2).name("wd-nap").watchdog(Some(Duration::from_millis(20))).build().unwrap();
        // Both workers idle: the watchdog naps after a tick (5 ms) of it.
        let t0 = std::time::Instant::now();
        while stat("lwkt.wd-nap.watchdog_naps") == 0 {
            assert!(t0.elapsed() < Duration::from_secs(20), "no nap in 20 s of idle");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The worker that wakes for the spawn ends the nap, so the stalls
        // are counted as they are without one.
        nap_twice(&rt);
        assert_eq!(stat("lwkt.wd-nap.w0.stalls") + stat("lwkt.wd-nap.w1.stalls"), 2);
        // And once idle again, it naps again.
        let naps = stat("lwkt.wd-nap.watchdog_naps");
        while stat("lwkt.wd-nap.watchdog_naps") == naps {
            assert!(t0.elapsed() < Duration::from_secs(40), "no second nap");
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}
