//! Issue 16, "also seen": `Mode::Lazy { tick: Duration::MAX }` was accepted,
//! and then `synchronize()` slept for ever (the clock never reached a goal
//! two ticks ahead).
//!
//! Now a lazy tick must lie between 1 microsecond and `MAX_LAZY_TICK` (1 s),
//! and `synchronize` on a lazy domain returns after about two ticks.

use percore_smr::{Error, Mode, Smr, MAX_LAZY_TICK};
use std::time::{Duration, Instant};

#[test]
fn an_unbounded_lazy_tick_is_a_configuration_error() {
    for tick in [Duration::MAX, MAX_LAZY_TICK + Duration::from_nanos(1), Duration::from_secs(3600)] {
        let r = Smr::builder("issue16-lazy-max").mode(Mode::Lazy { tick }).build();
        assert!(matches!(r, Err(Error::InvalidConfig { .. })), "{tick:?}");
    }
    assert!(Smr::builder("issue16-lazy-ok").mode(Mode::Lazy { tick: MAX_LAZY_TICK }).build().is_ok());
}

#[test]
fn a_lazy_synchronize_returns_after_a_few_ticks() {
    let tick = Duration::from_millis(20);
    let smr = Smr::builder("issue16-lazy-sync").mode(Mode::Lazy { tick }).build().unwrap();
    let t = Instant::now();
    smr.synchronize().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}
