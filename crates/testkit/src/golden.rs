//! Differential testing against replies recorded from redis-server: the `.golden` file
//! format, reply comparison, the replay runner and the recorder.
//!
//! `tests/golden/<name>.cmds` holds command sequences ([`crate::seqfile`]);
//! `tests/golden/<name>.golden` holds, for each of its commands, the exact reply bytes that
//! redis-server 7.0.15 sent, escaped to one line per reply so diffs stay readable:
//!
//! ```text
//! === set-get
//! > SET k v
//! < +OK\r\n
//! > !resp3
//! > GET k
//! < $1\r\nv\r\n
//! > @sub ?read 2
//! < *3\r\n$7\r\nmessage\r\n...
//! < *3\r\n$7\r\nmessage\r\n...
//! ```
//!
//! A step has as many `< ` lines as it reads replies: one for a command, N for `?read N`,
//! none for a directive.
//!
//! [`run_all`] replays every sequence against a live server and returns the differences;
//! it starts nothing itself, so the same code checks Basalt (in `cargo test`) and re-checks
//! the goldens against redis-server (in CI, through the `basalt-golden` binary).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::client::RawClient;
use crate::resp::{escape, unescape};
use crate::seqfile::{Check, Sequence, Step, parse_cmds};

/// One recorded step of a golden sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenStep {
    /// The step's text in the `.cmds` file (command line with marker, or directive).
    pub text: String,
    /// The raw bytes of each reply read: one for a command, N for `?read N`, none for a
    /// directive.
    pub replies: Vec<Vec<u8>>,
}

/// True for a directive's text (`!resp3`, `@sub !resp3`, `!sleep 5`): no replies.
fn is_directive(text: &str) -> bool {
    let body = match text.strip_prefix('@') {
        Some(rest) => rest
            .split_once(char::is_whitespace)
            .map_or("", |(_, b)| b.trim_start()),
        None => text,
    };
    body.starts_with('!')
}

/// One recorded sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenSeq {
    /// Sequence name, as in the `.cmds` file.
    pub name: String,
    /// Its steps, in order.
    pub steps: Vec<GoldenStep>,
}

/// Renders a golden file. `header` lines are written as `#` comments at the top.
pub fn write_golden(header: &[String], seqs: &[GoldenSeq]) -> String {
    let mut out = String::new();
    for h in header {
        out.push_str("# ");
        out.push_str(h);
        out.push('\n');
    }
    for seq in seqs {
        out.push_str("\n=== ");
        out.push_str(&seq.name);
        out.push('\n');
        for step in &seq.steps {
            out.push_str("> ");
            out.push_str(&step.text);
            out.push('\n');
            for reply in &step.replies {
                out.push_str("< ");
                out.push_str(&escape(reply));
                out.push('\n');
            }
        }
    }
    out
}

/// Parses a golden file written by [`write_golden`].
pub fn parse_golden(text: &str) -> anyhow::Result<Vec<GoldenSeq>> {
    let mut seqs: Vec<GoldenSeq> = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("=== ") {
            seqs.push(GoldenSeq {
                name: name.to_string(),
                steps: Vec::new(),
            });
            continue;
        }
        let Some(seq) = seqs.last_mut() else {
            bail!("line {n}: entry before the first `=== name`");
        };
        if let Some(step) = line.strip_prefix("> ") {
            seq.steps.push(GoldenStep {
                text: step.to_string(),
                replies: Vec::new(),
            });
        } else if let Some(reply) = line.strip_prefix("< ") {
            let step = seq
                .steps
                .last_mut()
                .filter(|s| !is_directive(&s.text))
                .ok_or_else(|| anyhow!("line {n}: reply without a command before it"))?;
            step.replies
                .push(unescape(reply).map_err(|e| anyhow!("line {n}: {e}"))?);
        } else {
            bail!("line {n}: expected `=== `, `> ` or `< `");
        }
    }
    for seq in &seqs {
        if let Some(s) = seq
            .steps
            .iter()
            .find(|s| s.replies.is_empty() && !is_directive(&s.text))
        {
            bail!("sequence {}: command {:?} has no reply", seq.name, s.text);
        }
    }
    Ok(seqs)
}

/// A node of a reply as raw bytes, for order-insensitive and shape-only comparison.
struct Node {
    /// The frame's own bytes: type byte, header line and CRLF, plus a bulk payload.
    head: Vec<u8>,
    children: Vec<Node>,
}

