//! `percore-bench kv`: percore-kv against memcached, side by side in the
//! same run (issue 11).
//!
//! # What runs
//!
//! Both servers are separate processes (`kv_server.rs`) started with the
//! same settings: `-t` threads (default `min(2, CPUs)`, `--kv-threads`),
//! `-m 1024`, `-c 1024`, a free loopback port, UDP off. A server that is
//! missing, exits, or does not answer `version` within 10 s is skipped
//! with a message, as is one that answers `ERROR` to a probing `set` (it
//! does not speak the storage commands yet); the other is then measured
//! alone. Once a server is measured, any protocol error, closed connection
//! or stall fails the run (exit status 1), after both servers are killed.
//!
//! Each server start is preloaded with all 100,000 keys (pipelined sets, so
//! every get hits) and then measured on every row of its configuration, in
//! the same order for both; the servers alternate over repetitions
//! (memcached, percore-kv, memcached, percore-kv, ...), each killed before
//! the next one starts. Rows, named `kv_<mix>_<conns>c_<keys>[_pinned]`:
//!
//! * mix `get90` (90% get, 10% set) or `set` (sets only); `conns` 50 or 500
//!   connections, one request in flight on each (closed loop); keys
//!   `uniform` or `zipf` (Zipf 0.99 over the 100,000 keys); 32-byte keys,
//!   100-byte values (`kv_load.rs` says how every reply is checked);
//! * unpinned: `-t` server threads and `--kv-loaders` (default 2) loader
//!   threads, placed by the kernel; `_pinned` (when there are 2 CPUs or
//!   more): the server process on the second allowed CPU with `-t 1`, one
//!   loader thread pinned to the first, so both servers compete on equal
//!   terms.
//!
//! Each row is a warm-up of a tenth of the window and then the window:
//! 10 s, or 2 s under `--quick`. Metrics: `ops_per_s` (replies in the
//! window), `p50_us`, `p99_us`, `p999_us` (exact: every latency in the
//! window is kept and sorted), `server_cpu_us_per_op` (the server
//! process's user + system time over the window, from /proc, per
//! operation: the figure that survives a shared machine), `conn_p90_p10`
//! (how evenly the connections were served: the 90th percentile of the
//! replies per connection in the window over the 10th; 1 is perfectly
//! even). With several
//! repetitions (2 in a full run) each metric is the median over them. Last,
//! `kv_rss`: a fresh server per implementation stores 1,000,000 items
//! (100,000 under `--quick`, and the metric says so) and reports its
//! `VmRSS` as `rss_mib_1m_items` (`rss_mib_100k_items`), after a spot check
//! that nothing was evicted.
//!
//! `--quick` keeps the subsystem to about 30 s: one repetition and five rows
//! that cover every mix, connection count, key distribution and the pinned
//! variant once each (`QUICK_ROWS`).

use crate::kv_load::{self, Dist, Keyspace, Mix, Plan, Tally};
use crate::kv_server::{Impl, Server, Spec};
use crate::report::{Better, Report, Row};
use crate::{util, Budget};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Keys preloaded for the throughput rows.
const KEYS: usize = 100_000;
/// `-m` for every server: 1,000,000 items fit without eviction.
const MEMORY_MIB: usize = 1024;
/// `-c` for every server: 500 connections plus the probes.
const CONN_LIMIT: usize = 1024;

/// The `kv` options of the command line.
#[derive(Clone, Debug)]
pub(crate) struct Opts {
    /// Server threads (`-t`) of the unpinned rows; `None`: `min(2, CPUs)`.
    pub(crate) threads: Option<usize>,
    /// Loader threads of the unpinned rows.
    pub(crate) loaders: usize,
    /// Run only the rows whose name contains one of these (`--kv-rows`);
    /// empty: every row.
    pub(crate) rows: Vec<String>,
}

impl Opts {
    /// Whether the row named `name` is to be measured.
    fn wants(&self, name: &str) -> bool {
        self.rows.is_empty() || self.rows.iter().any(|r| name.contains(r.as_str()))
    }
}

/// One row's shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    mix: Mix,
    conns: usize,
    dist: Dist,
}

/// The rows measured under `--quick`: (mix, conns, keys, pinned).
const QUICK_ROWS: [(Mix, usize, Dist, bool); 5] = [
    (Mix::Get90, 50, Dist::Uniform, false),
    (Mix::Get90, 500, Dist::Zipf, false),
    (Mix::Set, 50, Dist::Zipf, false),
    (Mix::Set, 500, Dist::Uniform, false),
    (Mix::Get90, 50, Dist::Uniform, true),
];

