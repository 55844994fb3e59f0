//! What one load thread measured, and how the threads' measurements are merged.
//!
//! Latencies are kept in HDR histograms (nanoseconds, 3 significant digits), so merging
//! threads is exact: the merged percentiles are those of all samples together.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Highest latency the histograms track exactly (100 s); longer ones are clamped to it.
const MAX_TRACKED_NS: u64 = 100_000_000_000;

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram documents as valid (low >= 1, high >= 2 * low,
    // sigfig <= 5): no input can make this fail.
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("constant histogram bounds are valid")
}

/// Counts and latencies of one command template.
#[derive(Debug, Clone)]
pub struct CmdStats {
    /// Command name for reports (`GET`, `SET`, ...).
    pub name: String,
    /// Replies received.
    pub count: u64,
    /// Of which error replies.
    pub errors: u64,
    /// Latency of every reply, errors included.
    pub hist: Histogram<u64>,
}

/// Everything measured in the measurement window (after warm-up).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of all replies.
    pub hist: Histogram<u64>,
    /// Per command template, indexed like the workload's templates.
    pub per_cmd: Vec<CmdStats>,
    /// Error replies by their first word (`ERR`, `WRONGTYPE`, `OOM`, ...).
    pub reply_errors: BTreeMap<String, u64>,
    /// Connection-level failures (refused, reset, timeout, protocol) by kind.
    pub conn_errors: BTreeMap<String, u64>,
    /// Cache-aside lookups that found a value.
    pub hits: u64,
    /// Cache-aside lookups that found nothing.
    pub misses: u64,
    /// Replies completed in each second of the measurement window.
    pub timeline: Vec<u64>,
    /// Requests in flight when their connection failed or the run was cut off.
    pub lost: u64,
    /// Time of the last measured reply, in ns since the measurement started.
    pub last_completion_ns: u64,
    /// Open loop: how long after its intended send time each request left the client.
    pub send_lag: Histogram<u64>,
}

impl Stats {
    /// Empty statistics for the given command names.
    pub fn new(cmd_names: &[String]) -> Stats {
        Stats {
            hist: new_histogram(),
            per_cmd: cmd_names
                .iter()
                .map(|n| CmdStats {
                    name: n.clone(),
                    count: 0,
                    errors: 0,
                    hist: new_histogram(),
                })
                .collect(),
            reply_errors: BTreeMap::new(),
            conn_errors: BTreeMap::new(),
            hits: 0,
            misses: 0,
            timeline: Vec::new(),
            lost: 0,
            last_completion_ns: 0,
            send_lag: new_histogram(),
        }
    }

    /// Records one reply to command `cmd` that took `latency_ns` and completed
    /// `since_start_ns` after the measurement started.
    #[inline]
    pub fn record(&mut self, cmd: usize, latency_ns: u64, since_start_ns: u64, error: bool) {
        let v = latency_ns.clamp(1, MAX_TRACKED_NS);
        // In-range values cannot fail to record; saturating keeps it infallible anyway.
        self.hist.saturating_record(v);
        if let Some(c) = self.per_cmd.get_mut(cmd) {
            c.count += 1;
            c.errors += u64::from(error);
            c.hist.saturating_record(v);
        }
        let sec = (since_start_ns / 1_000_000_000) as usize;
        if self.timeline.len() <= sec {
            self.timeline.resize(sec + 1, 0);
        }
        self.timeline[sec] += 1;
        self.last_completion_ns = self.last_completion_ns.max(since_start_ns);
    }

    /// Counts an error reply by its first word.
    pub fn reply_error(&mut self, word: &[u8]) {
        let word = String::from_utf8_lossy(word);
        let word = if word.is_empty() {
            "(empty)".into()
        } else {
            word
        };
        *self.reply_errors.entry(word.into_owned()).or_default() += 1;
    }

    /// Counts a connection-level failure.
    pub fn conn_error(&mut self, kind: &str) {
        *self.conn_errors.entry(kind.to_string()).or_default() += 1;
    }

    /// Total replies recorded.
    pub fn completed(&self) -> u64 {
        self.hist.len()
    }

    /// Total error replies.
    #[cfg(test)]
    pub fn total_reply_errors(&self) -> u64 {
        self.reply_errors.values().sum()
    }

    /// Adds `other` (another thread's statistics of the same workload) into `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have identical bounds, so `add` cannot fail; a mismatch would
        // be a programming error caught by the tests below.
        let _ = self.hist.add(&other.hist);
        for (mine, theirs) in self.per_cmd.iter_mut().zip(&other.per_cmd) {
            mine.count += theirs.count;
            mine.errors += theirs.errors;
            let _ = mine.hist.add(&theirs.hist);
        }
        for (k, v) in &other.reply_errors {
            *self.reply_errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.conn_errors {
            *self.conn_errors.entry(k.clone()).or_default() += v;
        }
        self.hits += other.hits;
        self.misses += other.misses;
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (i, v) in other.timeline.iter().enumerate() {
            self.timeline[i] += v;
        }
        self.lost += other.lost;
        self.last_completion_ns = self.last_completion_ns.max(other.last_completion_ns);
        let _ = self.send_lag.add(&other.send_lag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn merged_histograms_equal_one_histogram_of_all_samples() {
        let names = vec!["GET".to_string(), "SET".to_string()];
        let mut a = Stats::new(&names);
        let mut b = Stats::new(&names);
        let mut all = Stats::new(&names);
        let mut rng = Rng::new(3);
        for i in 0..20_000u64 {
            // Log-spread latencies from 1 us to ~1 s exercise many histogram buckets.
            let lat = (1_000.0 * (rng.next_f64() * 13.8).exp()) as u64;
            let cmd = (i % 3 == 0) as usize;
            let t = i * 100_000;
            let target = if rng.below(2) == 0 { &mut a } else { &mut b };
            target.record(cmd, lat, t, false);
            all.record(cmd, lat, t, false);
        }
        a.reply_error(b"ERR");
        b.reply_error(b"ERR");
        b.reply_error(b"OOM");
        b.conn_error("timeout");
        b.hits = 5;
        a.misses = 2;
        a.merge(&b);
        assert_eq!(a.completed(), 20_000);
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                a.hist.value_at_quantile(q),
                all.hist.value_at_quantile(q),
                "q={q}"
            );
        }
        assert_eq!(a.hist.max(), all.hist.max());
        for (m, x) in a.per_cmd.iter().zip(&all.per_cmd) {
            assert_eq!(m.count, x.count);
            assert_eq!(
                m.hist.value_at_quantile(0.99),
                x.hist.value_at_quantile(0.99)
            );
        }
        assert_eq!(a.timeline, all.timeline);
        assert_eq!(a.timeline.iter().sum::<u64>(), 20_000);
        assert_eq!(a.reply_errors.get("ERR"), Some(&2));
        assert_eq!(a.reply_errors.get("OOM"), Some(&1));
        assert_eq!(a.total_reply_errors(), 3);
        assert_eq!(a.conn_errors.get("timeout"), Some(&1));
        assert_eq!((a.hits, a.misses), (5, 2));
    }

    #[test]
    fn percentiles_are_accurate_to_three_digits() {
        let mut s = Stats::new(&["GET".to_string()]);
        for v in 1..=100_000u64 {
            s.record(0, v * 1000, 0, false);
        }
        let p99 = s.hist.value_at_quantile(0.99) as f64;
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.001, "{p99}");
    }
}
