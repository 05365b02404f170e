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
//! ## Stalled, or not run by the kernel?
//!
//! A worker whose OS thread the kernel does not run (an overloaded machine,
//! a low priority) has a still heartbeat too. The watchdog tells the two
//! apart with what the kernel's scheduler says about the worker's thread
//! (its kernel thread id, stored when the worker starts; `sys/sched.rs`):
//! the CPU time it used (`/proc/self/task/<tid>/schedstat`, first field)
//! and, at every sample, whether it is blocked in the kernel (`stat`'s state
//! `S`/`D`: `std::thread::sleep`, a blocking read, a contended std `Mutex`).
//! Over an episode (since the heartbeat last moved) the thread's *busy*
//! time is its CPU time plus the sample periods it was seen blocked; the
//! rest it spent runnable but waiting on a run queue. A still heartbeat
//! longer than the threshold is a stall only if the busy time is too (a
//! uthread that spins, blocks, or both); otherwise the episode is counted
//! once as `lwkt.<name>.w<i>.descheduled` and nothing is logged. If the
//! files cannot be read, every still heartbeat counts as a stall, as it
//! would without this check, and the watchdog says so once on stderr.
//! Cost: two small procfs reads per sample of a worker whose heartbeat is
//! still (none while it moves), at most 8 per threshold per worker.
//! [`judge`] is the decision, [`Episode`] the accounting, both pure.
//!
//! NOTE: not `schedstat`'s second field (run-queue wait) directly: the
//! kernel adds a wait to it only when the wait ends (the thread is picked
//! to run), so a thread still waiting shows none of its current wait, and
//! the still heartbeat of exactly the overloaded case would read as busy.
//! A blocked sample stands for the whole period before it, so a thread
//! that blocks briefly at every sample is over-counted (towards a stall,
//! the behaviour without this check).
//!
//! The fast path pays one relaxed load and store per resume and per yield
//! point (the heartbeat); the monitor thread wakes `4 / threshold` times a
//! second and reads each worker's slot, except while every worker sleeps:
//! then it naps, parked without a timeout, until the first worker wakes
//! (`nap.rs`: a tick with every worker asleep since the previous tick
//! starts the nap).

use crate::kernel::RuntimeState;
use crate::sys::sched::{thread_sample, ThreadSample};
use std::sync::atomic::AtomicI32;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// The default stall threshold of [`RuntimeBuilder::watchdog`](crate::RuntimeBuilder::watchdog).
pub const DEFAULT_WATCHDOG: Duration = Duration::from_millis(100);

/// What a still heartbeat was, once it outlasted the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not (yet) longer than the threshold.
    Fine,
    /// The worker's thread was busy (ran, or was blocked in the kernel) for
    /// longer than the threshold without reaching a scheduling point.
    Stalled,
    /// Longer than the threshold, but mostly waiting for a CPU.
    Descheduled,
}

/// The decision: a heartbeat still for `still`, during which the worker's
/// thread was busy for `busy` (`None`: unknown, the kernel's figures could
/// not be read).
pub(crate) fn judge(still: Duration, busy: Option<Duration>, threshold: Duration) -> Verdict {
    if still <= threshold {
        return Verdict::Fine;
    }
    match busy {
        Some(b) if b <= threshold => Verdict::Descheduled,
        _ => Verdict::Stalled,
    }
}

/// One worker's episode: since when its heartbeat is still, and its
/// thread's busy time meanwhile, from samples of its scheduler state.
#[derive(Debug)]
pub(crate) struct Episode {
    /// The heartbeat value of this episode.
    beat: u64,
    /// When it was first seen.
    since: Instant,
    /// The previous sample's time.
    last: Instant,
    /// CPU time at the episode's first sample (ns), if read.
    run0: Option<u64>,
    /// The latest CPU time read (ns).
    run: u64,
    /// Periods this episode's samples saw the thread blocked, summed.
    blocked: Duration,
    /// Whether a sample failed (then `busy` is unknown).
    unknown: bool,
    /// Whether the episode was counted as a stall.
    stalled: bool,
    /// Whether it was counted as descheduled.
    descheduled: bool,
}

