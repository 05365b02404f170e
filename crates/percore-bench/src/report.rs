//! Results: one row per measurement, printed as a table for people or as
//! JSON lines (`{"bench", "impl", "metric", "value", "unit", ...fields}`,
//! DESIGN.md §6).

use std::fmt::Write as _;

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Better {
    /// Smaller values win (latencies, ns per op, memory).
    Lower,
    /// Larger values win (throughput).
    Higher,
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
}

impl Row {
    pub(crate) fn new(
        bench: &'static str,
        imp: &'static str,
        metric: &'static str,
        value: f64,
        unit: &'static str,
        better: Better,
    ) -> Row {
        Row { bench, imp, metric, value, unit, better, fields: Vec::new() }
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
        s.push('}');
        s
    }

    fn group(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {}", self.metric, fields.join(" "))
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
}

impl Report {
    pub(crate) fn new(json: bool) -> Report {
        Report { json, rows: Vec::new() }
    }

    pub(crate) fn push(&mut self, row: Row) {
        if self.json {
            println!("{}", row.json());
        } else {
            eprintln!("  {} / {} / {}: {:.3} {}", row.bench, row.imp, row.group().trim(), row.value, row.unit);
        }
        self.rows.push(row);
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
                let percore = in_group.iter().find(|r| r.imp.starts_with("percore")).map(|r| r.value);
                for r in in_group {
                    let ratio = match (percore, r.imp.starts_with("percore")) {
                        (Some(p), false) if p > 0.0 && r.value > 0.0 => match r.better {
                            Better::Lower => format!("{:.2}x", r.value / p),
                            Better::Higher => format!("{:.2}x", p / r.value),
                        },
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
}
