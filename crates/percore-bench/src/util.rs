//! Measurement helpers shared by every subsystem's benchmarks.

use std::time::{Duration, Instant};

/// CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    percore::cpu::allowed_cpus().map_or(1, |c| c.len())
}

/// Nanoseconds per iteration, best of `reps` (defined once, in the pure-std
/// `zone_peer` module that the mimalloc helper binary also includes).
pub(crate) use crate::zone_peer::ns_per_iter;

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