fn parse_tree(buf: &[u8], pos: usize, depth: usize) -> Result<(Node, usize), String> {
    if depth > 512 {
        return Err("nesting too deep".into());
    }
    let rest = buf.get(pos..).ok_or("truncated")?;
    let nl = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("truncated line")?;
    if nl == 0 {
        return Err("empty line where a reply was expected".into());
    }
    let tag = rest[0];
    let num = || -> Result<i64, String> {
        std::str::from_utf8(&rest[1..nl])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "bad length".to_string())
    };
    let mut end = pos + nl + 2;
    let mut children = Vec::new();
    match tag {
        b'$' | b'!' | b'=' => {
            let n = num()?;
            if n >= 0 {
                end += n as usize + 2;
                if end > buf.len() {
                    return Err("truncated bulk".into());
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = num()?.max(0) as usize;
            let count = match tag {
                b'%' => n * 2,
                b'|' => n * 2 + 1,
                _ => n,
            };
            for _ in 0..count {
                let (c, p) = parse_tree(buf, end, depth + 1)?;
                children.push(c);
                end = p;
            }
            // Nothing in `head` beyond the header line for aggregates.
            let head = buf[pos..pos + nl + 2].to_vec();
            return Ok((Node { head, children }, end));
        }
        _ => {}
    }
    Ok((
        Node {
            head: buf[pos..end].to_vec(),
            children,
        },
        end,
    ))
}

fn tree(reply: &[u8]) -> Result<Node, String> {
    let (node, used) = parse_tree(reply, 0, 0)?;
    if used != reply.len() {
        return Err("trailing bytes after reply".into());
    }
    Ok(node)
}

/// Encoding of a reply with every aggregate's elements sorted (maps and attributes by
/// key/value pair), so two replies that differ only in element order are equal.
fn canonical(node: &Node) -> Vec<u8> {
    let mut out = node.head.clone();
    let tag = node.head.first().copied().unwrap_or(0);
    let mut units: Vec<Vec<u8>> = if matches!(tag, b'%' | b'|') {
        node.children
            .chunks(2)
            .map(|c| c.iter().flat_map(canonical).collect())
            .collect()
    } else {
        node.children.iter().map(canonical).collect()
    };
    if tag == b'|' {
        // The annotated frame is the odd one out at the end: keep it last.
        let data = units.pop();
        units.sort();
        units.extend(data);
    } else {
        units.sort();
    }
    for u in units {
        out.extend_from_slice(&u);
    }
    out
}

/// The reply's shape: type bytes, nil markers and aggregate lengths, no scalar contents.
fn shape(node: &Node) -> String {
    let tag = node.head.first().copied().unwrap_or(b'?') as char;
    let nil = node.head.starts_with(b"$-1\r\n") || node.head.starts_with(b"*-1\r\n");
    let mut s = if nil {
        format!("{tag}nil")
    } else {
        tag.to_string()
    };
    if !node.children.is_empty() || matches!(tag, '*' | '~' | '>' | '%' | '|') && !nil {
        s.push_str(&format!("{}[", node.children.len()));
        for (i, c) in node.children.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&shape(c));
        }
        s.push(']');
    }
    s
}

/// Compares a reply with the recorded one under `check`. `Err` says why they differ.
pub fn compare(check: &Check, expected: &[u8], got: &[u8]) -> Result<(), String> {
    match check {
        Check::Exact => {
            if expected == got {
                Ok(())
            } else {
                Err("bytes differ".into())
            }
        }
        Check::Sorted => {
            let e = tree(expected).map_err(|e| format!("recorded reply unreadable: {e}"))?;
            let g = tree(got).map_err(|e| format!("reply unreadable: {e}"))?;
            if canonical(&e) == canonical(&g) {
                Ok(())
            } else {
                Err("elements differ (order ignored)".into())
            }
        }
        Check::Type => {
            let e = tree(expected).map_err(|e| format!("recorded reply unreadable: {e}"))?;
            let g = tree(got).map_err(|e| format!("reply unreadable: {e}"))?;
            let (se, sg) = (shape(&e), shape(&g));
            if se == sg {
                Ok(())
            } else {
                Err(format!("shape {sg} instead of {se}"))
            }
        }
        Check::Range(lo, hi) => match integer_reply(got) {
            Some(v) if (*lo..=*hi).contains(&v) => Ok(()),
            Some(v) => Err(format!("{v} is outside {lo}..={hi}")),
            None => Err(format!("not an integer reply (wanted {lo}..={hi})")),
        },
    }
}

fn integer_reply(reply: &[u8]) -> Option<i64> {
    let body = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(body).ok()?.parse().ok()
}