/// A server configuration and the rows measured on it.
struct Config {
    spec: Spec,
    loaders: usize,
    loader_cpu: Option<usize>,
    suffix: &'static str,
    shapes: Vec<Shape>,
}

/// One row, one implementation, one repetition.
#[derive(Clone, Copy, Debug)]
struct Measured {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    cpu_us_per_op: f64,
    conn_p90_p10: f64,
}

pub(crate) fn run(budget: Budget, opts: &Opts, report: &mut Report) {
    // NOTE: the servers are guards inside `measure_all`; by the time the
    // error arrives here every one of them has been killed.
    if let Err(e) = measure_all(budget, opts, report) {
        eprintln!("percore-bench kv: {e}");
        std::process::exit(1);
    }
}

fn measure_all(budget: Budget, opts: &Opts, report: &mut Report) -> Result<(), String> {
    let fds = crate::evq::raise_fd_limit();
    let need = 2 * CONN_LIMIT as u64;
    if fds < need {
        eprintln!("  kv: skipped, needs about {need} descriptors, the limit is {fds}");
        return Ok(());
    }
    let mut impls = Vec::new();
    for imp in [Impl::Memcached, Impl::PercoreKv] {
        match imp.locate() {
            Ok(bin) => impls.push((imp, bin)),
            Err(e) => eprintln!("  kv: {e}"),
        }
    }
    if impls.is_empty() {
        return Ok(());
    }
    let cpus = percore::cpu::allowed_cpus().unwrap_or_else(|_| vec![0]);
    let threads = opts.threads.unwrap_or(util::cpus().min(2)).max(1);
    let loaders = opts.loaders.max(1);
    let mut configs = configs(budget, &cpus, threads, loaders);
    for cfg in &mut configs {
        let suffix = cfg.suffix;
        cfg.shapes.retain(|s| opts.wants(bench_name(*s, suffix)));
    }
    configs.retain(|c| !c.shapes.is_empty());
    if configs.is_empty() && !opts.wants("kv_rss") {
        eprintln!("  kv: no row matches --kv-rows {}", opts.rows.join(","));
        return Ok(());
    }
    let reps = if budget.quick { 1 } else { 2 };
    let dur = budget.millis(10_000).max(Duration::from_secs(2));
    let ks = Keyspace::new(KEYS);
    // results[config][shape][impl]: one entry per repetition.
    let mut results = vec![Vec::new(); configs.len()];
    for (c, cfg) in configs.iter().enumerate() {
        results[c] = vec![vec![Vec::new(); impls.len()]; cfg.shapes.len()];
    }
    let mut skipped = vec![false; impls.len()];
    for rep in 0..reps {
        for (c, cfg) in configs.iter().enumerate() {
            for (k, (imp, bin)) in impls.iter().enumerate() {
                if skipped[k] {
                    continue;
                }
                let Some(mut server) = start(*imp, bin, cfg.spec)? else {
                    skipped[k] = true;
                    continue;
                };
                kv_load::preload(server.addr, 0..ks.len(), 4).map_err(|e| format!("{}: {e}", imp.label()))?;
                for (s, shape) in cfg.shapes.iter().enumerate() {
                    let name = bench_name(*shape, cfg.suffix);
                    let m = measure(&mut server, &ks, cfg, *shape, dur)
                        .map_err(|e| format!("{name} / {}: {e}", imp.label()))?;
                    eprintln!(
                        "  kv rep {}/{reps} {name} / {}: {:.0} ops/s, p99 {:.0} us, server {:.2} us CPU/op",
                        rep + 1,
                        imp.label(),
                        m.ops_per_s,
                        m.p99_us,
                        m.cpu_us_per_op
                    );
                    results[c][s][k].push(m);
                }
            }
        }
    }
    for (c, cfg) in configs.iter().enumerate() {
        for (s, shape) in cfg.shapes.iter().enumerate() {
            for (k, (imp, _)) in impls.iter().enumerate() {
                let ms = &results[c][s][k];
                if ms.is_empty() {
                    continue;
                }
                let bench = bench_name(*shape, cfg.suffix);
                let f = |r: Row| r.field("threads", cfg.spec.threads).field("loaders", cfg.loaders);
                let med = |g: fn(&Measured) -> f64| median(ms.iter().map(g).collect());
                let push = |report: &mut Report, metric, value, unit, better| {
                    report.push(f(Row::new(bench, imp.name(), metric, value, unit, better)));
                };
                push(report, "ops_per_s", med(|m| m.ops_per_s), "op/s", Better::Higher);
                push(report, "p50_us", med(|m| m.p50_us), "us", Better::Lower);
                push(report, "p99_us", med(|m| m.p99_us), "us", Better::Lower);
                push(report, "p999_us", med(|m| m.p999_us), "us", Better::Lower);
                push(report, "server_cpu_us_per_op", med(|m| m.cpu_us_per_op), "us", Better::Lower);
                // NOTE: a ratio of two counts, at least 1 by definition.
                report.push(f(Row::new(
                    bench,
                    imp.name(),
                    "conn_p90_p10",
                    med(|m| m.conn_p90_p10),
                    "x",
                    Better::Lower,
                )
                .floor(1.0)));
            }
        }
    }
    if !opts.wants("kv_rss") {
        return Ok(());
    }
    let items = if budget.quick { 100_000 } else { 1_000_000 };
    let metric = if budget.quick { "rss_mib_100k_items" } else { "rss_mib_1m_items" };
    let spec = Spec { threads, memory_mib: MEMORY_MIB, conn_limit: CONN_LIMIT, cpu: None };
    for (k, (imp, bin)) in impls.iter().enumerate() {
        if skipped[k] {
            continue;
        }
        let Some(server) = start(*imp, bin, spec)? else { continue };
        let mib = rss(&server, items).map_err(|e| format!("kv_rss / {}: {e}", imp.label()))?;
        report.push(Row::new("kv_rss", imp.name(), metric, mib, "MiB", Better::Lower).field("threads", threads));
    }
    Ok(())
}

