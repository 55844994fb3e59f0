//! `basalt-bench compare`: runs the benchmark scenarios on basalt-server and redis-server
//! side by side and writes the results into docs/benchmarks.md.
//!
//! Method: each server is pinned to one core (`taskset -c 0`) and the load generator to the
//! other (`taskset -c 1`), both servers get the same settings (no persistence, same
//! `maxmemory` where a scenario needs one; basalt also `--threads 1`), every scenario is
//! run alternately on both (A B A B ...) `--runs` times and medians are reported, with the
//! servers' CPU time read from `/proc/PID/stat`. A scenario whose feature a server lacks
//! is reported as n/a with the reason, and filled by a later run.

mod scenarios;
mod server;
mod table;

use crate::report::Report;
use anyhow::{Context, bail};
use server::{ServerSpec, shell_quote};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Options of `basalt-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// basalt-server binary.
    #[arg(long, default_value = "target/release/basalt-server")]
    pub basalt_bin: PathBuf,
    /// redis-server binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_bin: PathBuf,
    /// redis-benchmark binary (validation scenario V).
    #[arg(long, default_value = "redis-benchmark")]
    pub redis_benchmark_bin: PathBuf,
    /// Scenarios to run, comma separated: S1,S2,S3,S4,S5,S6,V.
    #[arg(long, default_value = "S1,S2,S3,S4,V,S5,S6", value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Runs per scenario and server (alternating).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Small sizes and short runs: a smoke test of the whole pipeline, not for the docs.
    #[arg(long)]
    pub quick: bool,
    /// Core the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// Core the load generator is pinned to.
    #[arg(long, default_value_t = 1)]
    pub load_cpu: usize,
    /// Seconds measured per throughput run (S1-S3).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of warm-up before each throughput run.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Keys in S1-S3 and the validation.
    #[arg(long)]
    pub keys: Option<u64>,
    /// Key counts loaded in S4, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub s4_keys: Option<Vec<u64>>,
    /// Keyspace of S5.
    #[arg(long)]
    pub s5_keys: Option<u64>,
    /// maxmemory of S5 (as given to both servers).
    #[arg(long)]
    pub s5_maxmemory: Option<String>,
    /// Cache-aside operations of each S5 phase (warm-up, measure).
    #[arg(long)]
    pub s5_requests: Option<u64>,
    /// S5: keep one popularity (Zipf ranks' permutation) through all phases of a run,
    /// instead of the permutation of each phase's seed (then the measurement starts
    /// with keys ranked differently from the warm-up's, and a scan's damage is mixed
    /// with that change).
    #[arg(long)]
    pub s5_stable_ranks: bool,
    /// Keys loaded before the S6 snapshot.
    #[arg(long)]
    pub s6_keys: Option<u64>,
    /// Markdown file whose scenario blocks are regenerated.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub out: PathBuf,
    /// Directory for the charts (linked from the markdown file).
    #[arg(long, default_value = "bench/plots")]
    pub plots_dir: PathBuf,
    /// Scratch directory for server directories and JSON reports.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// Sizes after applying `--quick` defaults and overrides.
#[derive(Debug, Clone)]
pub struct Sizes {
    runs: usize,
    duration: f64,
    warmup: f64,
    keys: u64,
    s4_keys: Vec<u64>,
    s5_keys: u64,
    s5_maxmemory: String,
    s5_requests: u64,
    s5_stable_ranks: bool,
    s6_keys: u64,
    validate_requests: u64,
}

impl Sizes {
    fn from(a: &CompareArgs) -> Sizes {
        let q = a.quick;
        Sizes {
            runs: a.runs.unwrap_or(if q { 2 } else { 5 }).max(1),
            duration: a.duration.unwrap_or(if q { 2.0 } else { 10.0 }),
            warmup: a.warmup.unwrap_or(if q { 0.5 } else { 2.0 }),
            keys: a.keys.unwrap_or(if q { 100_000 } else { 1_000_000 }),
            s4_keys: a.s4_keys.clone().unwrap_or(if q {
                vec![100_000]
            } else {
                vec![1_000_000, 10_000_000]
            }),
            s5_keys: a.s5_keys.unwrap_or(if q { 1_000_000 } else { 10_000_000 }),
            s5_maxmemory: a.s5_maxmemory.clone().unwrap_or(if q {
                "32mb".into()
            } else {
                "256mb".into()
            }),
            s5_requests: a.s5_requests.unwrap_or(if q { 300_000 } else { 3_000_000 }),
            s5_stable_ranks: a.s5_stable_ranks,
            s6_keys: a.s6_keys.unwrap_or(if q { 100_000 } else { 1_000_000 }),
            validate_requests: if q { 200_000 } else { 1_000_000 },
        }
    }
}

/// Column 0 is basalt-server, column 1 redis-server.
pub const BASALT: usize = 0;
/// Column of redis-server.
pub const REDIS: usize = 1;

/// Shared state of a comparison.
pub struct Ctx {
    args: CompareArgs,
    sizes: Sizes,
    exe: PathBuf,
    work: PathBuf,
    /// Server specs, or why a server cannot run at all.
    sides: [Result<ServerSpec, String>; 2],
    seq: std::cell::Cell<u64>,
}

impl Ctx {
    /// Runs basalt-bench pinned to the load core against `port` with `args` and returns
    /// its JSON report.
    fn bench(&self, port: u16, args: &[String]) -> anyhow::Result<Report> {
        let child = self.spawn_bench(port, args)?;
        self.finish_bench(child)
    }

    /// Starts a basalt-bench run in the background (see [`Ctx::finish_bench`]).
    fn spawn_bench(&self, port: u16, args: &[String]) -> anyhow::Result<(Child, PathBuf)> {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let json = self.work.join(format!("run-{n}.json"));
        let child = Command::new("taskset")
            .arg("-c")
            .arg(self.args.load_cpu.to_string())
            .arg(&self.exe)
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .arg("--quiet")
            .arg("--json")
            .arg(&json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting basalt-bench under taskset")?;
        Ok((child, json))
    }

    /// Waits for a background run and reads its report.
    fn finish_bench(&self, (child, json): (Child, PathBuf)) -> anyhow::Result<Report> {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "basalt-bench failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("reading {}", json.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// How a load run is shown in the docs.
    fn bench_cmdline(&self, args: &[String]) -> String {
        let shown: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        format!(
            "taskset -c {} basalt-bench --port $PORT {}",
            self.args.load_cpu,
            shown.join(" ")
        )
    }
}

/// Entry point of `basalt-bench compare`.
pub fn main(args: &CompareArgs) -> anyhow::Result<()> {
    let sizes = Sizes::from(args);
    let exe = std::env::current_exe().context("locating basalt-bench itself")?;
    let work = match &args.work_dir {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("basalt-compare-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    if Command::new("taskset").arg("-V").output().is_err() {
        bail!("taskset is required (util-linux)");
    }
    // Keep this process (its /proc sampling, its waiting) off the server core too.
    pin_self(args.load_cpu);
    let basalt = find_binary(&args.basalt_bin).map(|bin| ServerSpec {
        name: "basalt",
        bin,
        own_args: vec!["--threads".into(), "1".into()],
    });
    let redis = find_binary(&args.redis_bin).map(|bin| ServerSpec {
        name: "redis",
        bin,
        own_args: Vec::new(),
    });
    if let Err(e) = &redis {
        bail!("redis-server is needed as the reference: {e}");
    }
    let ctx = Ctx {
        args: args.clone(),
        sizes,
        exe,
        work: work.clone(),
        sides: [basalt, redis],
        seq: std::cell::Cell::new(0),
    };
    let wanted: Vec<String> = args
        .scenarios
        .iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    let want = |id: &str| wanted.iter().any(|w| w == id);
    // Each group's blocks are written as soon as it finishes, so an interrupted
    // comparison keeps what it measured.
    let publish = |outs: Vec<table::ScenarioOut>| -> anyhow::Result<()> {
        let footer = footer(&ctx);
        let blocks: Vec<(String, String)> = outs
            .iter()
            .map(|o| (o.id.clone(), table::render(o, &footer)))
            .collect();
        for (_, b) in &blocks {
            println!("{b}");
        }
        table::update_file(&args.out, &blocks)?;
        eprintln!(
            "basalt-bench compare: wrote {} to {}",
            outs.iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            args.out.display()
        );
        Ok(())
    };
    if want("S1") || want("S2") || want("S3") {
        publish(scenarios::throughput(
            &ctx,
            want("S1"),
            want("S2"),
            want("S3"),
        ))?;
    }
    if want("S4") {
        publish(vec![scenarios::memory(&ctx)])?;
    }
    if want("V") {
        publish(vec![scenarios::validation(&ctx)])?;
    }
    if want("S5") {
        publish(vec![scenarios::hit_ratio(&ctx)])?;
    }
    if want("S6") {
        publish(vec![scenarios::snapshot(&ctx)])?;
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// A binary given as a path, or found on PATH.
fn find_binary(p: &Path) -> Result<PathBuf, String> {
    if p.components().count() > 1 {
        // Absolute: the servers run in their own scratch directories, where the default
        // `target/release/basalt-server` would name nothing.
        return if p.is_file() {
            p.canonicalize()
                .map_err(|e| format!("{}: {e}", p.display()))
        } else {
            Err(format!(
                "{} not found (build it with `cargo build --release -p basalt-server`)",
                p.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
        .ok_or_else(|| format!("{} not found on PATH", p.display()))
}

fn pin_self(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write only inside it and
    // sched_setaffinity reads exactly its size. Failure (e.g. a 1-core machine) is harmless.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Date, machine, versions and the exact command, shown under every scenario.
fn footer(ctx: &Ctx) -> String {
    let cmd: Vec<String> = std::env::args().map(|a| shell_quote(&a)).collect();
    // Online CPUs of the machine (not of this process, which is pinned to one).
    // SAFETY: sysconf has no memory effects.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kb| kb as f64 / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = |spec: &Result<ServerSpec, String>| match spec {
        Ok(s) => Command::new(&s.bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        Err(e) => e.clone(),
    };
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "Medians of {runs} runs per server, run alternately (basalt, redis, basalt, ...), ±: half \
         the min-max range. Measured {date} on {model} ({nproc} cores, {mem_gib:.0} GiB, Linux {kernel}); \
         load average {load} at the end; servers pinned to core {sc}, load to core {lc}. basalt-server: {bv} (repository HEAD {commit} when measured); \
         redis-server: {rv}. Generated by `{cmd}`; servers and load:",
        runs = ctx.sizes.runs,
        load = load.join(" "),
        date = utc_now(),
        kernel = kernel.trim(),
        sc = ctx.args.server_cpu,
        lc = ctx.args.load_cpu,
        bv = version(&ctx.sides[BASALT]),
        rv = version(&ctx.sides[REDIS]),
        cmd = cmd.join(" "),
    )
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn a_relative_binary_path_is_made_absolute() {
        // Tests run in the crate's directory: this file, named relative to it.
        let rel = Path::new("src/compare/mod.rs");
        let found = find_binary(rel).expect("found");
        assert!(found.is_absolute(), "{}", found.display());
        assert_eq!(found, rel.canonicalize().expect("canonical"));
        assert!(find_binary(Path::new("bin/nothing-here")).is_err());
    }

    #[test]
    fn quick_sizes_are_small() {
        let a = CompareArgs {
            basalt_bin: "x".into(),
            redis_bin: "y".into(),
            redis_benchmark_bin: "z".into(),
            scenarios: vec![],
            runs: None,
            quick: true,
            server_cpu: 0,
            load_cpu: 1,
            duration: None,
            warmup: None,
            keys: Some(5),
            s4_keys: None,
            s5_keys: None,
            s5_maxmemory: None,
            s5_requests: None,
            s5_stable_ranks: false,
            s6_keys: None,
            out: "o".into(),
            plots_dir: "p".into(),
            work_dir: None,
        };
        let s = Sizes::from(&a);
        assert_eq!(s.keys, 5);
        assert!(s.runs >= 1 && s.duration <= 2.0);
        let full = Sizes::from(&CompareArgs {
            quick: false,
            keys: None,
            ..a
        });
        assert_eq!(full.runs, 5);
        assert_eq!(full.keys, 1_000_000);
        assert_eq!(full.s4_keys, vec![1_000_000, 10_000_000]);
    }
}