/// One difference between a server's reply and the recorded one (or a problem that stopped
/// the comparison, such as a stale golden file or a dropped connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Sequence file name (`strings.cmds`).
    pub file: String,
    /// Sequence name.
    pub name: String,
    /// Line of the command in the `.cmds` file (0 when not about one command).
    pub line: usize,
    /// The command as written, marker included.
    pub command: String,
    /// The recorded reply, escaped (see [`crate::resp::escape`]), or what was expected.
    pub expected: String,
    /// The reply received, escaped, or the error that occurred.
    pub got: String,
    /// Why they count as different.
    pub reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{} [{}] {}",
            self.file, self.line, self.name, self.command
        )?;
        writeln!(f, "    expected: {}", self.expected)?;
        writeln!(f, "    got:      {}", self.got)?;
        write!(f, "    ({})", self.reason)
    }
}

/// The repository's `tests/golden` directory (located from this crate's manifest path, so
/// it works from any crate's tests and from `cargo run`).
pub fn golden_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden");
    // Canonical for readable messages; the joined path works as well if that fails.
    dir.canonicalize().unwrap_or(dir)
}

/// The `.cmds` files of `dir`, sorted by name.
pub fn cmds_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cmds"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and parses a `.cmds` file.
pub fn load_cmds(path: &Path) -> anyhow::Result<Vec<Sequence>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_cmds(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Path of the golden file belonging to a `.cmds` file (same stem, in `dir`).
pub fn golden_path(cmds: &Path, dir: &Path) -> PathBuf {
    let stem = cmds.file_stem().unwrap_or_default();
    dir.join(stem).with_extension("golden")
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Opens a fresh connection and empties the keyspace: every sequence starts on a new
/// connection (RESP2, database 0, no client state) against an empty server, with
/// keyspace notifications off and no subscription left over from an earlier sequence
/// (closed connections are reaped asynchronously, so this waits, up to 5 s, until the
/// server reports no channel, pattern or shard channel).
fn fresh_connection(port: u16) -> anyhow::Result<RawClient> {
    let mut c = RawClient::connect_port(port).with_context(|| format!("connecting to {port}"))?;
    let r = c.cmd(&[b"FLUSHALL"]).context("FLUSHALL")?;
    if r != b"+OK\r\n" {
        bail!("FLUSHALL answered {}", escape(&r));
    }
    // A server without these commands answers with an error: nothing to reset then.
    c.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""])
        .context("resetting notify-keyspace-events")?;
    for _ in 0..500 {
        let numpat = c.cmd(&[b"PUBSUB", b"NUMPAT"])?;
        let chans = c.cmd(&[b"PUBSUB", b"CHANNELS"])?;
        let shard = c.cmd(&[b"PUBSUB", b"SHARDCHANNELS"])?;
        // Only a positive count or a non-empty list means "still subscribed"; errors
        // and other answers (a server without Pub/Sub) count as clean.
        let busy = |r: &[u8]| {
            (r.starts_with(b":") && r != b":0\r\n") || (r.starts_with(b"*") && r != b"*0\r\n")
        };
        if !busy(&numpat) && !busy(&chans) && !busy(&shard) {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("subscriptions of an earlier sequence are still active after 5 s")
}

/// The sequence's main connection (`None`) or a named one, opened on first use.
fn conn_for<'c>(
    conns: &'c mut HashMap<String, RawClient>,
    name: &Option<String>,
    port: u16,
) -> anyhow::Result<&'c mut RawClient> {
    let key = name.clone().unwrap_or_default();
    if !conns.contains_key(&key) {
        let c =
            RawClient::connect_port(port).with_context(|| format!("opening connection @{key}"))?;
        conns.insert(key.clone(), c);
    }
    conns
        .get_mut(&key)
        .ok_or_else(|| anyhow!("connection @{key} vanished"))
}

/// Replays one sequence on a fresh connection (plus the named connections it uses,
/// opened on first use); returns the raw replies of each step (none for directives).
/// Stops at the first I/O error, returning it with the replies so far.
pub fn replay(seq: &Sequence, port: u16) -> (Vec<Vec<Vec<u8>>>, Option<anyhow::Error>) {
    let mut replies = Vec::new();
    let main = match fresh_connection(port) {
        Ok(c) => c,
        Err(e) => return (replies, Some(e.context("preparing the sequence"))),
    };
    let mut conns: HashMap<String, RawClient> = HashMap::new();
    conns.insert(String::new(), main);
    for step in &seq.steps {
        let res: anyhow::Result<Vec<Vec<u8>>> = match step {
            Step::Resp3(conn) => conn_for(&mut conns, conn, port).and_then(|client| {
                let r = client.cmd(&[b"HELLO", b"3"]).context("HELLO 3")?;
                if r.starts_with(b"%") {
                    Ok(Vec::new())
                } else {
                    Err(anyhow!("HELLO 3 answered {}", escape(&r)))
                }
            }),
            Step::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                Ok(Vec::new())
            }
            Step::Command { args, conn, .. } => {
                conn_for(&mut conns, conn, port).and_then(|client| {
                    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    Ok(vec![client.cmd(&refs)?])
                })
            }
            Step::Read { n, conn, .. } => conn_for(&mut conns, conn, port).and_then(|client| {
                let mut out = Vec::with_capacity(*n);
                for i in 0..*n {
                    out.push(
                        client
                            .read_reply_raw()
                            .with_context(|| format!("reading reply {} of {n}", i + 1))?,
                    );
                }
                Ok(out)
            }),
        };
        match res {
            Ok(r) => replies.push(r),
            Err(e) => return (replies, Some(e)),
        }
    }
    (replies, None)
}

