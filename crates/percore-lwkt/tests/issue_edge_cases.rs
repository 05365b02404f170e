//! Issue 13: edge cases that crashed or disagreed, each now one documented,
//! tested behaviour.
//!
//! Scenarios:
//! * `stack_size(usize::MAX)` overflowed the rounding (a panic in debug,
//!   silently 16 KiB in release): now `Error::StackSize` from `spawn` and
//!   from `build`; sizes up to `MAX_STACK_SIZE` are accepted;
//! * `percore_lwkt::sleep(Duration::MAX)` returned `TimedOut` at once while
//!   every other wait given `Duration::MAX` sleeps for ever: now it sleeps for
//!   ever too (until the runtime's shutdown cancels the uthread);
//! * `yield_now` inside an SMR section panicked in debug builds and was a
//!   silent no-op in release: now a no-op in both, counted as
//!   `lwkt.<name>.w<i>.yields_refused`.
mod common;
use common::{stat, watchdog};
use percore_lwkt::{Builder, Error, JoinError, Runtime, MAX_STACK_SIZE};
use std::time::Duration;

#[test]
fn huge_stack_sizes_are_a_typed_error() {
    watchdog("stack_size_max", || {
        let e = Runtime::builder().workers(1).stack_size(usize::MAX).build().unwrap_err();
        assert!(matches!(e, Error::StackSize { size: usize::MAX }), "{e}");
        let rt = Runtime::builder().workers(1).build().unwrap();
        let e = Builder::new().stack_size(usize::MAX).spawn_on(rt.handle(), || ()).unwrap_err();
        assert!(matches!(e, Error::StackSize { size: usize::MAX }), "{e}");
        let e = Builder::new().stack_size(MAX_STACK_SIZE + 1).spawn_on(rt.handle(), || ()).unwrap_err();
        assert!(matches!(e, Error::StackSize { .. }), "{e}");
        // The maximum itself is fine (reserved, not committed).
        let h = Builder::new().stack_size(MAX_STACK_SIZE).spawn_on(rt.handle(), || 5).unwrap();
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn sleep_duration_max_sleeps_for_ever() {
    watchdog("sleep_max", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let h = rt.spawn(|| percore_lwkt::sleep(Duration::MAX)).unwrap();
        let p = rt.spawn(|| percore_lwkt::park_timeout(Duration::MAX)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!h.is_finished(), "sleep(Duration::MAX) returned: {:?}", h.join());
        assert!(!p.is_finished(), "park_timeout(Duration::MAX) returned");
        drop(rt);
        assert!(matches!(h.join(), Err(JoinError::Cancelled)));
        assert!(matches!(p.join(), Err(JoinError::Cancelled)));
    });
}

#[test]
fn yield_in_an_smr_section_is_a_counted_no_op() {
    watchdog("yield_smr", || {
        let rt = Runtime::builder().workers(1).name("edge-yield").build().unwrap();
        rt.block_on(|| {
            let smr = percore_smr::Smr::new("edge-yield").unwrap();
            let _g = smr.enter();
            percore_lwkt::yield_now(); // no panic, no switch
            percore_lwkt::yield_now();
        })
        .unwrap();
        assert_eq!(stat("lwkt.edge-yield.w0.yields_refused"), 2);
        rt.block_on(|| {
            let _c = percore_lwkt::critical();
            percore_lwkt::yield_now();
        })
        .unwrap();
        assert_eq!(stat("lwkt.edge-yield.w0.yields_refused"), 3);
    });
}
