//! `basalt-golden`: records and checks the differential golden files of `tests/golden/`.
//!
//! `record` replays the `.cmds` sequences against a live server (redis-server 7.0.15, the
//! reference) and writes `<name>.golden` files; `check` replays them against any server and
//! prints every difference from the recordings. The tool never starts a server: point it at
//! one you started on loopback (`redis-server --port P --save '' --appendonly no`).
//!
//! ```text
//! basalt-golden record --port P [--dir DIR] [--out DIR] [--runs N] [FILE...]
//! basalt-golden check  --port P [--dir DIR] [--skip FILE]... [FILE...]
//! basalt-golden list   [--dir DIR]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use basalt_testkit::golden;

const USAGE: &str = "usage:
  basalt-golden record --port P [--dir DIR] [--out DIR] [--runs N] [FILE...]
      replay FILE.cmds (default: all in DIR) against 127.0.0.1:P and write DIR/FILE.golden
      (or OUT/FILE.golden); every sequence runs N times (default 2) to catch replies
      that change between runs and need a ?sorted/?type/?range marker
  basalt-golden check --port P [--dir DIR] [--skip FILE]... [FILE...]
      replay and compare with the recorded goldens; exit 1 on any difference
  basalt-golden list [--dir DIR]
      count sequences and commands per file
DIR defaults to the repository's tests/golden; FILE is a name (strings), a file name
(strings.cmds) or a path.";

/// A mistake in the command line: reported together with the usage text.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

struct Opts {
    cmd: String,
    port: Option<u16>,
    dir: PathBuf,
    out: Option<PathBuf>,
    runs: usize,
    skip: Vec<String>,
    files: Vec<String>,
}

fn parse_opts(mut args: impl Iterator<Item = String>) -> anyhow::Result<Opts> {
    let cmd = args.next().ok_or_else(|| usage("missing subcommand"))?;
    let mut o = Opts {
        cmd,
        port: None,
        dir: golden::golden_dir(),
        out: None,
        runs: 2,
        skip: Vec::new(),
        files: Vec::new(),
    };
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--port" => {
                o.port = Some(
                    value()?
                        .parse()
                        .map_err(|_| usage("--port wants a port number"))?,
                )
            }
            "--dir" => o.dir = PathBuf::from(value()?),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--runs" => {
                o.runs = value()?
                    .parse()
                    .map_err(|_| usage("--runs wants a number"))?
            }
            "--skip" => o.skip.push(value()?),
            "-h" | "--help" => return Err(usage("")),
            s if s.starts_with("--") => return Err(usage(format!("unknown option {s}"))),
            _ => o.files.push(a),
        }
    }
    Ok(o)
}

/// Resolves the FILE arguments (or all `.cmds` of the directory).
fn files(o: &Opts) -> anyhow::Result<Vec<PathBuf>> {
    if o.files.is_empty() {
        return golden::cmds_files(&o.dir);
    }
    o.files
        .iter()
        .map(|f| {
            let p = PathBuf::from(f);
            if p.is_file() {
                return Ok(p);
            }
            let name = if f.ends_with(".cmds") {
                f.clone()
            } else {
                format!("{f}.cmds")
            };
            let p = o.dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                bail!("no sequence file {f} (looked for {})", p.display())
            }
        })
        .collect()
}

fn skipped(o: &Opts, f: &Path) -> bool {
    let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
    let stem = f.file_stem().map(|n| n.to_string_lossy().into_owned());
    o.skip
        .iter()
        .any(|s| Some(s) == name.as_ref() || Some(s) == stem.as_ref())
}

fn run() -> anyhow::Result<bool> {
    let o = parse_opts(std::env::args().skip(1))?;
    match o.cmd.as_str() {
        "record" => {
            let port = o.port.ok_or_else(|| usage("record needs --port"))?;
            let out = o.out.clone().unwrap_or_else(|| o.dir.clone());
            let version = golden::server_version(port);
            let mut total = golden::RecordSummary::default();
            for f in files(&o)? {
                let s = golden::record_file(&f, port, &out, o.runs, &version)?;
                println!(
                    "{}: {} sequences, {} commands",
                    f.display(),
                    s.sequences,
                    s.commands
                );
                total.sequences += s.sequences;
                total.commands += s.commands;
            }
            println!(
                "recorded {} sequences, {} commands from {version} into {}",
                total.sequences,
                total.commands,
                out.display()
            );
            Ok(true)
        }
        "check" => {
            let port = o.port.ok_or_else(|| usage("check needs --port"))?;
            let mut all = Vec::new();
            let mut seqs = 0;
            for f in files(&o)? {
                if skipped(&o, &f) {
                    println!("{}: skipped", f.display());
                    continue;
                }
                seqs += golden::load_cmds(&f).map(|s| s.len()).unwrap_or(0);
                let m = golden::run_file(&f, port);
                println!("{}: {} differences", f.display(), m.len());
                all.extend(m);
            }
            for m in &all {
                println!("{m}");
            }
            println!("{seqs} sequences checked, {} differences", all.len());
            Ok(all.is_empty())
        }
        "list" => {
            let (mut ts, mut tc) = (0, 0);
            for f in files(&o)? {
                let seqs = golden::load_cmds(&f)?;
                let cmds: usize = seqs
                    .iter()
                    .map(|s| {
                        s.steps
                            .iter()
                            .filter(|st| matches!(st, basalt_testkit::Step::Command { .. }))
                            .count()
                    })
                    .sum();
                println!("{}: {} sequences, {cmds} commands", f.display(), seqs.len());
                ts += seqs.len();
                tc += cmds;
            }
            println!("total: {ts} sequences, {tc} commands");
            Ok(true)
        }
        other => Err(usage(format!("unknown subcommand {other}"))),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("basalt-golden: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("basalt-golden: {e:#}");
            ExitCode::from(2)
        }
    }
}