/// Replays one `.cmds` file against `127.0.0.1:port` and compares with its golden file
/// (same stem, next to it).
pub fn run_file(cmds: &Path, port: u16) -> Vec<Mismatch> {
    let dir = cmds.parent().unwrap_or(Path::new("."));
    run_file_against(cmds, &golden_path(cmds, dir), port)
}

fn problem(file: &str, name: &str, what: String) -> Mismatch {
    Mismatch {
        file: file.to_string(),
        name: name.to_string(),
        line: 0,
        command: String::new(),
        expected: String::new(),
        got: what,
        reason: "could not compare".into(),
    }
}

/// Loads a `.cmds` file and its golden file and pairs each sequence with its recording.
/// Sequences without an up-to-date recording become [`Mismatch`]es instead of pairs.
fn load_pairs(cmds: &Path, golden: &Path) -> (Vec<(Sequence, GoldenSeq)>, Vec<Mismatch>) {
    let file = file_label(cmds);
    let seqs = match load_cmds(cmds) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), vec![problem(&file, "-", format!("{e:#}"))]),
    };
    let recorded = match std::fs::read_to_string(golden)
        .with_context(|| format!("reading {}", golden.display()))
        .and_then(|t| parse_golden(&t).with_context(|| format!("parsing {}", golden.display())))
    {
        Ok(g) => g,
        Err(e) => return (Vec::new(), vec![problem(&file, "-", format!("{e:#}"))]),
    };
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for seq in seqs {
        let Some(gold) = recorded.iter().find(|g| g.name == seq.name) else {
            problems.push(problem(
                &file,
                &seq.name,
                "no recording in the golden file: re-record it".into(),
            ));
            continue;
        };
        let same = seq.steps.len() == gold.steps.len()
            && seq
                .steps
                .iter()
                .zip(&gold.steps)
                .all(|(a, b)| a.text() == b.text && a.replies() == b.replies.len());
        if !same {
            problems.push(problem(
                &file,
                &seq.name,
                "the golden file was recorded from different commands: re-record it".into(),
            ));
            continue;
        }
        pairs.push((seq, gold.clone()));
    }
    for gold in &recorded {
        if !pairs.iter().any(|(s, _)| s.name == gold.name)
            && !problems.iter().any(|m| m.name == gold.name)
        {
            problems.push(problem(
                &file,
                &gold.name,
                "recorded sequence no longer in the .cmds file: re-record it".into(),
            ));
        }
    }
    (pairs, problems)
}

fn run_file_against(cmds: &Path, golden: &Path, port: u16) -> Vec<Mismatch> {
    let file = file_label(cmds);
    let (pairs, mut out) = load_pairs(cmds, golden);
    for (seq, gold) in &pairs {
        out.extend(compare_sequence(&file, seq, gold, port));
    }
    out
}

/// Checks, without any server, that every `.cmds` file in `dir` has an up-to-date golden
/// file: same sequences, same commands, and recorded replies that satisfy their own markers.
/// Returns the problems found (empty when all recordings are usable).
pub fn verify_recordings(dir: &Path) -> Vec<Mismatch> {
    let files = match cmds_files(dir) {
        Ok(f) => f,
        Err(e) => return vec![problem(&dir.display().to_string(), "-", format!("{e:#}"))],
    };
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for f in &files {
        let file = file_label(f);
        let (pairs, problems) = load_pairs(f, &golden_path(f, dir));
        out.extend(problems);
        for (seq, gold) in pairs {
            if !names.insert(seq.name.clone()) {
                out.push(problem(
                    &file,
                    &seq.name,
                    "sequence name used in more than one file".into(),
                ));
            }
            for (step, g) in seq.steps.iter().zip(&gold.steps) {
                let (check, line, text) = match step {
                    Step::Command {
                        check, line, text, ..
                    } => (check.clone(), *line, text),
                    Step::Read { line, text, .. } => (Check::Exact, *line, text),
                    _ => continue,
                };
                for r in &g.replies {
                    if let Err(why) = self_check(&check, r) {
                        out.push(Mismatch {
                            file: file.clone(),
                            name: seq.name.clone(),
                            line,
                            command: text.clone(),
                            expected: String::new(),
                            got: escape(r),
                            reason: format!("recording does not satisfy its marker: {why}"),
                        });
                    }
                }
            }
        }
    }
    out
}

