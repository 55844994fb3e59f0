//! Results of the comparison and their markdown rendering: one self-contained block per
//! scenario, between `<!-- bench:ID:begin -->` and `<!-- bench:ID:end -->` markers, so a
//! rerun of some scenarios replaces only their blocks in docs/benchmarks.md.

use anyhow::Context;
use std::fmt::Write as _;
use std::path::Path;

/// How a metric is printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Operations per second (or per CPU-second).
    Ops,
    /// Milliseconds.
    Ms,
    /// Bytes (per key).
    Bytes,
    /// Megabytes (10^6 bytes would surprise; these are MiB).
    MiB,
    /// A fraction shown as a percentage.
    Percent,
    /// A dimensionless factor.
    Factor,
}

/// Which direction is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Better {
    /// More is better (throughput, hit ratio).
    Higher,
    /// Less is better (latency, memory).
    Lower,
}

/// One side's samples of a metric, or why there are none.
pub type Samples = Result<Vec<f64>, String>;

/// One line of a scenario table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub metric: String,
    /// Printing.
    pub unit: Unit,
    /// Direction.
    pub better: Better,
    /// Samples of the two columns (basalt and redis, or the two tools).
    pub cells: [Samples; 2],
}

impl Row {
    /// A row with no samples yet on either side.
    pub fn new(metric: impl Into<String>, unit: Unit, better: Better) -> Row {
        Row {
            metric: metric.into(),
            unit,
            better,
            cells: [Ok(Vec::new()), Ok(Vec::new())],
        }
    }

    /// Adds a sample to column `side` (ignored once the side is marked n/a).
    pub fn push(&mut self, side: usize, v: f64) {
        if let Ok(vs) = &mut self.cells[side] {
            vs.push(v);
        }
    }

    /// Marks column `side` n/a with a reason (the first reason wins).
    pub fn na(&mut self, side: usize, why: &str) {
        if self.cells[side].is_ok() {
            self.cells[side] = Err(why.to_string());
        }
    }
}

/// One scenario's results and how they were produced.
#[derive(Debug, Clone)]
pub struct ScenarioOut {
    /// `S1`, `S2`, ..., `V` (validation).
    pub id: String,
    /// Heading.
    pub title: String,
    /// Column names.
    pub columns: [String; 2],
    /// Table lines.
    pub rows: Vec<Row>,
    /// Exact commands (servers and load), one per line.
    pub commands: Vec<String>,
    /// Remarks (n/a reasons, client saturation, ...).
    pub notes: Vec<String>,
    /// Chart path relative to the docs file, if one was drawn.
    pub plot: Option<String>,
}

/// The median (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

fn fmt_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ops => {
            if v >= 1e6 {
                format!("{:.2}M", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.1}k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        }
        Unit::Ms => format!("{v:.3} ms"),
        Unit::Bytes => format!("{v:.1} B"),
        Unit::MiB => format!("{:.1} MiB", v / (1024.0 * 1024.0)),
        Unit::Percent => format!("{:.2} %", v * 100.0),
        Unit::Factor => format!("{v:.2}×"),
    }
}

fn fmt_cell(unit: Unit, s: &Samples) -> String {
    match s {
        Err(_) => "n/a".to_string(),
        Ok(v) => match median(v) {
            None => "n/a".to_string(),
            Some(m) => {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if v.len() > 1 && m.abs() > 0.0 {
                    let spread = (hi - lo) / 2.0 / m.abs() * 100.0;
                    format!("{} ±{spread:.0}%", fmt_value(unit, m))
                } else {
                    fmt_value(unit, m)
                }
            }
        },
    }
}

