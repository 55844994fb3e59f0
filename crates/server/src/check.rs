//! `basalt-server --check-rdb <file>` and `basalt-server --check-aof [--fix [--yes]]
//! <manifest|dir|file>`: what `redis-check-rdb` and `redis-check-aof` do, with their
//! report layout and exit codes (0: valid, or fixed; 1: invalid, or not fixed).
//!
//! Neither check modifies anything, except `--check-aof --fix` confirmed by `y` on
//! standard input (or by `--yes`, the non-interactive form): it truncates the last file of
//! the AOF to the end of its last valid command, as `redis-check-aof --fix` does. A bad
//! file that is not the last one (a base, or an earlier incremental file) cannot be fixed
//! by cutting it, and is reported as such.
//!
//! Error descriptions are Basalt's (the offsets are the same as Redis's for the same
//! damage; the wording of the reason differs).

use basalt_engine::EncodingLimits;
use basalt_persist::aof::manifest::Manifest;
use basalt_persist::aof::resp::{CommandReader, ReadError};
use basalt_persist::rdb::RdbError;
use basalt_persist::rdb::file::{LoadOptions, LoadSummary, load};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Counts of an RDB check.
#[derive(Debug, Default, Clone, Copy)]
struct KeyCounts {
    keys: u64,
    expires: u64,
    already_expired: u64,
}

fn unix_ms() -> u64 {
    crate::server::unix_ms()
}

/// Checks an RDB stream of `len` bytes, printing redis-check-rdb's report to `out`.
/// Returns the summary, or the error after reporting it.
fn check_rdb_stream<R: Read>(
    input: R,
    len: u64,
    name: &str,
    out: &mut dyn Write,
) -> Result<LoadSummary, RdbError> {
    let _ = writeln!(out, "[offset 0] Checking RDB file {name}");
    let opts = LoadOptions {
        limits: EncodingLimits::default(),
        verify_checksum: true,
    };
    let now = unix_ms();
    let mut counts = KeyCounts::default();
    let result = load(input, len, &opts, |k| {
        counts.keys += 1;
        if k.expire_ms != 0 {
            counts.expires += 1;
            if k.expire_ms < now {
                counts.already_expired += 1;
            }
        }
        Ok(())
    });
    match &result {
        Ok(s) => {
            for (k, v) in &s.aux {
                let _ = writeln!(
                    out,
                    "[info] AUX FIELD {} = '{}'",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                );
            }
            if s.checksum_verified {
                let _ = writeln!(out, "[offset {}] Checksum OK", s.bytes);
            } else {
                let _ = writeln!(
                    out,
                    "[offset {}] RDB file was saved with checksum disabled: no check performed.",
                    s.bytes
                );
            }
            let _ = writeln!(out, "[offset {}] \\o/ RDB looks OK! \\o/", s.bytes);
        }
        Err(e) => {
            let _ = writeln!(out, "--- RDB ERROR DETECTED ---");
            let offset = match e {
                RdbError::Truncated { offset } | RdbError::Corrupt { offset, .. } => *offset,
                _ => len,
            };
            let _ = writeln!(out, "[offset {offset}] {e}");
        }
    }
    let _ = writeln!(out, "[info] {} keys read", counts.keys);
    let _ = writeln!(out, "[info] {} expires", counts.expires);
    let _ = writeln!(out, "[info] {} already expired", counts.already_expired);
    result
}

/// `--check-rdb <file>`: 0 if the file loads (checksum included), 1 otherwise.
pub fn check_rdb(path: &Path, out: &mut dyn Write) -> i32 {
    let name = path.display().to_string();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "[offset 0] Checking RDB file {name}");
            let _ = writeln!(out, "--- RDB ERROR DETECTED ---");
            let _ = writeln!(out, "[offset 0] Cannot open the RDB file: {e}");
            return 1;
        }
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    match check_rdb_stream(BufReader::new(file), len, &name, out) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// What checking one AOF file found.
struct FileCheck {
    size: u64,
    /// End of the last valid command (or of the RDB part).
    ok_up_to: u64,
    /// Where the RESP part starts (after an RDB preamble or base), for line counts.
    resp_start: u64,
    /// The RDB part could not be read: nothing after it can be trusted or fixed.
    rdb_bad: bool,
}

impl FileCheck {
    fn valid(&self) -> bool {
        !self.rdb_bad && self.ok_up_to == self.size
    }
}

