//! `basalt-bench`: a RESP load generator for any Redis-protocol server, and the
//! side-by-side comparison of basalt-server with redis-server (`basalt-bench compare`).
//!
//! Why our own tool: redis-benchmark has uniform keys only, no mixed ratios, no open loop
//! and no hit ratio; memtier_benchmark is not available here. See docs/benchmarks.md.

mod cli;
mod compare;
mod evsim;
mod jobs;
mod keys;
mod plot;
mod poll;
mod pubsub;
mod report;
mod resp;
mod rng;
mod runner;
mod schedule;
mod stats;
mod workload;
mod zipf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "basalt-bench",
    version,
    about = "RESP load generator: closed/open loop, Zipf keys, mixed ratios, cache-aside hit ratio, HDR latency",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: cli::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the scenarios on basalt-server and redis-server side by side and write
    /// docs/benchmarks.md.
    Compare(Box<compare::CompareArgs>),
    /// Jobs pushed + fetched + acked per second on basalt-server's JOB.* (the
    /// `basalt-batch` workload of bench/jobs_pair_load.mjs, without Node's client cost).
    Jobs(jobs::JobsArgs),
    /// Simulate eviction policies on scenario S5's trace (no server): hit ratios before
    /// and after a scan, with each policy's own memory counted.
    EvictSim(evsim::SimArgs),
    /// PUBLISH fan-out throughput: N subscribers, one pipelining publisher.
    Pubsub(pubsub::PubsubArgs),
    /// Draw one chart from saved --json reports (FILE or LABEL=FILE).
    Plot {
        /// Output SVG file.
        #[arg(long)]
        out: PathBuf,
        /// Chart title.
        #[arg(long, default_value = "basalt-bench")]
        title: String,
        /// Reports to overlay.
        #[arg(required = true)]
        reports: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Some(Cmd::Compare(args)) => compare::main(&args),
        Some(Cmd::Jobs(args)) => jobs::main(&args),
        Some(Cmd::Pubsub(args)) => pubsub::main(&args),
        Some(Cmd::EvictSim(args)) => evsim::main(&args),
        Some(Cmd::Plot {
            out,
            title,
            reports,
        }) => plot_files(&out, &title, &reports),
        None => run_once(&cli.run),
    };
    if let Err(e) = result {
        eprintln!("basalt-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run_once(args: &cli::RunArgs) -> anyhow::Result<()> {
    let (cfg, desc) = args.to_config()?;
    let res = runner::run(&cfg)?;
    let report = report::Report::new(&cfg, &res, desc);
    print!("{}", report.human());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let title = args.label.clone().unwrap_or_else(|| {
            format!(
                "basalt-bench -> {}: {}",
                report.settings.target, report.settings.workload
            )
        });
        let svg = plot::render(&title, &[(report.settings.target.clone(), &report)]);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if res.connected == 0 {
        anyhow::bail!("no connection could be established to {}", cfg.addr);
    }
    Ok(())
}

fn plot_files(out: &std::path::Path, title: &str, specs: &[String]) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for spec in specs {
        let (label, file) = match spec.split_once('=') {
            Some((l, f)) => (l.to_string(), f.to_string()),
            None => (spec.clone(), spec.clone()),
        };
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
        let r: report::Report =
            serde_json::from_str(&text).with_context(|| format!("parsing {file}"))?;
        reports.push((label, r));
    }
    let series: Vec<(String, &report::Report)> =
        reports.iter().map(|(l, r)| (l.clone(), r)).collect();
    std::fs::write(out, plot::render(title, &series))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
