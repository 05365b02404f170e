//! Measurement helpers shared by every subsystem's benchmarks.

use std::time::{Duration, Instant};

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

/// Time `f`.
pub(crate) fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// CPU time (user + system) used by the whole process so far.
pub(crate) fn process_cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
