//! Results: one row per measurement, printed as a table for people or as
//! JSON lines (`{"bench", "impl", "metric", "value", "unit", ...fields}`,
//! `docs/DESIGN.md` §6).
//!
//! Every row carries the physical floor of its metric: the smallest value a
//! real measurement can give on any machine this runs on (for lower-is-better
//! metrics) or the largest (for rates). A figure past its floor is not a
//! result but a broken measurement (too few iterations, the timer's
//! resolution, work the compiler removed, a wrong accounting): the table
//! prints `BELOW FLOOR` instead of a ratio, `--json` adds
//! `"flag":"below_floor"` and the floor, and no ratio is computed against
//! it. The defaults, by unit (docs/BENCHMARKS.md, "Floors"):
//!
//! | unit | floor |
//! | --- | --- |
//! | `ns` (a time per operation) | 0.25 ns, about one cycle at 4 GHz |
//! | `us` (a latency) | 0.00025 us, the same 0.25 ns |
//! | `1/s`, `req/s`, `op/s`, `Kops/s`, `Mops/s` | one operation per 0.25 ns per CPU |
//! | memory (`B`, `MiB`), CPU time (`ms`) | none by default: rows that must allocate set one with [`Row::floor`] |

use crate::progress::Progress;
use std::fmt::Write as _;

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Better {
    /// Smaller values win (latencies, ns per op, memory).
    Lower,
    /// Larger values win (throughput).
    Higher,
    /// Neither: context to read the other rows by (no ratio, no chart bar).
    Context,
}

/// One measurement.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) bench: &'static str,
    pub(crate) imp: &'static str,
    pub(crate) metric: &'static str,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    /// Extra parameters (`threads`, `mode`, ...), part of the row's identity.
    pub(crate) fields: Vec<(&'static str, String)>,
    /// The physical bound of the metric (module doc): a `Lower` row below
    /// it, or a `Higher` row above it, is flagged instead of reported.
    pub(crate) floor: Option<f64>,
}

/// A time per operation below this is under one cycle at 4 GHz.
pub(crate) const NS_FLOOR: f64 = 0.25;

impl Row {
    pub(crate) fn new(
        bench: &'static str,
        imp: &'static str,
        metric: &'static str,
        value: f64,
        unit: &'static str,
        better: Better,
    ) -> Row {
        Row { bench, imp, metric, value, unit, better, fields: Vec::new(), floor: default_floor(unit, better) }
    }

    /// Set the floor of this row's metric (for a `Higher` row: its ceiling).
    pub(crate) fn floor(mut self, floor: f64) -> Row {
        self.floor = Some(floor);
        self
    }

    /// Whether the value is past the physical floor: not a result.
    pub(crate) fn below_floor(&self) -> bool {
        match (self.floor, self.better) {
            (Some(f), Better::Lower) => self.value < f,
            (Some(c), Better::Higher) => self.value > c,
            (Some(_), Better::Context) | (None, _) => false,
        }
    }

    pub(crate) fn field(mut self, key: &'static str, value: impl ToString) -> Row {
        self.fields.push((key, value.to_string()));
        self
    }

    fn json(&self) -> String {
        let mut s = format!(
            "{{\"bench\":{},\"impl\":{},\"metric\":{},\"value\":{},\"unit\":{}",
            quote(self.bench),
            quote(self.imp),
            quote(self.metric),
            number(self.value),
            quote(self.unit)
        );
        for (k, v) in &self.fields {
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() => write!(s, ",{}:{}", quote(k), number(n)),
                _ => write!(s, ",{}:{}", quote(k), quote(v)),
            }
            .expect("writing to a String cannot fail");
        }
        if let (true, Some(f)) = (self.below_floor(), self.floor) {
            write!(s, ",\"flag\":\"below_floor\",\"floor\":{}", number(f)).expect("infallible");
        }
        s.push('}');
        s
    }

    fn group(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {}", self.metric, fields.join(" "))
    }
}

