//! Turning a run's measurements into numbers people read: the JSON report (`--json`) and
//! the human table printed at the end of a run.
//!
//! The JSON holds every number of the table plus the per-second throughput and the
//! percentile curve, so `compare` and `plot` can work from saved runs.

use crate::runner::{RunConfig, RunResult};
use crate::stats::Stats;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest value.
    pub max: f64,
}

impl Percentiles {
    /// The summary of a nanosecond histogram (all zeros when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |v: u64| v as f64 / 1e6;
        Percentiles {
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            p99_99: ms(h.value_at_quantile(0.9999)),
            max: ms(h.max()),
        }
    }
}

/// One command template's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandReport {
    /// Command name.
    pub name: String,
    /// Replies.
    pub count: u64,
    /// Of which errors.
    pub errors: u64,
    /// Replies per second.
    pub ops_per_sec: f64,
    /// Latency.
    pub latency_ms: Percentiles,
}

/// The settings a run used, as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// `host:port`.
    pub target: String,
    /// Connections.
    pub clients: usize,
    /// Load threads.
    pub threads: usize,
    /// Pipeline depth (closed loop).
    pub pipeline: usize,
    /// Closed loop in batches of `pipeline` (redis-benchmark's `-P`); absent in reports
    /// written before the option existed.
    #[serde(default)]
    pub batch: bool,
    /// Measured operations requested.
    pub requests: Option<u64>,
    /// Measurement duration.
    pub duration_s: Option<f64>,
    /// Warm-up.
    pub warmup_s: f64,
    /// Human description of the request mix.
    pub workload: String,
    /// Distinct keys.
    pub keyspace: u64,
    /// Key distribution.
    pub key_pattern: String,
    /// Value sizes, `N` or `MIN-MAX` bytes.
    pub data_size: String,
    /// Open-loop rate, if any.
    pub rate: Option<f64>,
    /// Random seed.
    pub seed: u64,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Tool and version.
    pub tool: String,
    /// Settings.
    pub settings: Settings,
    /// Connections established.
    pub connections: usize,
    /// Measurement window in seconds.
    pub elapsed_s: f64,
    /// Measured replies.
    pub requests: u64,
    /// Replies per second.
    pub ops_per_sec: f64,
    /// Latency over all commands.
    pub latency_ms: Percentiles,
    /// Per command template.
    pub commands: Vec<CommandReport>,
    /// Cache-aside hits.
    pub hits: u64,
    /// Cache-aside misses.
    pub misses: u64,
    /// hits / (hits + misses), in cache-aside mode.
    pub hit_ratio: Option<f64>,
    /// Error replies by first word.
    pub reply_errors: BTreeMap<String, u64>,
    /// Connection failures by kind.
    pub connection_errors: BTreeMap<String, u64>,
    /// Requests in flight when their connection failed or the run was cut off.
    pub lost: u64,
    /// Open loop: how late the client sent requests after their intended times (a high
    /// p99 means the load generator, not the server, fell behind).
    pub send_lag_ms: Option<Percentiles>,
    /// Replies completed in each second of the measurement window.
    pub throughput_per_second: Vec<u64>,
    /// `[nines, latency ms]` points: nines = -log10(1 - quantile), so 2 is p99.
    pub percentile_curve: Vec<[f64; 2]>,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(cfg: &RunConfig, res: &RunResult, workload_desc: String) -> Report {
        let s: &Stats = &res.stats;
        let secs = res.elapsed_ns as f64 / 1e9;
        let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let (lo, hi) = cfg.data_size;
        let cache = cfg.workload.cache_aside.is_some();
        let mut timeline = s.timeline.clone();
        // The last second usually extends past the end of the window and holds only a
        // fraction of a second's replies: drop it so the chart shows no false dip.
        if timeline.len() > 1 && timeline.len() as f64 > secs {
            timeline.pop();
        }
        Report {
            tool: format!("basalt-bench {}", env!("CARGO_PKG_VERSION")),
            settings: Settings {
                target: cfg.addr.to_string(),
                clients: cfg.clients,
                threads: cfg.threads,
                pipeline: cfg.pipeline,
                batch: cfg.batch,
                requests: cfg.requests,
                duration_s: cfg.duration.map(|d| d.as_secs_f64()),
                warmup_s: cfg.warmup.as_secs_f64(),
                workload: workload_desc,
                keyspace: cfg.keyspace,
                key_pattern: cfg.key_pattern.to_string(),
                data_size: if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                },
                rate: cfg.rate,
                seed: cfg.seed,
            },
            connections: res.connected,
            elapsed_s: secs,
            requests: s.completed(),
            ops_per_sec: rate(s.completed()),
            latency_ms: Percentiles::of(&s.hist),
            commands: s
                .per_cmd
                .iter()
                .map(|c| CommandReport {
                    name: c.name.clone(),
                    count: c.count,
                    errors: c.errors,
                    ops_per_sec: rate(c.count),
                    latency_ms: Percentiles::of(&c.hist),
                })
                .collect(),
            hits: s.hits,
            misses: s.misses,
            hit_ratio: if cache && s.hits + s.misses > 0 {
                Some(s.hits as f64 / (s.hits + s.misses) as f64)
            } else {
                None
            },
            reply_errors: s.reply_errors.clone(),
            connection_errors: s.conn_errors.clone(),
            lost: s.lost,
            send_lag_ms: cfg.rate.map(|_| Percentiles::of(&s.send_lag)),
            throughput_per_second: timeline,
            percentile_curve: percentile_curve(&s.hist),
        }
    }

    /// The table printed at the end of a run.
    pub fn human(&self) -> String {
        let st = &self.settings;
        let mut o = String::new();
        let mode = match st.rate {
            Some(r) => format!("open loop at {r:.0} ops/s"),
            None if st.batch => format!("closed loop, batches of {}", st.pipeline),
            None => format!("closed loop, pipeline {}", st.pipeline),
        };
        let _ = writeln!(
            o,
            "{} -> {}: {} connections ({} up), {} thread(s), {mode}",
            self.tool, st.target, st.clients, self.connections, st.threads
        );
        let _ = writeln!(
            o,
            "workload: {}, {} keys {}, values {} B",
            st.workload, st.keyspace, st.key_pattern, st.data_size
        );
        let warm = if st.warmup_s > 0.0 {
            format!(" after {:.1} s warm-up", st.warmup_s)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "measured {:.2} s{warm}: {} replies, {:.0} ops/s\n",
            self.elapsed_s, self.requests, self.ops_per_sec
        );
        let _ = writeln!(
            o,
            "{:<10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "command",
            "count",
            "ops/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "p99.99",
            "max ms"
        );
        let mut row = |name: &str, count: u64, ops: f64, p: &Percentiles| {
            let _ = writeln!(
                o,
                "{name:<10} {count:>11} {ops:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max
            );
        };
        for c in self.commands.iter().filter(|c| c.count > 0) {
            row(&c.name, c.count, c.ops_per_sec, &c.latency_ms);
        }
        row("all", self.requests, self.ops_per_sec, &self.latency_ms);
        let _ = writeln!(o);
        if let Some(h) = self.hit_ratio {
            let _ = writeln!(
                o,
                "hit ratio {:.2}% ({} hits, {} misses)",
                h * 100.0,
                self.hits,
                self.misses
            );
        }
        let join = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(o, "error replies: {}", join(&self.reply_errors));
        let _ = writeln!(o, "connection errors: {}", join(&self.connection_errors));
        if self.lost > 0 {
            let _ = writeln!(
                o,
                "lost requests (in flight at the hard stop or on a failed connection): {}",
                self.lost
            );
        }
        if let Some(lag) = &self.send_lag_ms {
            let _ = writeln!(
                o,
                "client send lag behind schedule: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                lag.p50, lag.p99, lag.max
            );
        }
        o
    }
}

/// Points of the latency-by-percentile curve, from p0 up to the last percentile the sample
/// count supports, then the maximum.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let top = (h.len() as f64).log10().clamp(0.0, 6.0);
    let mut pts = Vec::new();
    for i in 0.. {
        let x = i as f64 * 0.05;
        if x >= top {
            break;
        }
        let q = 1.0 - 10f64.powf(-x);
        pts.push([x, h.value_at_quantile(q) as f64 / 1e6]);
    }
    pts.push([top, h.max() as f64 / 1e6]);
    pts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn curve_is_monotonic_and_ends_at_max() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let c = percentile_curve(&h);
        assert!(
            c.windows(2)
                .all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1])
        );
        assert_eq!(c.last().map(|p| p[0]), Some(4.0));
        assert!((c.last().map_or(0.0, |p| p[1]) - 10.0).abs() < 0.01);
        // p90 sits at x = 1.
        let p90 = c.iter().find(|p| (p[0] - 1.0).abs() < 1e-9).map(|p| p[1]);
        assert!(p90.is_some_and(|v| (v - 9.0).abs() < 0.01), "{p90:?}");
    }

    #[test]
    fn percentiles_of_empty_histogram_are_zero() {
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }
}
