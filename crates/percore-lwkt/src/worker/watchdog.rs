//! # The watchdog: noticing a worker that does not reach scheduling points
//!
//! Scheduling is cooperative: `std::thread::sleep`, a blocking std socket
//! read, or a std `Mutex` held across a switch keeps the worker's OS thread
//! and stalls every other uthread of that worker (or deadlocks it). Like Go's
//! `sysmon`, one monitor thread per runtime samples each worker's heartbeat
//! (`monitor.rs` at the crate root: bumped at every resume and every `yield_now` /
//! `maybe_yield`) every quarter of the threshold. A worker whose heartbeat
//! has not moved for longer than the threshold while it runs a uthread is
//! *stalled*: the episode is counted once in `lwkt.<name>.w<i>.stalls`, and
//! the first stall of each uthread is logged to stderr with its name, id and
//! worker. An idle worker (no uthread running) is never stalled.
//!
//! XXX: a worker whose OS thread the kernel does not run for longer than
//! the threshold (an overloaded machine) looks the same and is counted too;
//! the log line says "has not reached", not why.
//!
//! The fast path pays one relaxed load and store per resume and per yield
//! point (the heartbeat); the monitor thread wakes `4 / threshold` times a
//! second and reads each worker's slot.

use crate::kernel::RuntimeState;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// The default stall threshold of [`RuntimeBuilder::watchdog`](crate::RuntimeBuilder::watchdog).
pub const DEFAULT_WATCHDOG: Duration = Duration::from_millis(100);

/// Per worker: the heartbeat last seen, since when, and whether this
/// episode was counted.
struct Seen {
    beat: u64,
    since: Instant,
    counted: bool,
}

/// Start the monitor thread of `shared` with stall threshold `threshold`.
pub(crate) fn start(
    shared: Weak<RuntimeState>,
    name: &str,
    threshold: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("lwkt-{name}-watchdog")).spawn(move || run(shared, threshold))
}

fn run(shared: Weak<RuntimeState>, threshold: Duration) {
    let period = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
    let mut seen: Vec<Seen> = Vec::new();
    loop {
        std::thread::park_timeout(period);
        let Some(sh) = shared.upgrade() else { return };
        if sh.is_shutdown() {
            return;
        }
        let now = Instant::now();
        if seen.is_empty() {
            seen = sh.workers.iter().map(|w| Seen { beat: w.slot.heartbeat(), since: now, counted: false }).collect();
        }
        for (i, (w, s)) in sh.workers.iter().zip(seen.iter_mut()).enumerate() {
            let beat = w.slot.heartbeat();
            if beat != s.beat {
                *s = Seen { beat, since: now, counted: false };
                continue;
            }
            if s.counted || now.duration_since(s.since) <= threshold {
                continue;
            }
            let Some(u) = w.slot.running().map(crate::uthread::Uthread) else {
                s.since = now; // idle, not stalled
                continue;
            };
            s.counted = true;
            w.stats.stalls.bump(); // NOTE: the monitor is this counter's only writer
                                   // ORDERING: relaxed: a once-per-uthread log flag; only the watchdog swaps it.
            if !u.0.stall_logged.swap(true, percore_cpu::loom::Ordering::Relaxed) {
                eprintln!(
                    "percore-lwkt: uthread '{}' (id {}) on worker {i} of runtime '{}' has not reached a scheduling \
                     point for over {threshold:?}, stalling every uthread of that worker (std::thread::sleep, \
                     blocking std I/O, or a std Mutex held across a switch? use percore_lwkt::sleep, \
                     block_in_pool, Token); reported once per uthread",
                    u.name().unwrap_or("<unnamed>"),
                    u.id(),
                    sh.name,
                );
            }
        }
    }
}