/// A recorded reply must be a well-formed reply that satisfies its own marker.
fn self_check(check: &Check, reply: &[u8]) -> Result<(), String> {
    tree(reply)?;
    match check {
        Check::Range(..) => compare(check, reply, reply),
        _ => Ok(()),
    }
}

fn compare_sequence(file: &str, seq: &Sequence, gold: &GoldenSeq, port: u16) -> Vec<Mismatch> {
    let (replies, err) = replay(seq, port);
    let mut out = Vec::new();
    for (i, (step, g)) in seq.steps.iter().zip(&gold.steps).enumerate() {
        let (text, check, line) = match step {
            Step::Command {
                text, check, line, ..
            } => (text, check.clone(), line),
            Step::Read { text, line, .. } => (text, Check::Exact, line),
            _ => {
                if let (Some(e), true) = (&err, i == replies.len()) {
                    out.push(Mismatch {
                        file: file.to_string(),
                        name: seq.name.clone(),
                        line: 0,
                        command: step.text(),
                        expected: String::new(),
                        got: format!("<error: {e:#}>"),
                        reason: "directive failed".into(),
                    });
                    break;
                }
                continue;
            }
        };
        let mk = |expected: &[u8], got: String, reason: String| Mismatch {
            file: file.to_string(),
            name: seq.name.clone(),
            line: *line,
            command: text.clone(),
            expected: escape(expected),
            got,
            reason,
        };
        match replies.get(i) {
            Some(got) if got.len() == g.replies.len() => {
                for (k, (e, r)) in g.replies.iter().zip(got).enumerate() {
                    if let Err(reason) = compare(&check, e, r) {
                        let reason = if got.len() > 1 {
                            format!("reply {} of {}: {reason}", k + 1, got.len())
                        } else {
                            reason
                        };
                        out.push(mk(e, escape(r), reason));
                    }
                }
            }
            _ => {
                let expected = g.replies.first().map(Vec::as_slice).unwrap_or_default();
                let e = err
                    .as_ref()
                    .map(|e| format!("{e:#}"))
                    .unwrap_or_else(|| "no reply".into());
                out.push(mk(
                    expected,
                    format!("<error: {e}>"),
                    "no reply; rest of sequence skipped".into(),
                ));
                break;
            }
        }
    }
    out
}

/// Replays every `.cmds` file in `dir` against `127.0.0.1:port` and returns all
/// differences from the recorded goldens (empty when the server matches). Starts nothing.
pub fn run_all(dir: &Path, port: u16) -> Vec<Mismatch> {
    run_all_except(dir, port, &[])
}

/// Like [`run_all`], skipping files whose name or stem is in `skip` (for example
/// `types_wrongtype` while the server lacks non-string types).
pub fn run_all_except(dir: &Path, port: u16, skip: &[&str]) -> Vec<Mismatch> {
    let files = match cmds_files(dir) {
        Ok(f) => f,
        Err(e) => return vec![problem(&dir.display().to_string(), "-", format!("{e:#}"))],
    };
    if files.is_empty() {
        return vec![problem(
            &dir.display().to_string(),
            "-",
            "no .cmds files found".into(),
        )];
    }
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for f in files {
        let label = file_label(&f);
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if skip.iter().any(|s| *s == label || *s == stem) {
            continue;
        }
        if let Ok(seqs) = load_cmds(&f) {
            for s in seqs {
                if !names.insert(s.name.clone()) {
                    out.push(problem(
                        &label,
                        &s.name,
                        "sequence name used in more than one file".into(),
                    ));
                }
            }
        }
        out.extend(run_file(&f, port));
    }
    out
}

/// Counts of a recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSummary {
    /// Sequences recorded.
    pub sequences: usize,
    /// Commands recorded.
    pub commands: usize,
}