/// Checks one AOF file: an optional RDB part (preamble or base), then RESP commands.
fn check_aof_file(path: &Path, name: &str, out: &mut dyn Write) -> std::io::Result<FileCheck> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let rdb = r.fill_buf()?.starts_with(b"REDIS");
    let mut start = 0;
    if rdb {
        match check_rdb_stream(&mut r, size, name, out) {
            Ok(s) => {
                let _ = writeln!(out, "RDB preamble is OK, proceeding with AOF tail...");
                start = s.bytes;
            }
            Err(_) => {
                let _ = writeln!(out, "RDB preamble of AOF file is not sane, aborting.");
                return Ok(FileCheck {
                    size,
                    ok_up_to: 0,
                    resp_start: 0,
                    rdb_bad: true,
                });
            }
        }
    }
    let mut reader = CommandReader::new(&mut r, size - start, start);
    let ok_up_to = loop {
        match reader.next_command() {
            Ok(Some(_)) => {}
            Ok(None) => break reader.valid_up_to(),
            Err(ReadError::Truncated { valid_up_to }) => {
                let _ = writeln!(out, "0x{valid_up_to:>16x}: Unexpected end of file");
                break valid_up_to;
            }
            Err(ReadError::Format { offset, what }) => {
                let _ = writeln!(out, "0x{offset:>16x}: {what}");
                break offset;
            }
            Err(ReadError::Io(e)) => return Err(e),
        }
    };
    Ok(FileCheck {
        size,
        ok_up_to,
        resp_start: start,
        rdb_bad: false,
    })
}

/// The newlines of the RESP part up to `ok_up_to` (Redis's `ok_up_to_line` is 1 plus
/// these, summed over the files checked so far).
fn newlines(path: &Path, c: &FileCheck) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut lines = 0u64;
    let mut pos = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while pos < c.ok_up_to {
        let Ok(n) = f.read(&mut buf) else { break };
        if n == 0 {
            break;
        }
        let lo = c.resp_start.saturating_sub(pos).min(n as u64) as usize;
        let hi = (c.ok_up_to - pos).min(n as u64) as usize;
        if lo < hi {
            lines += buf[lo..hi].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        pos += n as u64;
    }
    lines
}

/// How `--fix` gets its confirmation.
pub enum Confirm<'a> {
    /// `--yes`: no question asked.
    Yes,
    /// Read a line from this input; `y` or `Y` confirms.
    Ask(&'a mut dyn BufRead),
}

/// The result of checking one file, printed as Redis does; `Some(true)` when it is
/// valid, `Some(false)` when not (and not fixed), `None` when it was fixed.
#[allow(clippy::too_many_arguments)]
fn report_and_maybe_fix(
    path: &Path,
    name: &str,
    label: &str,
    c: &FileCheck,
    fix: Option<&mut Confirm<'_>>,
    is_last: bool,
    line: &mut u64,
    out: &mut dyn Write,
) -> bool {
    if c.size == 0 {
        // redis-check-aof's `AOF_CHECK_EMPTY`: valid, no analysis line.
        let _ = writeln!(out, "{label}{name} is empty");
        return true;
    }
    if !c.rdb_bad {
        *line += newlines(path, c);
        let _ = writeln!(
            out,
            "AOF analyzed: filename={name}, size={}, ok_up_to={}, ok_up_to_line={}, diff={}",
            c.size,
            c.ok_up_to,
            *line,
            c.size - c.ok_up_to
        );
    }
    if c.valid() {
        let _ = writeln!(out, "{label}{name} is valid");
        return true;
    }
    let Some(confirm) = fix else {
        let _ = writeln!(
            out,
            "AOF {name} is not valid. Use the --fix option to try fixing it."
        );
        return false;
    };
    if c.rdb_bad || !is_last {
        let _ = writeln!(
            out,
            "AOF {name} is not valid and is not the last file of the AOF: it cannot be fixed by truncating it."
        );
        return false;
    }
    let _ = writeln!(
        out,
        "This will shrink the AOF {name} from {} bytes, with {} bytes, to {} bytes",
        c.size,
        c.size - c.ok_up_to,
        c.ok_up_to
    );
    let yes = match confirm {
        Confirm::Yes => true,
        Confirm::Ask(input) => {
            let _ = write!(out, "Continue? [y/N]: ");
            let _ = out.flush();
            let mut answer = String::new();
            let _ = input.read_line(&mut answer);
            matches!(answer.trim_start().chars().next(), Some('y' | 'Y'))
        }
    };
    if !yes {
        let _ = writeln!(out, "Aborting...");
        return false;
    }
    let done = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(c.ok_up_to)?;
            f.sync_all()
        });
    match done {
        Ok(()) => {
            let _ = writeln!(out, "Successfully truncated AOF {name}");
            true
        }
        Err(e) => {
            let _ = writeln!(out, "Failed to truncate AOF {name}: {e}");
            false
        }
    }
}

/// True when the file begins with `REDIS` (an RDB, or an RDB preamble).
fn starts_with_rdb_signature(path: &Path) -> bool {
    let mut head = [0u8; 5];
    File::open(path).is_ok_and(|mut f| f.read_exact(&mut head).is_ok() && &head == b"REDIS")
}

