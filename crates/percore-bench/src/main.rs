//! `percore-bench`: percore side by side with the best peer crates, in the
//! same run, reporting ratios.
//!
//! ```text
//! percore-bench [--quick] [--json] [SUBSYSTEM]...
//! ```
//!
//! With no subsystem every one runs. `--quick` shortens every measurement so
//! the whole run takes well under a minute (CI's smoke test); `--json` prints
//! one JSON object per line instead of tables (DESIGN.md §6).

mod lwkt;
mod report;
mod smr;
mod util;

use clap::{Parser, ValueEnum};
use report::Report;

/// percore side by side with its peers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Subsystems to benchmark (default: all).
    #[arg(value_enum)]
    subsystems: Vec<Subsystem>,
    /// Short runs: every benchmark in well under a minute in total.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line instead of tables.
    #[arg(long)]
    json: bool,
    /// Print percore's stats tree after the run.
    #[arg(long)]
    stats: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Subsystem {
    /// Safe memory reclamation: percore-smr against crossbeam-epoch, seize, haphazard.
    Smr,
    /// Light-weight threads: percore-lwkt against tokio and raw corosensei.
    Lwkt,
}

/// How long to measure: full runs or `--quick`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) quick: bool,
}

impl Budget {
    /// `full` normally, a tenth of it (at least 1) under `--quick`.
    pub(crate) fn scale(&self, full: u64) -> u64 {
        if self.quick {
            (full / 10).max(1)
        } else {
            full
        }
    }

    /// A duration in milliseconds, scaled the same way.
    pub(crate) fn millis(&self, full_ms: u64) -> std::time::Duration {
        std::time::Duration::from_millis(self.scale(full_ms))
    }
}

fn main() {
    let args = Args::parse();
    let all = [Subsystem::Smr, Subsystem::Lwkt];
    let chosen: &[Subsystem] = if args.subsystems.is_empty() { &all } else { &args.subsystems };
    let budget = Budget { quick: args.quick };
    let mut report = Report::new(args.json);
    for s in chosen {
        match s {
            Subsystem::Smr => smr::run(budget, &mut report),
            Subsystem::Lwkt => lwkt::run(budget, &mut report),
        }
    }
    if !report.is_json() {
        println!("percore-bench ({} mode, {} CPUs)", if args.quick { "quick" } else { "full" }, util::cpus());
        print!("{}", report.table());
    }
    if args.stats {
        for (name, value) in percore::stats() {
            eprintln!("{name} = {value}");
        }
    }
}