/// Records `cmds` against `127.0.0.1:port` into `out_dir/<stem>.golden`.
///
/// Every sequence is replayed `runs` times (at least once); an unmarked command whose reply
/// changes between runs, or a reply that does not satisfy its own marker, is an error and
/// nothing is written: such a line needs a `?sorted`/`?type`/`?range` marker.
/// `server` is written into the header (for example `redis_version:7.0.15`).
///
/// When the output file already exists, the old bytes of a marked (`?range`, `?type`,
/// `?sorted`) command are kept if the new reply is equivalent under the marker, so
/// re-recording in place does not churn diffs with TTL 100 -> 99 style noise.
pub fn record_file(
    cmds: &Path,
    port: u16,
    out_dir: &Path,
    runs: usize,
    server: &str,
) -> anyhow::Result<RecordSummary> {
    let seqs = load_cmds(cmds)?;
    let path = golden_path(cmds, out_dir);
    // An unreadable or missing previous recording just means nothing to keep.
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| parse_golden(&t).ok())
        .unwrap_or_default();
    let mut golden = Vec::new();
    let mut problems = Vec::new();
    let mut summary = RecordSummary::default();
    for seq in &seqs {
        let (first, err) = replay(seq, port);
        if let Some(e) = err {
            bail!("sequence {}: {e:#}", seq.name);
        }
        for _ in 1..runs.max(1) {
            let (again, err) = replay(seq, port);
            if let Some(e) = err {
                bail!("sequence {} (repeat run): {e:#}", seq.name);
            }
            for ((step, a), b) in seq.steps.iter().zip(&first).zip(&again) {
                let (check, line) = match step {
                    Step::Command { check, line, .. } => (check.clone(), *line),
                    Step::Read { line, .. } => (Check::Exact, *line),
                    _ => continue,
                };
                for (a, b) in a.iter().zip(b) {
                    if let Err(why) = compare(&check, a, b) {
                        problems.push(format!(
                            "line {line}: reply changes between runs ({why}): {} vs {}",
                            escape(a),
                            escape(b)
                        ));
                    }
                }
            }
        }
        let old_seq = previous.iter().find(|g| g.name == seq.name);
        let mut steps = Vec::new();
        for (i, (step, mut replies)) in seq.steps.iter().zip(first).enumerate() {
            match step {
                Step::Command { check, line, .. } => {
                    summary.commands += 1;
                    let Some(r) = replies.first() else { continue };
                    // A recording must satisfy its own marker, or the marker is wrong.
                    if let Err(why) = self_check(check, r) {
                        problems.push(format!("line {line}: {why}: {}", escape(r)));
                    }
                    let old = old_seq
                        .and_then(|g| g.steps.get(i))
                        .filter(|o| o.text == step.text())
                        .and_then(|o| o.replies.first().cloned());
                    if let Some(old) = old
                        && *check != Check::Exact
                        && self_check(check, &old).is_ok()
                        && compare(check, &old, r).is_ok()
                    {
                        replies = vec![old];
                    }
                }
                Step::Read { line, .. } => {
                    summary.commands += 1;
                    for r in &replies {
                        if let Err(why) = self_check(&Check::Exact, r) {
                            problems.push(format!("line {line}: {why}: {}", escape(r)));
                        }
                    }
                }
                _ => {}
            }
            steps.push(GoldenStep {
                text: step.text(),
                replies,
            });
        }
        summary.sequences += 1;
        golden.push(GoldenSeq {
            name: seq.name.clone(),
            steps,
        });
    }
    if !problems.is_empty() {
        bail!("{}:\n  {}", cmds.display(), problems.join("\n  "));
    }
    let header = vec![
        format!(
            "Replies to {} recorded from {server} by basalt-golden. Do not edit by hand:",
            file_label(cmds)
        ),
        "re-record with `cargo run -p basalt-testkit --bin basalt-golden -- record --port P`."
            .to_string(),
    ];
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(&path, write_golden(&header, &golden))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(summary)
}

