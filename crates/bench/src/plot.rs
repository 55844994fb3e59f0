//! Hand-written SVG charts for `--plot`: latency by percentile (x in "nines", so p99 and
//! p99.99 get the room they deserve; y logarithmic) beside throughput per second.
//!
//! Several runs can share one chart (the comparison overlays basalt-server and
//! redis-server). No plotting crate: the output is a few hundred lines of plain SVG that
//! renders the same everywhere, GitHub included.

use crate::report::Report;
use std::fmt::Write as _;

const W: f64 = 960.0;
/// Height without the legend; each series adds a legend line.
const H: f64 = 390.0;
const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// A rectangle inside the picture where one chart is drawn.
struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

impl Panel {
    fn x(&self, frac: f64) -> f64 {
        self.x0 + frac.clamp(0.0, 1.0) * self.w
    }
    fn y(&self, frac: f64) -> f64 {
        self.y0 + self.h - frac.clamp(0.0, 1.0) * self.h
    }
}

/// Renders the runs in `series` (legend label, report) as one SVG document.
pub fn render(title: &str, series: &[(String, &Report)]) -> String {
    let mut o = String::new();
    let h = H + 18.0 * series.len() as f64;
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let left = Panel {
        x0: 70.0,
        y0: 45.0,
        w: 370.0,
        h: 280.0,
    };
    let right = Panel {
        x0: 560.0,
        y0: 45.0,
        w: 370.0,
        h: 280.0,
    };
    latency_panel(&mut o, &left, series);
    throughput_panel(&mut o, &right, series);
    // Legend under both panels.
    for (i, (label, r)) in series.iter().enumerate() {
        let y = H + 4.0 + 18.0 * i as f64;
        let c = COLORS[i % COLORS.len()];
        let _ = writeln!(
            o,
            r#"<line x1="70" y1="{}" x2="95" y2="{}" stroke="{c}" stroke-width="2.5"/>"#,
            y - 4.0,
            y - 4.0
        );
        let _ = writeln!(
            o,
            r#"<text x="102" y="{y}">{} — {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms</text>"#,
            esc(label),
            r.ops_per_sec,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.latency_ms.p99_9
        );
    }
    o.push_str("</svg>\n");
    o
}

fn latency_panel(o: &mut String, p: &Panel, series: &[(String, &Report)]) {
    let max_nines = series
        .iter()
        .filter_map(|(_, r)| r.percentile_curve.last().map(|pt| pt[0]))
        .fold(1.0f64, f64::max)
        .ceil();
    let values = series
        .iter()
        .flat_map(|(_, r)| r.percentile_curve.iter().map(|pt| pt[1]));
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= 0.0 {
        (lo, hi) = (0.01, 1.0);
    }
    // Whole decades on the log axis.
    let dlo = lo.log10().floor();
    let dhi = hi.log10().ceil().max(dlo + 1.0);
    let fy = |v: f64| (v.max(1e-9).log10() - dlo) / (dhi - dlo);
    frame(
        o,
        p,
        "percentile",
        "latency (ms, log scale)",
        "Latency by percentile",
    );
    let mut d = dlo;
    while d <= dhi + 1e-9 {
        let y = p.y(fy(10f64.powf(d)));
        grid_h(o, p, y, &fmt_ms(10f64.powf(d)));
        d += 1.0;
    }
    for n in 0..=(max_nines as usize) {
        let x = p.x(n as f64 / max_nines);
        let label = nines_label(n);
        grid_v(o, p, x, &label);
    }
    for (i, (_, r)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = r
            .percentile_curve
            .iter()
            .map(|pt| (p.x(pt[0] / max_nines), p.y(fy(pt[1]))))
            .collect();
        polyline(o, &pts, COLORS[i % COLORS.len()]);
    }
}

