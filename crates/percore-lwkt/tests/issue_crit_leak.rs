//! Issue 16, item 4: a uthread's critical section must not outlive it.
//!
//! Scenario: on a one-worker runtime, a uthread returns inside
//! `crit_enter()` (or `mem::forget`s a `critical()` guard, which is safe
//! code). The count used to live on the worker only, so every later uthread
//! on that worker was refused from blocking ("cannot block inside a critical
//! section") and `yield_now` silently did nothing.
//!
//! Now the count is the uthread's (saved and restored around each switch);
//! a uthread that exits with a non-zero count has it reset, and the leak is
//! counted in the worker's stats as `lwkt.<name>.w<i>.crit_leaks`.

mod common;
use common::watchdog;
use percore_lwkt::Runtime;
use std::time::Duration;

fn leaks(name: &str) -> u64 {
    let key = format!("lwkt.{name}.w0.crit_leaks");
    percore_cpu::stats::snapshot().into_iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| v)
}

#[test]
fn a_uthread_that_exits_inside_crit_enter_does_not_poison_its_worker() {
    watchdog("crit_enter leak", || {
        let rt = Runtime::builder().name("issue16-crit").workers(1).build().unwrap();
        rt.block_on(percore_lwkt::crit_enter).unwrap();
        // A later uthread on the same worker may block again.
        let r = rt.block_on(|| percore_lwkt::sleep(Duration::from_millis(1))).unwrap();
        assert!(r.is_ok(), "{r:?}");
        assert!(!rt.block_on(percore_lwkt::in_critical).unwrap());
        assert_eq!(leaks("issue16-crit"), 1);
    });
}

#[test]
fn a_forgotten_critical_guard_does_not_poison_its_worker() {
    watchdog("forgotten guard", || {
        let rt = Runtime::builder().name("issue16-forget").workers(1).build().unwrap();
        rt.block_on(|| std::mem::forget(percore_lwkt::critical())).unwrap();
        let r = rt.block_on(|| percore_lwkt::sleep(Duration::from_millis(1))).unwrap();
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(leaks("issue16-forget"), 1);
    });
}

#[test]
fn a_critical_section_stays_with_its_uthread_and_balanced_ones_leak_nothing() {
    watchdog("balanced", || {
        let rt = Runtime::builder().name("issue16-balanced").workers(1).build().unwrap();
        rt.block_on(|| {
            let h = percore_lwkt::spawn(|| {
                // Blocking is refused inside the section; the section is
                // this uthread's, and it ends it.
                let c = percore_lwkt::critical();
                let refused = percore_lwkt::sleep(Duration::from_millis(1)).is_err();
                drop(c);
                refused && percore_lwkt::sleep(Duration::from_millis(1)).is_ok()
            })
            .unwrap();
            assert!(h.join().unwrap());
        })
        .unwrap();
        assert_eq!(leaks("issue16-balanced"), 0);
    });
}