/// The floor of a metric by its unit (module doc).
fn default_floor(unit: &str, better: Better) -> Option<f64> {
    let per_s = 1e9 / NS_FLOOR * crate::util::cpus() as f64;
    match (better, unit) {
        (Better::Lower, "ns") => Some(NS_FLOOR),
        (Better::Lower, "us") => Some(NS_FLOOR / 1e3),
        (Better::Higher, "1/s" | "req/s" | "op/s") => Some(per_s),
        (Better::Higher, "Kops/s") => Some(per_s / 1e3),
        (Better::Higher, "Mops/s") => Some(per_s / 1e6),
        _ => None,
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).expect("infallible"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

/// Collects rows; prints JSON lines at once, or tables at the end.
pub(crate) struct Report {
    json: bool,
    rows: Vec<Row>,
    /// The progress bar on stderr, when it is a terminal and not `--json`.
    progress: Option<Progress>,
}

impl Report {
    pub(crate) fn new(json: bool) -> Report {
        Report { json, rows: Vec::new(), progress: None }
    }

    /// Show progress (subsystem, row, time left) on stderr while rows come.
    pub(crate) fn with_progress(mut self, progress: Option<Progress>) -> Report {
        self.progress = progress;
        self
    }

    /// The progress bar, if one is shown.
    pub(crate) fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    pub(crate) fn push(&mut self, row: Row) {
        let flag = if row.below_floor() { " BELOW FLOOR" } else { "" };
        let line =
            format!("  {} / {} / {}: {:.3} {}{flag}", row.bench, row.imp, row.group().trim(), row.value, row.unit);
        if self.json {
            println!("{}", row.json());
        } else {
            match &self.progress {
                Some(p) => p.println(&line),
                None => eprintln!("{line}"),
            }
        }
        if let Some(p) = &self.progress {
            p.row(&format!("{} / {}", row.bench, row.imp));
        }
        self.rows.push(row);
    }

    /// Every row so far, in the order they came.
    pub(crate) fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Rows past their floor (module doc).
    pub(crate) fn flagged(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.below_floor())
    }

    /// The human table: one block per bench, one line per (metric, fields)
    /// group and implementation, with percore's advantage over each peer
    /// ("2.5x" means percore is 2.5 times better on that metric).
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let mut benches: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !benches.contains(&r.bench) {
                benches.push(r.bench);
            }
        }
        for bench in benches {
            writeln!(out, "\n{bench}").expect("infallible");
            writeln!(out, "  {:<34} {:<22} {:>14} {:<10} {:>14}", "metric", "impl", "value", "unit", "percore vs it")
                .expect("infallible");
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.bench == bench).collect();
            let mut groups: Vec<String> = Vec::new();
            for r in &rows {
                if !groups.contains(&r.group()) {
                    groups.push(r.group());
                }
            }
            for g in groups {
                let in_group: Vec<&&Row> = rows.iter().filter(|r| r.group() == g).collect();
                let percore: Option<&Row> =
                    in_group.iter().map(|r| **r).find(|r| r.imp == "percore" && !r.below_floor());
                for r in in_group {
                    let ratio = match (percore, r.imp.starts_with("percore") || r.imp.starts_with("none")) {
                        _ if r.below_floor() => "BELOW FLOOR".to_string(),
                        (Some(p), false) => ratio(p, r).map_or(String::new(), format_ratio),
                        _ => String::new(),
                    };
                    writeln!(out, "  {:<34} {:<22} {:>14.3} {:<10} {:>14}", g.trim(), r.imp, r.value, r.unit, ratio)
                        .expect("infallible");
                }
            }
        }
        out
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Stop the progress bar (before the table goes to stdout).
    pub(crate) fn finish(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
    }
}

/// "2.50x", with more digits below 0.1x so a large loss does not read "0.00x".
fn format_ratio(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}x")
    } else {
        format!("{x:.2}x")
    }
}

/// Row identity within a bench: the metric and the fields.
pub(crate) fn group_key(r: &Row) -> String {
    r.group()
}

/// percore's advantage over `peer` on the same metric ("2.5" means percore
/// is 2.5 times better), or `None` when either value is unusable (past its
/// floor, zero, not finite).
pub(crate) fn ratio(percore: &Row, peer: &Row) -> Option<f64> {
    let (p, v) = (percore.value, peer.value);
    if percore.below_floor() || peer.below_floor() || !(p > 0.0 && v > 0.0 && p.is_finite() && v.is_finite()) {
        return None;
    }
    match peer.better {
        Better::Lower => Some(v / p),
        Better::Higher => Some(p / v),
        Better::Context => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_documented_keys() {
        let r =
            Row::new("b", "percore", "ns_per_op", 1.5, "ns", Better::Lower).field("threads", 2).field("mode", "warm");
        assert_eq!(
            r.json(),
            r#"{"bench":"b","impl":"percore","metric":"ns_per_op","value":1.5,"unit":"ns","threads":2,"mode":"warm"}"#
        );
    }

    #[test]
    fn ratios_point_the_right_way() {
        let mut rep = Report::new(false);
        rep.push(Row::new("b", "percore", "ns", 1.0, "ns", Better::Lower));
        rep.push(Row::new("b", "peer", "ns", 4.0, "ns", Better::Lower));
        rep.push(Row::new("c", "percore", "ops", 8.0, "op/s", Better::Higher));
        rep.push(Row::new("c", "peer", "ops", 2.0, "op/s", Better::Higher));
        let t = rep.table();
        assert_eq!(t.matches("4.00x").count(), 2, "{t}");
    }

    #[test]
    fn figures_past_the_floor_are_flagged_not_compared() {
        let fast = Row::new("b", "percore", "ns_per_pair", 0.1, "ns", Better::Lower);
        assert!(fast.below_floor());
        assert!(fast.json().ends_with(r#","flag":"below_floor","floor":0.25}"#), "{}", fast.json());
        assert!(!Row::new("b", "percore", "ns", 0.3, "ns", Better::Lower).below_floor());
        let zero = Row::new("m", "tokio", "bytes", 0.0, "B", Better::Lower);
        assert!(!zero.below_floor(), "memory has no default floor");
        assert!(zero.floor(16.0).below_floor());
        let rate = Row::new("r", "peer", "ops", 1e15, "1/s", Better::Higher);
        assert!(rate.below_floor(), "a rate above one op per 0.25 ns per CPU");

        let mut rep = Report::new(false);
        rep.push(fast);
        rep.push(Row::new("b", "peer", "ns_per_pair", 4.0, "ns", Better::Lower));
        let t = rep.table();
        assert!(t.contains("BELOW FLOOR"), "{t}");
        assert!(!t.contains("40.00x"), "no ratio against a flagged figure: {t}");
        assert_eq!(rep.flagged().count(), 1);
    }
}
