//! Measurement helpers shared by every subsystem's benchmarks.

use std::time::Duration;

/// CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    percore::cpu::allowed_cpus().map_or(1, |c| c.len())
}

/// Run `f(iters)` with growing `iters` until one call takes at least
/// `target`, then return nanoseconds per iteration of the best of `reps`
/// calls at that size. `f` must do `iters` iterations of the operation.
pub(crate) fn ns_per_iter(target: Duration, reps: usize, mut f: impl FnMut(u64) -> Duration) -> f64 {
    let mut iters = 1_000u64;
    loop {
        let t = f(iters);
        if t >= target / 4 || iters >= 1 << 34 {
            break;
        }
        iters *= 4;
    }
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = f(iters);
        best = best.min(t.as_nanos() as f64 / iters as f64);
    }
    best
}