/// Asks the server for `redis_version` (from `INFO server`), for golden headers.
pub fn server_version(port: u16) -> String {
    let probe = || -> anyhow::Result<String> {
        let mut c = RawClient::connect_port(port)?;
        let r = c.cmd(&[b"INFO", b"server"])?;
        let text = String::from_utf8_lossy(&r).into_owned();
        Ok(text
            .lines()
            .find(|l| l.starts_with("redis_version:"))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "an unknown server version".to_string()))
    };
    probe().unwrap_or_else(|e| format!("an unreachable server ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_round_trip() {
        let seqs = vec![
            GoldenSeq {
                name: "a".into(),
                steps: vec![
                    GoldenStep {
                        text: "SET k \"v\\n\"".into(),
                        replies: vec![b"+OK\r\n".to_vec()],
                    },
                    GoldenStep {
                        text: "!resp3".into(),
                        replies: vec![],
                    },
                    GoldenStep {
                        text: "@sub !resp3".into(),
                        replies: vec![],
                    },
                    GoldenStep {
                        text: "GET k".into(),
                        replies: vec![b"$2\r\nv\n\r\n".to_vec()],
                    },
                    GoldenStep {
                        text: "@sub ?read 2".into(),
                        replies: vec![b":1\r\n".to_vec(), b":2\r\n".to_vec()],
                    },
                ],
            },
            GoldenSeq {
                name: "b".into(),
                steps: vec![GoldenStep {
                    text: "?range 1 2 TTL x".into(),
                    replies: vec![(0..=255u8).collect()],
                }],
            },
        ];
        let text = write_golden(&["header".into()], &seqs);
        assert!(text.starts_with("# header\n"));
        assert!(text.contains("> GET k\n< $2\\r\\nv\\n\\r\\n\n"));
        assert_eq!(parse_golden(&text).unwrap(), seqs);
    }

    #[test]
    fn golden_parse_errors() {
        assert!(parse_golden("> GET k\n< +OK\\r\\n").is_err());
        assert!(parse_golden("=== a\n< +OK\\r\\n").is_err());
        assert!(parse_golden("=== a\n> GET k\n").is_err());
        assert!(parse_golden("=== a\n> !resp3\n< +OK\\r\\n").is_err());
        assert!(parse_golden("=== a\n> @s !resp3\n< +OK\\r\\n").is_err());
        assert!(parse_golden("=== a\n> @s ?read 1\n").is_err());
        assert!(parse_golden("=== a\n> GET k\n< \\q").is_err());
        assert!(parse_golden("=== a\nbogus").is_err());
    }

    #[test]
    fn exact_compare() {
        assert!(compare(&Check::Exact, b"+OK\r\n", b"+OK\r\n").is_ok());
        assert!(compare(&Check::Exact, b":1\r\n", b"#t\r\n").is_err());
    }

    #[test]
    fn sorted_compare_ignores_order_only() {
        let a = b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
        let b = b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n";
        let c = b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nd\r\n";
        assert!(compare(&Check::Sorted, a, b).is_ok());
        assert!(compare(&Check::Sorted, a, c).is_err());
        // SCAN-shaped: cursor then a nested array.
        let s1 = b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n";
        let s2 = b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\ny\r\n$1\r\nx\r\n";
        assert!(compare(&Check::Sorted, s1, s2).is_ok());
        // RESP3 set vs RESP2 array with the same elements still differ.
        assert!(compare(&Check::Sorted, b"~1\r\n:1\r\n", b"*1\r\n:1\r\n").is_err());
        // Maps compare by pairs: swapping values between keys is a difference.
        let m1 = b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n";
        let m2 = b"%2\r\n+b\r\n:2\r\n+a\r\n:1\r\n";
        let m3 = b"%2\r\n+a\r\n:2\r\n+b\r\n:1\r\n";
        assert!(compare(&Check::Sorted, m1, m2).is_ok());
        assert!(compare(&Check::Sorted, m1, m3).is_err());
        assert!(compare(&Check::Sorted, a, b"*3\r\n$1\r\na").is_err());
        // Garbage on either side is an error, never a panic.
        assert!(compare(&Check::Sorted, b"\r\n", a).is_err());
        assert!(compare(&Check::Type, a, b"*9223372036854775807\r\n").is_err());
        assert!(compare(&Check::Type, a, b"$9223372036854775807\r\n").is_err());
    }

    #[test]
    fn type_compare() {
        assert!(compare(&Check::Type, b":99999\r\n", b":12\r\n").is_ok());
        assert!(compare(&Check::Type, b":1\r\n", b"$1\r\n1\r\n").is_err());
        assert!(compare(&Check::Type, b"$3\r\nabc\r\n", b"$-1\r\n").is_err());
        assert!(compare(&Check::Type, b"*2\r\n:1\r\n:2\r\n", b"*2\r\n:5\r\n:6\r\n").is_ok());
        assert!(compare(&Check::Type, b"*2\r\n:1\r\n:2\r\n", b"*1\r\n:5\r\n").is_err());
        assert!(compare(&Check::Type, b"*0\r\n", b"*-1\r\n").is_err());
    }

    #[test]
    fn range_compare() {
        let r = Check::Range(99, 100);
        assert!(compare(&r, b":100\r\n", b":99\r\n").is_ok());
        assert!(compare(&r, b":100\r\n", b":98\r\n").is_err());
        assert!(compare(&r, b":100\r\n", b"$3\r\n100\r\n").is_err());
    }

    #[test]
    fn mismatch_display_is_readable() {
        let m = Mismatch {
            file: "strings.cmds".into(),
            name: "incr".into(),
            line: 7,
            command: "INCR k".into(),
            expected: ":1\\r\\n".into(),
            got: "-ERR x\\r\\n".into(),
            reason: "bytes differ".into(),
        };
        let s = m.to_string();
        assert!(s.contains("strings.cmds:7 [incr] INCR k"));
        assert!(s.contains("expected: :1\\r\\n"));
        assert!(s.contains("got:      -ERR x\\r\\n"));
    }

    /// A fake server for runner tests: answers FLUSHALL with `+OK`, `INCR` with `:1`, and
    /// every other command with `+OK`, on any number of connections, until the test ends.
    fn fake_server() -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // Requests are multibulk arrays, so the reply scanner finds their ends.
                        while let Ok(Some(n)) = crate::resp::reply_len(&buf) {
                            let req: Vec<u8> = buf.drain(..n).collect();
                            let reply: &[u8] = if req.windows(4).any(|w| w == b"INCR") {
                                b":1\r\n"
                            } else {
                                b"+OK\r\n"
                            };
                            if conn.write_all(reply).is_err() {
                                return;
                            }
                        }
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        port
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "basalt-testkit-golden-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn runner_reports_differences_and_stale_recordings() {
        let port = fake_server();
        let dir = temp_dir("runner");
        let cmds = dir.join("t.cmds");
        std::fs::write(&cmds, "=== a\nSET k v\nINCR k\n=== b\n?type INCR k\n").unwrap();

        // Record from the fake server, then it must match itself.
        let summary = record_file(&cmds, port, &dir, 2, "fake").unwrap();
        assert_eq!(
            summary,
            RecordSummary {
                sequences: 2,
                commands: 3
            }
        );
        assert!(verify_recordings(&dir).is_empty());
        assert!(run_all(&dir, port).is_empty());

        // Re-recording in place keeps an equivalent old reply of a marked line (:7 has the
        // shape of :1) but rewrites an unmarked one.
        let golden = dir.join("t.golden");
        let text = std::fs::read_to_string(&golden).unwrap();
        assert_eq!(text.matches("< :1\\r\\n").count(), 2, "{text}");
        let edited = text.replacen("< :1\\r\\n", "< :2\\r\\n", 1);
        let edited = edited.replacen("< :1\\r\\n", "< :7\\r\\n", 1);
        std::fs::write(&golden, edited).unwrap();
        record_file(&cmds, port, &dir, 1, "fake").unwrap();
        let text = std::fs::read_to_string(&golden).unwrap();
        assert!(text.contains("> INCR k\n< :1\\r\\n"), "{text}");
        assert!(text.contains("> ?type INCR k\n< :7\\r\\n"), "{text}");

        // Edit the recording so INCR "should" have answered :2: one mismatch, readable.
        let text = std::fs::read_to_string(&golden).unwrap();
        std::fs::write(&golden, text.replacen("< :1\\r\\n", "< :2\\r\\n", 1)).unwrap();
        let m = run_all(&dir, port);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].name, "a");
        assert_eq!(m[0].line, 3);
        assert_eq!(m[0].command, "INCR k");
        assert_eq!(m[0].expected, ":2\\r\\n");
        assert_eq!(m[0].got, ":1\\r\\n");
        // The ?type line still passes: :2 and :1 have the same shape.

        // Change the commands without re-recording: reported as stale, not replayed.
        std::fs::write(&cmds, "=== a\nSET k v2\nINCR k\n=== b\n?type INCR k\n").unwrap();
        let m = verify_recordings(&dir);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].got.contains("re-record"), "{}", m[0]);

        // Nothing listening: every sequence reports the connection error.
        let dead = crate::free_port().unwrap();
        std::fs::write(&cmds, "=== a\nSET k v\nINCR k\n=== b\n?type INCR k\n").unwrap();
        record_file(&cmds, port, &dir, 1, "fake").unwrap();
        let m = run_all(&dir, dead);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m.iter().all(|x| x.got.contains("error")), "{m:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn record_rejects_replies_that_break_their_marker() {
        let port = fake_server();
        let dir = temp_dir("marker");
        let cmds = dir.join("m.cmds");
        // The fake answers +OK, which is not an integer in range.
        std::fs::write(&cmds, "=== a\n?range 1 5 TTL k\n").unwrap();
        let err = record_file(&cmds, port, &dir, 1, "fake").unwrap_err();
        assert!(format!("{err:#}").contains("not an integer"), "{err:#}");
        assert!(!dir.join("m.golden").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