/// Finds the manifest in a directory: the only `*.manifest` file in it.
fn manifest_in(dir: &Path) -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("Cannot read directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "manifest"))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("No AOF manifest file in {}", dir.display())),
        _ => Err(format!(
            "More than one AOF manifest file in {}: name the one to check",
            dir.display()
        )),
    }
}

/// `--check-aof [--fix] <manifest|dir|file>`: 0 if every file is valid (or was fixed),
/// 1 otherwise. A directory is checked through its manifest; a file named `*.manifest`
/// as a multi-part AOF; any other file as an old-style AOF (RDB preamble allowed).
pub fn check_aof(path: &Path, mut fix: Option<Confirm<'_>>, out: &mut dyn Write) -> i32 {
    let manifest = if path.is_dir() {
        match manifest_in(path) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = writeln!(out, "{e}");
                return 1;
            }
        }
    } else if path.extension().is_some_and(|x| x == "manifest") {
        Some(path.to_path_buf())
    } else {
        None
    };
    let Some(manifest) = manifest else {
        let _ = writeln!(out, "Start checking Old-Style AOF");
        let name = path.display().to_string();
        return match check_aof_file(path, &name, out) {
            Ok(c) => {
                if report_and_maybe_fix(path, &name, "AOF ", &c, fix.as_mut(), true, &mut 1, out) {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                let _ = writeln!(out, "Cannot read file: {name} ({e})");
                1
            }
        };
    };
    let text = match std::fs::read(&manifest) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "Cannot read file: {} ({e})", manifest.display());
            return 1;
        }
    };
    let m = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(out, "Invalid AOF manifest file format: {e}");
            return 1;
        }
    };
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let _ = writeln!(out, "Start checking Multi Part AOF");
    let total = usize::from(m.base.is_some()) + m.incrs.len();
    if total == 0 {
        let _ = writeln!(out, "The AOF manifest lists no file");
        return 1;
    }
    let mut index = 0;
    // Redis counts lines across the files of the manifest.
    let mut line = 1u64;
    let mut check = |f: &basalt_persist::aof::manifest::AofFile,
                     label: &str,
                     out: &mut dyn Write,
                     fix: Option<&mut Confirm<'_>>|
     -> bool {
        index += 1;
        let p = dir.join(&f.name);
        match check_aof_file(&p, &f.name, out) {
            Ok(c) => {
                report_and_maybe_fix(&p, &f.name, label, &c, fix, index == total, &mut line, out)
            }
            Err(e) => {
                let _ = writeln!(out, "Cannot read file: {} ({e})", f.name);
                false
            }
        }
    };
    if let Some(b) = &m.base {
        // As redis-check-aof: the format is the content's (a base moved in by the
        // upgrade of a single-file AOF is named `appendonly.aof` and may be an RDB).
        let rdb = starts_with_rdb_signature(&dir.join(&b.name));
        let _ = writeln!(
            out,
            "Start to check BASE AOF ({} format).",
            if rdb { "RDB" } else { "RESP" }
        );
        if !check(b, "BASE AOF ", out, fix.as_mut()) {
            return 1;
        }
    }
    if !m.incrs.is_empty() {
        let _ = writeln!(out, "Start to check INCR files.");
        for f in &m.incrs {
            if !check(f, "INCR AOF ", out, fix.as_mut()) {
                return 1;
            }
        }
    }
    let _ = writeln!(out, "All AOF files and manifest are valid");
    0
}

/// Runs `--check-rdb` / `--check-aof` if `args` (without the program name) ask for one:
/// `Some(exit code)`, or `None` for a normal server start.
pub fn from_args(args: &[String]) -> Option<i32> {
    let first = args.first()?;
    let mut stdout = std::io::stdout().lock();
    match first.as_str() {
        "--check-rdb" => {
            let [_, file] = args else {
                let _ = writeln!(stdout, "Usage: basalt-server --check-rdb <rdb-file-name>");
                return Some(1);
            };
            Some(check_rdb(Path::new(file), &mut stdout))
        }
        "--check-aof" => {
            let mut fix = false;
            let mut yes = false;
            let mut file = None;
            for a in &args[1..] {
                match a.as_str() {
                    "--fix" => fix = true,
                    "--yes" => yes = true,
                    f if file.is_none() => file = Some(f),
                    _ => file = Some(""),
                }
            }
            let Some(file) = file.filter(|f| !f.is_empty() && (fix || !yes)) else {
                let _ = writeln!(
                    stdout,
                    "Usage: basalt-server --check-aof [--fix [--yes]] <file.manifest|dir|file.aof>"
                );
                return Some(1);
            };
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let confirm = match (fix, yes) {
                (false, _) => None,
                (true, true) => Some(Confirm::Yes),
                (true, false) => Some(Confirm::Ask(&mut input)),
            };
            Some(check_aof(Path::new(file), confirm, &mut stdout))
        }
        _ => None,
    }
}