/// The markdown block of one scenario, markers included.
pub fn render(s: &ScenarioOut, footer: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "<!-- bench:{}:begin -->", s.id);
    let _ = writeln!(o, "### {} — {}\n", s.id, s.title);
    let _ = writeln!(
        o,
        "| metric | {} | {} | {} / {} | better |\n|---|---:|---:|---:|---|",
        s.columns[0], s.columns[1], s.columns[0], s.columns[1]
    );
    for r in &s.rows {
        let ratio = match (&r.cells[0], &r.cells[1]) {
            (Ok(a), Ok(b)) => match (median(a), median(b)) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                _ => "n/a".to_string(),
            },
            _ => "n/a".to_string(),
        };
        let better = match r.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {ratio} | {better} |",
            r.metric,
            fmt_cell(r.unit, &r.cells[0]),
            fmt_cell(r.unit, &r.cells[1])
        );
    }
    // Collect each side's n/a reasons once.
    let mut reasons: Vec<String> = Vec::new();
    for r in &s.rows {
        for (i, c) in r.cells.iter().enumerate() {
            if let Err(why) = c {
                let line = format!("{}: n/a — {why}", s.columns[i]);
                if !reasons.contains(&line) {
                    reasons.push(line);
                }
            }
        }
    }
    let _ = writeln!(o);
    for n in reasons.iter().chain(&s.notes) {
        let _ = writeln!(o, "- {n}");
    }
    if !reasons.is_empty() || !s.notes.is_empty() {
        let _ = writeln!(o);
    }
    if let Some(p) = &s.plot {
        let _ = writeln!(o, "![{} chart]({p})\n", s.id);
    }
    let _ = writeln!(o, "{footer}\n");
    let _ = writeln!(o, "```sh");
    for c in &s.commands {
        let _ = writeln!(o, "{c}");
    }
    let _ = writeln!(o, "```");
    let _ = writeln!(o, "<!-- bench:{}:end -->", s.id);
    o
}

/// Replaces (or appends) each block in the markdown file at `path`, creating it if needed.
pub fn update_file(path: &Path, blocks: &[(String, String)]) -> anyhow::Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Benchmarks\n\n## Results\n".to_string()
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for (id, block) in blocks {
        text = replace_block(&text, id, block);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `text` with the block of `id` replaced by `block` (which carries its own markers), or
/// with `block` appended if the markers are absent.
pub fn replace_block(text: &str, id: &str, block: &str) -> String {
    let begin = format!("<!-- bench:{id}:begin -->");
    let end = format!("<!-- bench:{id}:end -->");
    if let (Some(b), Some(e)) = (text.find(&begin), text.find(&end))
        && e > b
    {
        let mut after = e + end.len();
        if text[after..].starts_with('\n') {
            after += 1;
        }
        return format!("{}{}{}", &text[..b], block, &text[after..]);
    }
    let sep = if text.ends_with("\n\n") || text.is_empty() {
        ""
    } else if text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{text}{sep}{block}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn blocks_are_replaced_in_place_or_appended() {
        let doc = "# B\n\nintro\n<!-- bench:S1:begin -->\nold\n<!-- bench:S1:end -->\ntail\n";
        let new = "<!-- bench:S1:begin -->\nnew\n<!-- bench:S1:end -->\n";
        assert_eq!(
            replace_block(doc, "S1", new),
            "# B\n\nintro\n<!-- bench:S1:begin -->\nnew\n<!-- bench:S1:end -->\ntail\n"
        );
        let added = replace_block(
            doc,
            "S2",
            "<!-- bench:S2:begin -->\nx\n<!-- bench:S2:end -->\n",
        );
        assert!(added.starts_with(doc));
        assert!(added.ends_with("\n\n<!-- bench:S2:begin -->\nx\n<!-- bench:S2:end -->\n"));
    }

    #[test]
    fn table_shows_medians_ratios_and_reasons() {
        let mut r = Row::new("ops/s", Unit::Ops, Better::Higher);
        for v in [100_000.0, 110_000.0, 90_000.0] {
            r.push(1, v);
        }
        for v in [150_000.0, 150_000.0, 150_000.0] {
            r.push(0, v);
        }
        let mut m = Row::new("bytes per key", Unit::Bytes, Better::Lower);
        m.push(1, 70.0);
        m.na(0, "not built yet");
        m.push(0, 1.0); // ignored: the side is n/a
        let s = ScenarioOut {
            id: "S9".into(),
            title: "test".into(),
            columns: ["basalt-server".into(), "redis-server".into()],
            rows: vec![r, m],
            commands: vec!["cmd one".into()],
            notes: vec!["a note".into()],
            plot: Some("../bench/plots/s9.svg".into()),
        };
        let md = render(&s, "footer");
        assert!(
            md.contains("| ops/s | 150.0k ±0% | 100.0k ±10% | 1.50 | higher |"),
            "{md}"
        );
        assert!(
            md.contains("| bytes per key | n/a | 70.0 B | n/a | lower |"),
            "{md}"
        );
        assert!(md.contains("- basalt-server: n/a — not built yet"));
        assert!(md.contains("- a note"));
        assert!(md.contains("![S9 chart](../bench/plots/s9.svg)"));
        assert!(md.starts_with("<!-- bench:S9:begin -->\n"));
        assert!(md.ends_with("<!-- bench:S9:end -->\n"));
    }
}
