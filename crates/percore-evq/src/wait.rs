//! Deadlines of evq's waits. What blocks and is woken is
//! [`percore_lwkt::Waiter`] (its loom form under `--cfg loom`), and one
//! blocking step is [`percore_lwkt::park_until`]; this file keeps only how a
//! wait turns a timeout into a deadline and into slices on a foreign thread.

use std::time::{Duration, Instant};

/// How long a foreign OS thread blocks at a time in a wait that a worker
/// would end (an alarm firing, a readiness dispatch): it then checks its own
/// deadline, the descriptors, and whether the runtime shut down. A uthread
/// needs no slice: the worker runs its timers, and shutdown unwinds it.
#[cfg(not(loom))]
pub(crate) const FOREIGN_SLICE: Duration = Duration::from_millis(50);

/// The timeout of one blocking step of a wait that ends at `deadline`:
/// all of it on a uthread, at most [`FOREIGN_SLICE`] on a foreign thread.
#[cfg(not(loom))]
pub(crate) fn slice(deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if percore_lwkt::current().is_some() {
        return left;
    }
    Some(left.map_or(FOREIGN_SLICE, |l| l.min(FOREIGN_SLICE)))
}

/// `now + timeout`, saturating far in the future instead of overflowing.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    let d = timeout?;
    let now = Instant::now();
    Some(now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)))
}
