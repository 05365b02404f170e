//! Progress on stderr while the bench runs: the subsystem, the last row and
//! an estimate of the time left, as an `indicatif` bar.
//!
//! Shown only when stderr is a terminal and the output is not `--json`
//! ([`Progress::new`] returns `None` otherwise), so logs and pipes get the
//! plain per-row lines only. The estimate is a fixed per-subsystem budget
//! ([`estimate`], measured on the 2-CPU development machine), counted down
//! by a ticker thread that wakes twice a second; a subsystem running past its
//! budget shows no time left for itself.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the ticker reads: the plan and where the run stands in it.
struct State {
    /// (subsystem, its estimated duration), in run order.
    plan: Vec<(&'static str, Duration)>,
    /// Index into `plan` of the running subsystem.
    current: usize,
    /// When the running subsystem started.
    since: Instant,
    /// The last row reported.
    row: String,
}

/// The progress bar and its ticker.
pub(crate) struct Progress {
    bar: ProgressBar,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

/// Estimated wall time of one subsystem (quick or full), from runs on the
/// 2-CPU development machine; `kv` depends on memcached being installed.
pub(crate) fn estimate(subsystem: &str, quick: bool) -> Duration {
    let (q, f) = match subsystem {
        "smr" => (4, 20),
        "zone" => (2, 8),
        "pool" => (7, 45),
        "lwkt" => (9, 30),
        "evq" => (9, 60),
        "kv" => (15, 720),
        _ => (5, 30),
    };
    Duration::from_secs(if quick { q } else { f })
}

impl Progress {
    /// A bar for `plan` (subsystem names and estimates), or `None` when
    /// stderr is not a terminal or `json` is set.
    pub(crate) fn new(plan: Vec<(&'static str, Duration)>, json: bool) -> Option<Progress> {
        if json || !std::io::stderr().is_terminal() || plan.is_empty() {
            return None;
        }
        let total: Duration = plan.iter().map(|p| p.1).sum();
        let bar = ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {bar:24} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let state = Arc::new(Mutex::new(State { plan, current: 0, since: Instant::now(), row: String::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, state, stop) = (bar.clone(), state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-progress".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        tick(&bar, &state);
                        std::thread::sleep(Duration::from_millis(500));
                    }
                })
                .ok()
        };
        Some(Progress { bar, state, stop, ticker })
    }

    /// The subsystem at `index` of the plan starts now.
    pub(crate) fn begin(&self, index: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.current = index.min(s.plan.len().saturating_sub(1));
        s.since = Instant::now();
        s.row.clear();
        drop(s);
        tick(&self.bar, &self.state);
    }

    /// The last row reported (shown on the bar).
    pub(crate) fn row(&self, row: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.row.clear();
        s.row.push_str(row);
        drop(s);
        tick(&self.bar, &self.state);
    }

    /// Print a line above the bar.
    pub(crate) fn println(&self, line: &str) {
        self.bar.println(line);
    }

    /// Remove the bar and stop the ticker.
    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Redraw: position and time left from the plan and the clock.
fn tick(bar: &ProgressBar, state: &Mutex<State>) {
    let s = state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(&(name, est)) = s.plan.get(s.current) else { return };
    let done: Duration = s.plan[..s.current].iter().map(|p| p.1).sum();
    let total: Duration = s.plan.iter().map(|p| p.1).sum();
    let here = s.since.elapsed().min(est);
    let left = total.saturating_sub(done + here);
    bar.set_position((done + here).as_millis() as u64);
    bar.set_message(format!(
        "{name} ({}/{}) {} | about {}s left",
        s.current + 1,
        s.plan.len(),
        if s.row.is_empty() { "starting" } else { &s.row },
        left.as_secs()
    ));
}