/// The configurations: unpinned, and pinned where there are 2 CPUs.
fn configs(budget: Budget, cpus: &[usize], threads: usize, loaders: usize) -> Vec<Config> {
    let mut all = Vec::new();
    for mix in [Mix::Get90, Mix::Set] {
        for conns in [50, 500] {
            for dist in [Dist::Uniform, Dist::Zipf] {
                all.push(Shape { mix, conns, dist });
            }
        }
    }
    let pick = |pinned: bool| -> Vec<Shape> {
        if budget.quick {
            QUICK_ROWS
                .iter()
                .filter(|q| q.3 == pinned)
                .map(|&(mix, conns, dist, _)| Shape { mix, conns, dist })
                .collect()
        } else {
            all.clone()
        }
    };
    let spec = Spec { threads, memory_mib: MEMORY_MIB, conn_limit: CONN_LIMIT, cpu: None };
    let mut v = vec![Config { spec, loaders, loader_cpu: None, suffix: "", shapes: pick(false) }];
    if cpus.len() >= 2 {
        v.push(Config {
            spec: Spec { threads: 1, cpu: Some(cpus[1]), ..spec },
            loaders: 1,
            loader_cpu: Some(cpus[0]),
            suffix: "_pinned",
            shapes: pick(true),
        });
    } else {
        eprintln!("  kv: one CPU only, no pinned rows");
    }
    v
}

/// `kv_get90_50c_uniform` and the like.
fn bench_name(s: Shape, suffix: &str) -> &'static str {
    // NOTE: report rows name their bench with a `&'static str`; these few
    // names live until the process exits anyway.
    let name = format!("kv_{}_{}c_{}{suffix}", s.mix.name(), s.conns, s.dist.name());
    Box::leak(name.into_boxed_str())
}

/// Starts a server, probes it, or says why it is skipped (`Ok(None)`).
fn start(imp: Impl, bin: &std::path::PathBuf, spec: Spec) -> Result<Option<Server>, String> {
    let server = match Server::start(imp, bin, spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("  kv: {e}: skipped");
            return Ok(None);
        }
    };
    match kv_load::probe(server.addr) {
        Ok(()) => Ok(Some(server)),
        Err(kv_load::ProbeError::Unsupported(e)) => {
            eprintln!("  kv: {} does not speak get/set yet ({e}): skipped", imp.label());
            Ok(None)
        }
        Err(kv_load::ProbeError::Broken(e)) => Err(format!("{}: probe: {e}", imp.label())),
    }
}

