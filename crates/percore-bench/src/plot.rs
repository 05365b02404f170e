//! `--plot DIR`: one SVG chart per subsystem, `DIR/<subsystem>.svg`, with a
//! bar per (row, peer): percore's advantage over that peer in the same run
//! (the table's "percore vs it": peer / percore for times and memory,
//! percore / peer for rates), on a logarithmic axis with 1x marked. Bars
//! right of 1x are percore wins (green), left of it losses (red). Rows past
//! their floor (see `report.rs`) and rows without a percore figure are left
//! out. Drawn with plotters' SVG backend only (no font files: the viewer
//! renders the text).

use crate::report::{group_key, ratio, Row};
use plotters::prelude::*;
use std::io;
use std::path::{Path, PathBuf};

/// One bar: its label and percore's advantage.
struct Bar {
    label: String,
    ratio: f64,
}

/// The subsystem a bench belongs to: its name up to the first `_`.
fn subsystem(bench: &str) -> &str {
    bench.split('_').next().unwrap_or(bench)
}

/// The bars of one subsystem, in row order.
fn bars(rows: &[Row], sub: &str) -> Vec<Bar> {
    let mut out = Vec::new();
    let mine: Vec<&Row> = rows.iter().filter(|r| subsystem(r.bench) == sub).collect();
    let mut seen: Vec<(&str, String)> = Vec::new();
    for r in &mine {
        let key = (r.bench, group_key(r));
        if seen.contains(&key) {
            continue;
        }
        let group: Vec<&&Row> = mine.iter().filter(|x| x.bench == key.0 && group_key(x) == key.1).collect();
        seen.push(key);
        let Some(p) = group.iter().find(|x| x.imp == "percore") else { continue };
        for peer in &group {
            if peer.imp.starts_with("percore") || peer.imp.starts_with("none") {
                continue;
            }
            if let Some(x) = ratio(p, peer) {
                let g = group_key(peer);
                out.push(Bar { label: format!("{} {} vs {}", peer.bench, g.trim(), peer.imp), ratio: x });
            }
        }
    }
    out
}

/// Write one chart per subsystem that has bars; returns the files written.
pub(crate) fn write(dir: &Path, rows: &[Row], quick: bool) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut subs: Vec<&str> = Vec::new();
    for r in rows {
        let s = subsystem(r.bench);
        if !subs.contains(&s) {
            subs.push(s);
        }
    }
    let mut written = Vec::new();
    for sub in subs {
        let bars = bars(rows, sub);
        if bars.is_empty() {
            continue;
        }
        let path = dir.join(format!("{sub}.svg"));
        chart(&path, sub, &bars, quick).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

fn chart(path: &Path, sub: &str, bars: &[Bar], quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    const ROW_PX: u32 = 22;
    const LABEL_PX: u32 = 520;
    let n = bars.len();
    let (w, h) = (1100u32, 90 + ROW_PX * n as u32);
    let lo = bars.iter().map(|b| b.ratio).fold(0.5f64, f64::min) / 1.3;
    let hi = bars.iter().map(|b| b.ratio).fold(2.0f64, f64::max) * 1.3;

    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "percore-bench {sub} ({} mode): percore's advantage over each peer, same run (>1: percore better)",
        if quick { "quick" } else { "full" }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(LABEL_PX)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.2}x"))
        .draw()?;
    let label_style = ("sans-serif", 12).into_font().color(&BLACK);
    for (i, b) in bars.iter().enumerate() {
        // Top to bottom in row order.
        let y = (n - 1 - i) as f64;
        let color = if b.ratio >= 1.0 { RGBColor(46, 139, 87) } else { RGBColor(200, 60, 60) };
        chart.draw_series(std::iter::once(Rectangle::new([(1.0, y + 0.15), (b.ratio, y + 0.85)], color.filled())))?;
        let (x_end, py) = chart.plotting_area().map_coordinate(&(b.ratio.max(1.0), y + 0.5));
        root.draw(&Text::new(format!("{:.2}x", b.ratio), (x_end + 4, py - 6), label_style.clone()))?;
        root.draw(&Text::new(b.label.clone(), (8, py - 6), label_style.clone()))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(vec![(1.0, 0.0), (1.0, n as f64)], BLACK.stroke_width(1))))?;
    root.present()?;
    Ok(())
}
