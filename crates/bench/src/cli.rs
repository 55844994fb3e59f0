//! Command-line options of `basalt-bench` and their translation into a validated
//! [`RunConfig`].

use crate::keys::KeyPattern;
use crate::runner::RunConfig;
use crate::workload::{Template, Workload, parse_ratio};
use anyhow::{Context, bail};
use clap::Args;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

/// Options of a load run (the default command).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(long, short = 'p', default_value_t = 6379)]
    pub port: u16,
    /// Number of connections.
    #[arg(long, short = 'c', default_value_t = 50)]
    pub clients: usize,
    /// Load threads (one event loop each); connections are spread over them.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Requests in flight per connection (closed loop).
    #[arg(long, short = 'P', default_value_t = 1)]
    pub pipeline: usize,
    /// Closed loop in batches, as redis-benchmark's `-P`: a connection sends its
    /// `--pipeline` requests together and the next batch only when all are answered
    /// (default: a new request as each reply arrives).
    #[arg(long)]
    pub batch: bool,
    /// Measured operations to run (split over the connections); with --cache-aside,
    /// the GETs (SETs after misses come on top).
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Seconds to measure; a hard stop. Default 10 when --requests is not given.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of unmeasured load before the measurement.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Weights of the GET and SET commands, or of the --command templates in order.
    #[arg(long, default_value = "9:1")]
    pub ratio: String,
    /// A command template, repeatable; `__key__` and `__data__` are replaced per request
    /// (e.g. "HSET h:__key__ f __data__").
    #[arg(long = "command")]
    pub commands: Vec<String>,
    /// Cache-aside workload: GET, and on a miss SET the same key; reports the hit ratio.
    #[arg(long)]
    pub cache_aside: bool,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    pub keyspace: u64,
    /// uniform | zipf:ALPHA | sequential | gaussian.
    #[arg(long, default_value = "uniform")]
    pub key_pattern: String,
    /// Key name prefix.
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// Zero-pad key numbers to this many digits (e.g. 12 for redis-benchmark's key names).
    #[arg(long, default_value_t = 0)]
    pub key_pad: usize,
    /// Value size in bytes: N, or MIN-MAX for uniformly random sizes.
    #[arg(long, short = 'd', default_value = "64")]
    pub data_size: String,
    /// Seconds of TTL on writes (adds EX to SETs that have no expiry).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Open loop: total requests per second; latency counts from the intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most requests in flight per connection.
    #[arg(long, default_value_t = 1000)]
    pub max_inflight: usize,
    /// Seed of all random choices (keys, values, mix).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seed of the Zipf ranks' permutation, i.e. which keys are hot (default: --seed).
    /// Runs that share it see the same popularity with different draws.
    #[arg(long)]
    pub rank_seed: Option<u64>,
    /// Seconds without a reply after which a connection is dropped as failed.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seconds allowed for each connect.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// Write the full report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a chart (latency by percentile, throughput over time) as SVG to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Title of the --plot chart.
    #[arg(long)]
    pub label: Option<String>,
    /// No per-second progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// End the measurement when this file appears (checked every 20 ms): sending stops,
    /// replies in flight are awaited, and the report covers the window up to then. For
    /// scripts that measure "while something happens" (bench/bgsave-latency.sh).
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !(0.0..1e9).contains(&v) {
        bail!("--{name} must be a non-negative number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses `N` or `MIN-MAX`.
pub fn parse_data_size(s: &str) -> anyhow::Result<(usize, usize)> {
    const MAX: usize = 512 * 1024 * 1024;
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
        None => (s.trim().parse::<usize>(), s.trim().parse::<usize>()),
    };
    let (lo, hi) = match (lo, hi) {
        (Ok(a), Ok(b)) => (a, b),
        _ => bail!("bad --data-size {s:?} (expected N or MIN-MAX)"),
    };
    if lo > hi || hi > MAX {
        bail!("bad --data-size {s:?}: need MIN <= MAX <= {MAX}");
    }
    Ok((lo, hi))
}

impl RunArgs {
    /// The validated run configuration and a description of the workload.
    pub fn to_config(&self) -> anyhow::Result<(RunConfig, String)> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}:{}", self.host, self.port))?
            .next()
            .with_context(|| format!("{}:{} resolves to no address", self.host, self.port))?;
        if self.clients == 0 || self.threads == 0 || self.pipeline == 0 || self.max_inflight == 0 {
            bail!("--clients, --threads, --pipeline and --max-inflight must be at least 1");
        }
        if self.keyspace == 0 {
            bail!("--keyspace must be at least 1");
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            bail!("--rate must be a positive number of operations per second");
        }
        let (workload, desc) = if self.cache_aside {
            if !self.commands.is_empty() {
                bail!("--cache-aside and --command cannot be combined");
            }
            (
                Workload::cache_aside(self.ttl).map_err(anyhow::Error::msg)?,
                "cache-aside (GET, SET on miss)".to_string(),
            )
        } else if self.commands.is_empty() {
            let w = parse_ratio(&self.ratio).map_err(anyhow::Error::msg)?;
            (
                Workload::get_set(&w, self.ttl).map_err(anyhow::Error::msg)?,
                format!("GET:SET {}", self.ratio),
            )
        } else {
            let mut templates = Vec::new();
            for c in &self.commands {
                let mut t = Template::parse(c).map_err(anyhow::Error::msg)?;
                if let Some(ttl) = self.ttl {
                    t.add_ttl_to_set(ttl);
                }
                templates.push(t);
            }
            // One template needs no ratio; several take --ratio unless it is the default.
            let weights = if templates.len() == 1 {
                vec![1]
            } else if self.ratio == "9:1" && templates.len() != 2 {
                vec![1; templates.len()]
            } else {
                parse_ratio(&self.ratio).map_err(anyhow::Error::msg)?
            };
            let desc = self
                .commands
                .iter()
                .zip(&weights)
                .map(|(c, w)| format!("{w}x \"{c}\""))
                .collect::<Vec<_>>()
                .join(" + ");
            (
                Workload::weighted(templates, &weights).map_err(anyhow::Error::msg)?,
                desc,
            )
        };
        let duration = match (self.duration, self.requests) {
            (Some(d), _) => Some(secs("duration", d)?),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        let key_pattern: KeyPattern = self.key_pattern.parse().map_err(anyhow::Error::msg)?;
        let cfg = RunConfig {
            addr,
            clients: self.clients,
            threads: self.threads,
            pipeline: self.pipeline,
            batch: self.batch,
            requests: self.requests,
            duration,
            warmup: secs("warmup", self.warmup)?,
            workload,
            keyspace: self.keyspace,
            key_pattern,
            key_prefix: self.key_prefix.as_bytes().to_vec(),
            key_pad: self.key_pad.min(20),
            data_size: parse_data_size(&self.data_size)?,
            rate: self.rate,
            max_inflight: self.max_inflight,
            seed: self.seed,
            rank_seed: self.rank_seed.unwrap_or(self.seed),
            timeout: secs("timeout", self.timeout)?,
            connect_timeout: secs("connect-timeout", self.connect_timeout)?,
            progress: !self.quiet,
            stop_file: self.stop_file.clone(),
        };
        Ok((cfg, desc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    fn config(args: &[&str]) -> RunConfig {
        use clap::Parser;
        let w = Wrap::parse_from(std::iter::once("basalt-bench").chain(args.iter().copied()));
        w.run.to_config().unwrap().0
    }

    /// `--rank-seed` chooses the hot keys apart from `--seed`, which it defaults to.
    #[test]
    fn rank_seed_defaults_to_seed() {
        let c = config(&["--seed", "7", "--key-pattern", "zipf:0.99"]);
        assert_eq!((c.seed, c.rank_seed), (7, 7));
        let c = config(&["--seed", "7", "--rank-seed", "3"]);
        assert_eq!((c.seed, c.rank_seed), (7, 3));
        // Same rank seed, different draws: the same key is hottest.
        let hottest = |seed: u64, rank_seed: u64| {
            let mut g = crate::keys::KeyGen::new(
                &crate::keys::KeyPattern::Zipf(1.2),
                1000,
                rank_seed,
                0,
                1,
            )
            .unwrap();
            let mut rng = crate::rng::Rng::new(seed);
            let mut counts = vec![0u32; 1000];
            for _ in 0..5000 {
                counts[g.next(&mut rng) as usize] += 1;
            }
            (0..1000).max_by_key(|&i| counts[i]).unwrap()
        };
        assert_eq!(hottest(1, 3), hottest(2, 3));
        assert_ne!(hottest(1, 3), hottest(1, 4));
    }

    #[test]
    fn data_sizes() {
        assert_eq!(parse_data_size("64").unwrap(), (64, 64));
        assert_eq!(parse_data_size("10-100").unwrap(), (10, 100));
        assert!(parse_data_size("100-10").is_err());
        assert!(parse_data_size("x").is_err());
        assert!(parse_data_size("999999999999").is_err());
    }
}