/// One row on one running server.
fn measure(server: &mut Server, ks: &Keyspace, cfg: &Config, shape: Shape, dur: Duration) -> Result<Measured, String> {
    let mut socks = kv_load::connect(server.addr, shape.conns)?;
    let t0 = Instant::now();
    let (from, to) = (t0 + dur / 10, t0 + dur / 10 + dur);
    let abort = AtomicBool::new(false);
    let plan = Plan { ks, mix: shape.mix, dist: shape.dist, from, to, abort: &abort, cpu: cfg.loader_cpu };
    let per = shape.conns.div_ceil(cfg.loaders);
    let (tallies, cpu) = std::thread::scope(|sc| {
        let mut hs = Vec::new();
        let mut seed = 0x5EED_0000 + shape.conns as u64;
        while !socks.is_empty() {
            let chunk: Vec<_> = socks.drain(..per.min(socks.len())).collect();
            let plan = &plan;
            seed += 1;
            hs.push(sc.spawn(move || kv_load::drive(chunk, plan, seed)));
        }
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let c0 = server.cpu_time();
        std::thread::sleep(to.saturating_duration_since(Instant::now()));
        let c1 = server.cpu_time();
        let tallies: Vec<Result<Tally, String>> = hs.into_iter().map(|h| h.join().expect("loader thread")).collect();
        (tallies, c0.and_then(|c0| Ok(c1?.saturating_sub(c0))))
    });
    // The first real failure, not the "another thread failed" it caused.
    let mut first_err = None;
    let mut ok = Vec::new();
    for t in tallies {
        match t {
            Ok(t) => ok.push(t),
            Err(e) if first_err.is_none() || first_err.as_deref().is_some_and(|f: &str| f.starts_with("stopped:")) => {
                first_err = Some(e)
            }
            Err(_) => {}
        }
    }
    if let Some(e) = first_err {
        server.check_alive()?;
        return Err(e);
    }
    server.check_alive()?;
    let cpu = cpu?;
    let ops: u64 = ok.iter().map(|t| t.ops).sum();
    let misses: u64 = ok.iter().map(|t| t.misses).sum();
    if misses > 0 {
        eprintln!("  kv: warning: {misses} of {ops} gets missed although every key was preloaded");
    }
    if ops == 0 {
        // NOTE: not an error (the replies came, after the window: a stall
        // of more than 5 s fails the row in `drive`), but not a throughput
        // either: say so, with the server's CPU time, which tells a server
        // that waited from one that worked.
        eprintln!(
            "  kv: warning: no reply completed inside the {dur:?} window ({} connections, server CPU {cpu:?} in \
             it): the server or the machine stalled",
            shape.conns
        );
    }
    let per_conn: Vec<u64> = ok.iter().flat_map(|t| t.per_conn.iter().copied()).collect();
    let mut lat: Vec<u32> = ok.into_iter().flat_map(|t| t.lat_ns).collect();
    lat.sort_unstable();
    Ok(Measured {
        ops_per_s: ops as f64 / dur.as_secs_f64(),
        p50_us: quantile_us(&lat, 500),
        p99_us: quantile_us(&lat, 990),
        p999_us: quantile_us(&lat, 999),
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / ops.max(1) as f64,
        conn_p90_p10: spread(per_conn),
    })
}

/// How unevenly the connections were served: the 90th percentile of the
/// replies per connection over the 10th (nearest rank); 1 when every
/// connection got as many. A connection with no reply counts as one, so
/// the figure stays finite.
fn spread(mut per_conn: Vec<u64>) -> f64 {
    if per_conn.is_empty() {
        return f64::NAN;
    }
    per_conn.sort_unstable();
    let at = |per_mille| nearest_rank(&per_conn, per_mille).max(1) as f64;
    at(900) / at(100)
}

/// The `per_mille`-th quantile of a sorted, non-empty slice (nearest rank).
fn nearest_rank<T: Copy>(sorted: &[T], per_mille: usize) -> T {
    sorted[(sorted.len() * per_mille).div_ceil(1000).clamp(1, sorted.len()) - 1]
}

