//! `percore-bench`: percore side by side with the best peer crates, in the
//! same run, reporting ratios.
//!
//! ```text
//! percore-bench [--quick] [--json] [--plot DIR] [SUBSYSTEM]...
//! ```
//!
//! With no subsystem every one runs. `--quick` shortens every measurement so
//! the whole run takes well under a minute (CI's smoke test); `--json` prints
//! one JSON object per line instead of tables (`docs/DESIGN.md` §6). On a terminal
//! (and without `--json`) stderr shows a progress bar: subsystem, last row,
//! estimated time left. `--plot DIR` writes `DIR/<subsystem>.svg`, percore's
//! advantage over each peer as ratio bars (`plot.rs`).
//!
//! A figure past the physical floor of its metric (below about one cycle per
//! operation, a zero for something that allocates: `report.rs`) is flagged
//! `BELOW FLOOR` (JSON: `"flag":"below_floor"`) instead of being reported,
//! and listed again at the end on stderr.
//!
//! Subsystems: `smr`, `zone`, `pool`, `lwkt`, `evq`, `kv`. `evq` (see `evq.rs`)
//! measures percore-evq against tokio: `evq_handoff` (a post to an event
//! queue a uthread is blocked on, until it runs; tokio mpsc), `evq_timers`
//! (alarm set + cancel; tokio `sleep` register + drop and `Sleep::reset`)
//! and `evq_echo` (64-byte echo over loopback at 50 and 500 connections,
//! requests per second and p99 latency, both servers with the same number of
//! workers and driven by the same closed-loop load generator, 10 s per
//! server, 1 s under `--quick`).
//!
//! `kv` (see `kv.rs`) starts memcached and percore-kv (the `percore-kv`
//! binary next to this one, or `$PERCORE_KV_BIN`; skipped with a message
//! when missing: `cargo build --release -p percore-kv`) with the same
//! settings and drives both with one closed-loop memcached-protocol load
//! generator that checks every reply: `kv_<mix>_<conns>c_<keys>[_pinned]`
//! rows (`ops_per_s`, `p50_us`, `p99_us`, `p999_us`,
//! `server_cpu_us_per_op`) and `kv_rss` (resident memory with 1,000,000
//! items). About 12 minutes in a full run, 30 s under `--quick`.
//! `--kv-threads N` and `--kv-loaders N` set the unpinned rows' server and
//! loader threads; `--kv-rows PATTERNS` (comma-separated) measures only the
//! rows whose name contains one of them, e.g. `--kv-rows 50c_uniform,kv_rss`
//! for an interleaved before/after of a few rows at full length.

mod evq;
mod kv;
mod kv_load;
mod kv_server;
mod lwkt;
mod plot;
mod pool;
mod progress;
mod report;
mod smr;
mod util;
mod zone;
mod zone_peer;

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
    /// Write one SVG chart per subsystem into DIR (percore against each peer, ratio bars).
    #[arg(long, value_name = "DIR")]
    plot: Option<std::path::PathBuf>,
    /// Print percore's stats tree after the run.
    #[arg(long)]
    stats: bool,
    /// Also measure scaling: thread counts 1, 2, 4, ... up to the CPUs
    /// available (meant for a many-core machine).
    #[arg(long)]
    scale: bool,
    /// kv: server threads (`-t`) of the unpinned rows (default: min(2, CPUs)).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    kv_threads: Option<u16>,
    /// kv: load generator threads of the unpinned rows.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    kv_loaders: u16,
    /// kv: measure only the rows whose name contains one of these
    /// (comma-separated, e.g. `50c_uniform,kv_rss`; default: every row).
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',')]
    kv_rows: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Subsystem {
    /// Safe memory reclamation: percore-smr against crossbeam-epoch, seize, haphazard.
    Smr,
    /// Object caches: percore-zone against Box (system allocator, mimalloc), sharded-slab,
    /// object-pool; SMR zones against crossbeam-epoch.
    Zone,
    /// Thread pools: percore-pool against rayon, threadpool, tokio spawn_blocking, blocking, std::thread.
    Pool,
    /// Light-weight threads: percore-lwkt against tokio and raw corosensei.
    Lwkt,
    /// Event queues, alarms and sockets: percore-evq against tokio (mpsc, sleep, an echo server).
    Evq,
    /// A memcached-compatible server: percore-kv against memcached (separate processes).
    Kv,
}