impl Episode {
    /// A new episode for heartbeat `beat`, first seen at `now`.
    pub(crate) fn new(beat: u64, now: Instant) -> Episode {
        Episode {
            beat,
            since: now,
            last: now,
            run0: None,
            run: 0,
            blocked: Duration::ZERO,
            unknown: false,
            stalled: false,
            descheduled: false,
        }
    }

    /// Whether [`start`](Episode::start) was called.
    pub(crate) fn started(&self) -> bool {
        self.run0.is_some() || self.unknown
    }

    /// The first sample of a still heartbeat, at `now`: the baseline. The
    /// time since the episode began, before any figure was read, counts as
    /// busy (towards a stall, as without the kernel's figures), up to one
    /// sampling `period`: a longer gap is the monitor thread's own delay.
    pub(crate) fn start(&mut self, now: Instant, sample: Option<ThreadSample>, period: Duration) {
        self.run0 = sample.map(|s| s.run_ns);
        self.run = sample.map_or(0, |s| s.run_ns);
        self.unknown = sample.is_none();
        self.blocked = now.saturating_duration_since(self.since).min(period);
        self.last = now;
    }

    /// A later sample at `now`, the heartbeat unchanged: the verdict so far.
    pub(crate) fn step(&mut self, now: Instant, sample: Option<ThreadSample>, threshold: Duration) -> Verdict {
        match sample {
            Some(s) if !self.unknown => {
                if s.blocked {
                    self.blocked += now.saturating_duration_since(self.last);
                }
                self.run = s.run_ns;
            }
            _ => self.unknown = true,
        }
        self.last = now;
        let busy = match (self.unknown, self.run0) {
            (false, Some(r0)) => Some(Duration::from_nanos(self.run.saturating_sub(r0)) + self.blocked),
            _ => None,
        };
        judge(now.saturating_duration_since(self.since), busy, threshold)
    }
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
    let mut seen: Vec<Episode> = Vec::new();
    let mut buf = String::new();
    let mut said_unknown = false;
    let mut sample = |tid: &AtomicI32, buf: &mut String| {
        // ORDERING: relaxed: stored once by the worker; 0 reads as unknown.
        let tid = tid.load(Relaxed);
        let s = if tid > 0 { thread_sample(tid, buf) } else { None };
        if s.is_none() && tid > 0 && !std::mem::replace(&mut said_unknown, true) {
            eprintln!(
                "percore-lwkt: the watchdog cannot read /proc/self/task/{tid}/schedstat or stat; it counts \
                 every still heartbeat as a stall, even one of a worker the kernel did not run"
            );
        }
        s
    };
    match shared.upgrade() {
        Some(sh) => {
            let _ = sh.watchdog.set(std::thread::current());
        }
        None => return,
    }
    // The nap word at the previous tick (`nap.rs`).
    let mut last_nap: Option<u64> = None;
    loop {
        std::thread::park_timeout(period);
        let Some(sh) = shared.upgrade() else { return };
        if sh.is_shutdown() {
            return;
        }
        let word = sh.nap.snapshot();
        if last_nap.replace(word).is_some_and(|w| sh.nap.try_nap(w, sh.workers.len())) {
            sh.watchdog_naps.inc();
            drop(sh); // a napping watchdog keeps no runtime alive
            if !nap(&shared) {
                return;
            }
            // Heartbeats moved while it napped: a fresh baseline.
            seen.clear();
            last_nap = None;
            continue;
        }
        let now = Instant::now();
        if seen.is_empty() {
            seen = sh.workers.iter().map(|w| Episode::new(w.slot.heartbeat(), now)).collect();
        }
        for (i, (w, e)) in sh.workers.iter().zip(seen.iter_mut()).enumerate() {
            let beat = w.slot.heartbeat();
            if beat != e.beat {
                *e = Episode::new(beat, now);
                continue;
            }
            if e.stalled {
                continue;
            }
            if !e.started() {
                // The first sample of a still heartbeat: the baseline.
                e.start(now, sample(&w.tid, &mut buf), period);
                continue;
            }
            let s = sample(&w.tid, &mut buf);
            let verdict = e.step(now, s, threshold);
            if verdict == Verdict::Fine {
                continue;
            }
            let Some(u) = w.slot.running().map(crate::uthread::Uthread) else {
                *e = Episode::new(beat, now); // idle, not stalled
                continue;
            };
            if verdict == Verdict::Descheduled {
                if !std::mem::replace(&mut e.descheduled, true) {
                    w.stats.descheduled.bump(); // NOTE: the monitor is its only writer
                }
                continue;
            }
            e.stalled = true;
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

/// Park until a worker ends the nap (`true`), or the runtime shuts down or
/// is gone (`false`: the watchdog returns).
fn nap(shared: &Weak<RuntimeState>) -> bool {
    loop {
        std::thread::park();
        let Some(sh) = shared.upgrade() else { return false };
        if sh.is_shutdown() {
            return false;
        }
        if !sh.nap.napping() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(100);
    const MS: Duration = Duration::from_millis(1);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn sample(run_ms: u64, blocked: bool) -> Option<ThreadSample> {
        Some(ThreadSample { run_ns: run_ms * 1_000_000, blocked })
    }

    #[test]
    fn judge_decides() {
        assert_eq!(judge(T, None, T), Verdict::Fine, "not longer than the threshold");
        assert_eq!(judge(T + MS, None, T), Verdict::Stalled, "unknown: as without the check");
        assert_eq!(judge(10 * T, Some(T + MS), T), Verdict::Stalled);
        assert_eq!(judge(10 * T, Some(T), T), Verdict::Descheduled);
        assert_eq!(judge(10 * T, Some(Duration::ZERO), T), Verdict::Descheduled);
    }

    /// Samples every 25 ms of a heartbeat still for 200 ms.
    fn episode(samples: impl Fn(u64) -> Option<ThreadSample>) -> Vec<Verdict> {
        let t0 = Instant::now();
        let mut e = Episode::new(1, t0);
        assert!(!e.started());
        e.start(at(t0, 25), samples(25), 25 * MS);
        assert!(e.started());
        (2..=8).map(|k| e.step(at(t0, 25 * k), samples(25 * k), T)).collect()
    }

    #[test]
    fn a_sleep_is_a_stall() {
        // Blocked in the kernel at every sample, no CPU used.
        let v = episode(|_| sample(0, true));
        assert_eq!(v.iter().position(|v| *v == Verdict::Stalled), Some(3), "at 125 ms: {v:?}");
    }

    #[test]
    fn a_spin_is_a_stall() {
        // Running all the time.
        let v = episode(|ms| sample(ms, false));
        assert_eq!(v.last(), Some(&Verdict::Stalled), "{v:?}");
    }

    #[test]
    fn waiting_for_a_cpu_is_not_a_stall() {
        // Runnable, given 1 ms of CPU per 25 ms.
        let v = episode(|ms| sample(ms / 25, false));
        assert_eq!(v.last(), Some(&Verdict::Descheduled), "{v:?}");
        assert!(!v.contains(&Verdict::Stalled), "{v:?}");
    }

    #[test]
    fn half_asleep_half_waiting_is_judged_by_the_busy_half() {
        // Blocked for the first 100 ms, then waiting for a CPU: busy 100 ms
        // (25 before the baseline, 75 blocked), not more than the threshold.
        let v = episode(|ms| sample(0, ms <= 100));
        assert_eq!(v.last(), Some(&Verdict::Descheduled), "{v:?}");
        // Blocked for 125 ms: a stall.
        let v = episode(|ms| sample(0, ms <= 125));
        assert_eq!(v.last(), Some(&Verdict::Stalled), "{v:?}");
    }

    #[test]
    fn unreadable_figures_count_as_before() {
        let v = episode(|_| None);
        assert_eq!(v.iter().position(|v| *v == Verdict::Stalled), Some(3), "{v:?}");
        // Readable at first, then not: unknown from then on.
        let v = episode(|ms| if ms < 100 { sample(0, false) } else { None });
        assert_eq!(v.last(), Some(&Verdict::Stalled), "{v:?}");
    }
}