fn throughput_panel(o: &mut String, p: &Panel, series: &[(String, &Report)]) {
    let secs = series
        .iter()
        .map(|(_, r)| r.throughput_per_second.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let top = series
        .iter()
        .flat_map(|(_, r)| r.throughput_per_second.iter().copied())
        .max()
        .unwrap_or(0) as f64;
    let top = nice_ceiling(top.max(1.0));
    frame(
        o,
        p,
        "time (s)",
        "replies per second",
        "Throughput over time",
    );
    for i in 0..=5 {
        let v = top * i as f64 / 5.0;
        grid_h(o, p, p.y(v / top), &fmt_count(v));
    }
    let step = nice_ceiling(secs as f64 / 8.0).max(1.0) as usize;
    for s in (0..=secs).step_by(step) {
        grid_v(o, p, p.x(s as f64 / secs as f64), &s.to_string());
    }
    for (i, (_, r)) in series.iter().enumerate() {
        // Each second's count is drawn at the middle of its second.
        let pts: Vec<(f64, f64)> = r
            .throughput_per_second
            .iter()
            .enumerate()
            .map(|(s, &v)| (p.x((s as f64 + 0.5) / secs as f64), p.y(v as f64 / top)))
            .collect();
        polyline(o, &pts, COLORS[i % COLORS.len()]);
    }
}

fn frame(o: &mut String, p: &Panel, xlabel: &str, ylabel: &str, title: &str) {
    let _ = writeln!(
        o,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        p.x0, p.y0, p.w, p.h
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{title}</text>"#,
        p.x0 + p.w / 2.0,
        p.y0 - 8.0
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">{xlabel}</text>"#,
        p.x0 + p.w / 2.0,
        p.y0 + p.h + 32.0
    );
    let (lx, ly) = (p.x0 - 52.0, p.y0 + p.h / 2.0);
    let _ = writeln!(
        o,
        r#"<text x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{ylabel}</text>"#
    );
}

fn grid_h(o: &mut String, p: &Panel, y: f64, label: &str) {
    let _ = writeln!(
        o,
        r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
        p.x0,
        p.x0 + p.w
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
        p.x0 - 5.0,
        y + 4.0
    );
}

fn grid_v(o: &mut String, p: &Panel, x: f64, label: &str) {
    let _ = writeln!(
        o,
        r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/>"##,
        p.y0,
        p.y0 + p.h
    );
    let _ = writeln!(
        o,
        r#"<text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
        p.y0 + p.h + 16.0
    );
}

fn polyline(o: &mut String, pts: &[(f64, f64)], color: &str) {
    if pts.is_empty() {
        return;
    }
    let mut d = String::new();
    for (x, y) in pts {
        let _ = write!(d, "{x:.1},{y:.1} ");
    }
    let _ = writeln!(
        o,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        d.trim_end()
    );
}

/// `0%`, `90%`, `99%`, `99.9%`, ... for 0, 1, 2, 3 nines.
fn nines_label(n: usize) -> String {
    match n {
        0 => "0%".into(),
        1 => "90%".into(),
        _ => format!(
            "99{}{}%",
            if n > 2 { "." } else { "" },
            "9".repeat(n.saturating_sub(2))
        ),
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is >= v.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v - 1e-9 * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn fmt_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(123_456.0), 200_000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(fmt_count(200_000.0), "200k");
        assert_eq!(fmt_count(1_500_000.0), "1.5M");
        assert_eq!(nines_label(0), "0%");
        assert_eq!(nines_label(2), "99%");
        assert_eq!(nines_label(4), "99.99%");
    }
}

/// A grouped bar chart of percentages: one group per `(label, bars)`, one bar per
/// `(series, value in 0..=1)`; series keep their colour across groups. Used for S5's hit
/// ratios.
pub fn bars(title: &str, groups: &[(String, Vec<(String, f64)>)]) -> String {
    let mut series: Vec<&str> = Vec::new();
    for (_, bs) in groups {
        for (s, _) in bs {
            if !series.contains(&s.as_str()) {
                series.push(s);
            }
        }
    }
    let legend_h = 22.0 * series.len() as f64;
    let height = H + legend_h;
    let p = Panel {
        x0: 70.0,
        y0: 50.0,
        w: W - 100.0,
        h: H - 130.0,
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    for t in 0..=10 {
        let f = t as f64 / 10.0;
        let y = p.y(f);
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}%</text>"##,
            p.x0,
            p.x0 + p.w,
            p.x0 - 6.0,
            y + 4.0,
            t * 10
        );
    }
    let gw = p.w / groups.len().max(1) as f64;
    for (gi, (label, bs)) in groups.iter().enumerate() {
        let gx = p.x0 + gi as f64 * gw;
        let bw = (gw * 0.8) / bs.len().max(1) as f64;
        for (bi, (s, v)) in bs.iter().enumerate() {
            let ci = series.iter().position(|x| x == s).unwrap_or(0) % COLORS.len();
            let x = gx + gw * 0.1 + bi as f64 * bw;
            let y = p.y(*v);
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{:.1}</text>"#,
                bw * 0.9,
                p.y0 + p.h - y,
                COLORS[ci],
                x + bw * 0.45,
                y - 4.0,
                v * 100.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + gw / 2.0,
            p.y0 + p.h + 20.0,
            esc(label)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let y = H - 40.0 + 22.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="14" height="14" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            p.x0,
            y - 11.0,
            COLORS[i % COLORS.len()],
            p.x0 + 20.0,
            y,
            esc(s)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod bar_tests {
    #[test]
    fn bars_render_every_value() {
        let svg = super::bars(
            "t",
            &[
                ("a".into(), vec![("x".into(), 0.5), ("y".into(), 0.25)]),
                ("b".into(), vec![("x".into(), 1.0)]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">50.0<") && svg.contains(">25.0<") && svg.contains(">100.0<"));
    }
}