/// How long to measure: full runs or `--quick`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) quick: bool,
    /// `--scale`: add rows for 1, 2, 4, ... threads up to the CPU count.
    pub(crate) scale: bool,
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

    /// Thread counts to measure: `base`, plus powers of two up to the CPU
    /// count under `--scale`.
    pub(crate) fn threads(&self, base: &[usize]) -> Vec<usize> {
        let mut t = base.to_vec();
        if self.scale {
            let cpus = util::cpus();
            let mut n = 1;
            while n <= cpus {
                if !t.contains(&n) {
                    t.push(n);
                }
                n *= 2;
            }
            if !t.contains(&cpus) {
                t.push(cpus);
            }
        }
        t.sort_unstable();
        t
    }

    /// A duration in milliseconds, scaled the same way.
    pub(crate) fn millis(&self, full_ms: u64) -> std::time::Duration {
        std::time::Duration::from_millis(self.scale(full_ms))
    }
}

impl Subsystem {
    fn name(self) -> &'static str {
        match self {
            Subsystem::Smr => "smr",
            Subsystem::Zone => "zone",
            Subsystem::Pool => "pool",
            Subsystem::Lwkt => "lwkt",
            Subsystem::Evq => "evq",
            Subsystem::Kv => "kv",
        }
    }
}

fn main() {
    // A measurement that needs a process of its own (lwkt.rs) re-runs this
    // binary with the environment variable set.
    if let Some(code) = lwkt::child_main() {
        std::process::exit(code);
    }
    let args = Args::parse();
    let all = [Subsystem::Smr, Subsystem::Zone, Subsystem::Pool, Subsystem::Lwkt, Subsystem::Evq, Subsystem::Kv];
    let chosen: &[Subsystem] = if args.subsystems.is_empty() { &all } else { &args.subsystems };
    let budget = Budget { quick: args.quick, scale: args.scale };
    let plan = chosen.iter().map(|s| (s.name(), progress::estimate(s.name(), args.quick))).collect();
    let mut report = Report::new(args.json).with_progress(progress::Progress::new(plan, args.json));
    let kv_opts =
        kv::Opts { threads: args.kv_threads.map(usize::from), loaders: args.kv_loaders.into(), rows: args.kv_rows };
    for (i, s) in chosen.iter().enumerate() {
        if let Some(p) = report.progress() {
            p.begin(i);
        }
        match s {
            Subsystem::Smr => smr::run(budget, &mut report),
            Subsystem::Zone => zone::run(budget, &mut report),
            Subsystem::Pool => pool::run(budget, &mut report),
            Subsystem::Lwkt => lwkt::run(budget, &mut report),
            Subsystem::Evq => evq::run(budget, &mut report),
            Subsystem::Kv => kv::run(budget, &kv_opts, &mut report),
        }
    }
    report.finish();
    if !report.is_json() {
        println!("percore-bench ({} mode, {} CPUs)", if args.quick { "quick" } else { "full" }, util::cpus());
        print!("{}", report.table());
    }
    let flagged: Vec<_> = report.flagged().collect();
    if !flagged.is_empty() {
        eprintln!(
            "{} figure(s) below the physical floor (not results; see docs/BENCHMARKS.md, Floors):",
            flagged.len()
        );
        for r in flagged {
            eprintln!("  {} / {} / {}: {} {}", r.bench, r.imp, r.metric, r.value, r.unit);
        }
    }
    if let Some(dir) = &args.plot {
        match plot::write(dir, report.rows(), args.quick) {
            Ok(files) => files.iter().for_each(|f| eprintln!("plot: {}", f.display())),
            Err(e) => {
                eprintln!("plot: {e}");
                std::process::exit(1);
            }
        }
    }
    if args.stats {
        for (name, value) in percore::stats() {
            eprintln!("{name} = {value}");
        }
    }
}
