//! A dossier's monitoring charts as inline SVG, the same data the PDF
//! draws: one line per series, the rules' limits dashed and labelled, dates
//! below. Text from the record is escaped here (the templates do not see
//! inside the SVG).

use std::fmt::Write;

use super::svg::escape;
use crate::reports::Chart;

const W: f32 = 640.0;
const H: f32 = 220.0;
const LEFT: f32 = 56.0;
const RIGHT: f32 = 150.0;
const TOP: f32 = 16.0;
const BOTTOM: f32 = 44.0;
/// Series colours with enough contrast on white (WCAG 3:1 for graphics).
const COLOURS: [&str; 4] = ["#00519e", "#b34700", "#006b35", "#6a2d91"];

/// `chart` as an SVG element.
pub fn svg(chart: &Chart) -> String {
    let points: Vec<(i64, f64)> = chart.series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if points.is_empty() {
        return String::new();
    }
    let values = points.iter().map(|p| p.1).chain(chart.limits.iter().map(|l| l.value));
    let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.08;
    (lo, hi) = (lo - pad, hi + pad);
    let (t0, t1) = points.iter().fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let x = |t: i64| if t1 == t0 { (x0 + x1) / 2.0 } else { x0 + (t - t0) as f32 / (t1 - t0) as f32 * (x1 - x0) };
    let y = |v: f64| y0 - ((v - lo) / (hi - lo)) as f32 * (y0 - y1);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{}"><rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#555"/>"##,
        escape(&format!("{}; {} below the chart sums it up", chart.title, chart.y_label)),
        x1 - x0,
        y0 - y1
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
            x0 - 4.0,
            y(v) + 3.0,
            format_value(v, hi - lo)
        );
    }
    let ticks: Vec<i64> = if t1 == t0 { vec![t0] } else { (0..=3).map(|i| t0 + (t1 - t0) * i / 3).collect() };
    for t in ticks {
        let date = chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
        let _ =
            write!(out, r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{date}</text>"##, x(t), y0 + 14.0);
    }
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
        (x0 + x1) / 2.0,
        y0 + 28.0,
        escape(&chart.x_label)
    );
    for limit in &chart.limits {
        let ly = y(limit.value);
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{ly}" x2="{x1}" y2="{ly}" stroke="#333" stroke-dasharray="4 3"/><text x="{}" y="{}" font-size="10">{} {}</text>"##,
            x1 + 4.0,
            ly + 3.0,
            escape(&limit.label),
            limit.value
        );
    }
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = series.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let _ =
            write!(out, r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##, path.join(" "));
        for (t, v) in &series.points {
            let _ = write!(out, r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{colour}"/>"##, x(*t), y(*v));
        }
        let ly = y0 + 40.0 - 12.0 * (chart.series.len() - 1 - i) as f32;
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}" font-size="10">{}</text>"##,
            x1 + 4.0,
            ly - 3.0,
            x1 + 20.0,
            ly - 3.0,
            x1 + 24.0,
            ly,
            escape(&series.name)
        );
    }
    out.push_str("</svg>");
    out
}

fn format_value(v: f64, span: f64) -> String {
    let decimals = (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{ChartLimit, ChartSeries};

    #[test]
    fn labels_from_the_record_are_escaped() {
        let chart = Chart {
            title: "auc".into(),
            y_label: "auc".into(),
            x_label: "window end (UTC)".into(),
            series: vec![ChartSeries { name: "prod <script>".into(), points: vec![(0, 0.9), (86_400, 0.8)] }],
            limits: vec![ChartLimit { label: "r\"x".into(), value: 0.85 }],
        };
        let svg = svg(&chart);
        assert!(svg.contains("prod &lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("r&quot;x"));
        assert!(svg.contains("1970-01-01") && svg.contains("1970-01-02"));
    }
}