/// The `per_mille`-th quantile of sorted nanoseconds, in microseconds
/// (nearest rank).
fn quantile_us(sorted_ns: &[u32], per_mille: usize) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    nearest_rank(sorted_ns, per_mille) as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Stores `items` items and returns the server's resident memory in MiB.
fn rss(server: &Server, items: usize) -> Result<f64, String> {
    kv_load::preload(server.addr, 0..items, 4)?;
    let misses = kv_load::spot_check(server.addr, items, 1000, 1)?;
    if misses > 0 {
        return Err(format!("{misses} of 1000 spot-checked items are gone after storing {items} with -m {MEMORY_MIB}"));
    }
    Ok(server.rss_kib()? as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(quantile_us(&v, 500), 500.0);
        assert_eq!(quantile_us(&v, 990), 990.0);
        assert_eq!(quantile_us(&v, 999), 999.0);
        assert_eq!(quantile_us(&[7000], 999), 7.0);
        assert!(quantile_us(&[], 500).is_nan());
    }

    #[test]
    fn spread_is_p90_over_p10_of_the_replies_per_connection() {
        assert_eq!(spread(vec![5; 50]), 1.0);
        // 25 connections at 9,600 replies and 25 at 1,900: the split of
        // issue 11's 50-connection rows.
        let split: Vec<u64> = (0..50).map(|i| if i % 2 == 0 { 9_600 } else { 1_900 }).collect();
        assert!((spread(split) - 9_600.0 / 1_900.0).abs() < 1e-9);
        assert_eq!(spread((1..=10).collect()), 9.0);
        assert_eq!(spread(vec![0, 0, 0, 7, 7, 7, 7, 7, 7, 7]), 7.0, "a starved connection counts as one reply");
        assert!(spread(Vec::new()).is_nan());
    }

    #[test]
    fn kv_rows_select_rows_by_substring() {
        let all = Opts { threads: None, loaders: 2, rows: Vec::new() };
        assert!(all.wants("kv_get90_50c_uniform") && all.wants("kv_rss"));
        let some = Opts { rows: vec!["50c_uniform".into(), "kv_rss".into()], ..all };
        assert!(some.wants("kv_get90_50c_uniform"));
        assert!(some.wants("kv_set_50c_uniform_pinned"));
        assert!(some.wants("kv_rss"));
        assert!(!some.wants("kv_get90_500c_uniform"));
        assert!(!some.wants("kv_set_50c_zipf"));
    }

    #[test]
    fn quick_rows_cover_every_dimension() {
        let b = Budget { quick: true, scale: false };
        let c = configs(b, &[0, 1], 2, 2);
        assert_eq!(c.len(), 2);
        let shapes: Vec<Shape> = c.iter().flat_map(|c| c.shapes.clone()).collect();
        assert_eq!(shapes.len(), QUICK_ROWS.len());
        for mix in [Mix::Get90, Mix::Set] {
            assert!(shapes.iter().any(|s| s.mix == mix));
        }
        for dist in [Dist::Uniform, Dist::Zipf] {
            assert!(shapes.iter().any(|s| s.dist == dist));
        }
        assert!(shapes.iter().any(|s| s.conns == 500));
        let full = configs(Budget { quick: false, scale: false }, &[0, 1], 2, 2);
        assert!(full.iter().all(|c| c.shapes.len() == 8));
        assert_eq!(configs(b, &[0], 2, 2).len(), 1);
    }

    #[test]
    fn a_binary_that_exits_is_skipped_not_fatal() {
        let spec = Spec { threads: 1, memory_mib: 64, conn_limit: 64, cpu: None };
        let e = Server::start(Impl::PercoreKv, &"/bin/true".into(), spec).err().expect("/bin/true never answers");
        assert!(e.contains("before answering `version`"), "{e}");
        assert!(matches!(start(Impl::PercoreKv, &"/bin/true".into(), spec), Ok(None)));
    }

    /// Every piece against the real peer, briefly; skipped without it.
    #[test]
    fn measures_memcached_and_kills_it() {
        let Ok(bin) = Impl::Memcached.locate() else {
            eprintln!("no memcached: skipped");
            return;
        };
        let spec = Spec { threads: 1, memory_mib: 64, conn_limit: 64, cpu: None };
        let mut server = start(Impl::Memcached, &bin, spec).unwrap().expect("memcached starts");
        let ks = Keyspace::new(2_000);
        kv_load::preload(server.addr, 0..ks.len(), 2).unwrap();
        let cfg = Config { spec, loaders: 2, loader_cpu: None, suffix: "", shapes: Vec::new() };
        for (mix, dist) in [(Mix::Get90, Dist::Zipf), (Mix::Set, Dist::Uniform)] {
            let shape = Shape { mix, conns: 8, dist };
            let m = measure(&mut server, &ks, &cfg, shape, Duration::from_millis(300)).unwrap();
            assert!(m.ops_per_s > 0.0);
            assert!(m.p50_us <= m.p99_us && m.p99_us <= m.p999_us, "{m:?}");
            assert!(m.cpu_us_per_op.is_finite());
        }
        assert_eq!(kv_load::spot_check(server.addr, ks.len(), 100, ks.issued()).unwrap(), 0);
        assert!(server.rss_kib().unwrap() > 0);
        let proc = format!("/proc/{}", server.pid());
        drop(server);
        assert!(!std::path::Path::new(&proc).exists(), "the guard killed and reaped it");
    }
}
