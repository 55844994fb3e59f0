//! The manifest of Redis 7's multi-part AOF: which base file and which incremental files
//! make up the log, in order.
//!
//! ```text
//! file appendonly.aof.2.base.rdb seq 2 type b
//! file appendonly.aof.2.incr.aof seq 2 type i
//! file appendonly.aof.3.incr.aof seq 3 type i
//! ```
//!
//! One line per file: `file <name> seq <n> type <b|h|i>` (base, history, incremental),
//! names quoted as Redis's `sdscatrepr` when they need it. Lines starting with `#` are
//! comments; unknown keys are ignored, as Redis does.

use std::fmt::Write as _;

/// Longest manifest line Redis reads (`AOF_MANIFEST_MAX_LINE`... it uses a 1 KiB buffer).
pub const MAX_LINE: usize = 1024;

/// What a file is to the AOF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The base: a snapshot (RDB, or RESP commands) the increments apply to.
    Base,
    /// A file left over from before the last rewrite, to be deleted.
    History,
    /// An incremental file of RESP commands.
    Incr,
}

impl FileKind {
    fn letter(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::History => 'h',
            FileKind::Incr => 'i',
        }
    }
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    /// File name (inside `appenddirname`).
    pub name: String,
    /// Sequence number.
    pub seq: u64,
    /// Role.
    pub kind: FileKind,
}

/// A parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<AofFile>,
    /// Incremental files, oldest first.
    pub incrs: Vec<AofFile>,
    /// Files pending deletion.
    pub history: Vec<AofFile>,
}

/// `<appendfilename>.<seq>.base.rdb` (or `.base.aof` for a RESP base).
pub fn base_name(appendfilename: &str, seq: u64, rdb: bool) -> String {
    format!(
        "{appendfilename}.{seq}.base.{}",
        if rdb { "rdb" } else { "aof" }
    )
}

/// `<appendfilename>.<seq>.incr.aof`.
pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}

/// `<appendfilename>.manifest`.
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

/// Redis's `sdsneedsrepr`: does the name need quoting in the manifest?
fn needs_repr(s: &str) -> bool {
    s.is_empty()
        || s.bytes().any(|b| {
            matches!(b, b'\\' | b'"' | b'\n' | b'\r' | b'\t' | 7 | 8 | b' ')
                || !(0x20..0x7f).contains(&b)
        })
}

/// Redis's `sdscatrepr`.
fn repr(s: &str, out: &mut String) {
    out.push('"');
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

impl Manifest {
    /// The base's sequence number (0 without a base).
    pub fn base_seq(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.seq)
    }

    /// The last incremental file's sequence number (0 without one).
    pub fn incr_seq(&self) -> u64 {
        self.incrs.last().map_or(0, |f| f.seq)
    }

    /// True without base and increments.
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incrs.is_empty()
    }

    /// The text Redis writes: base, then history, then increments.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let all = self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incrs.iter());
        for f in all {
            out.push_str("file ");
            if needs_repr(&f.name) {
                repr(&f.name, &mut out);
            } else {
                out.push_str(&f.name);
            }
            let _ = writeln!(out, " seq {} type {}", f.seq, f.kind.letter());
        }
        out
    }

    /// Parses a manifest as Redis's `aofLoadManifestFromFile`. The error is Redis's
    /// reason text.
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        let mut last_incr = 0u64;
        let mut lines = 0;
        for raw in text.split_inclusive(|&b| b == b'\n') {
            if raw.len() > MAX_LINE {
                return Err("The AOF manifest file contains too long line".into());
            }
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() || trimmed.starts_with(b"#") {
                continue;
            }
            lines += 1;
            let args = basalt_proto::split_args(trimmed)
                .ok_or_else(|| "Invalid AOF manifest file format".to_string())?;
            if args.is_empty() || args.len() % 2 != 0 {
                return Err("Invalid AOF manifest file format".into());
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for kv in args.chunks_exact(2) {
                match kv[0].as_slice() {
                    b"file" => name = Some(kv[1].clone()),
                    b"seq" => {
                        seq = std::str::from_utf8(&kv[1])
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                    }
                    b"type" => kind = Some(kv[1].clone()),
                    // Unknown keys are skipped, for forward compatibility.
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err("Invalid AOF manifest file format".into());
            };
            let name = String::from_utf8(name)
                .map_err(|_| "Invalid AOF manifest file format".to_string())?;
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err("File can't be a path, just a filename".into());
            }
            let kind = match kind.as_slice() {
                b"b" => FileKind::Base,
                b"h" => FileKind::History,
                b"i" => FileKind::Incr,
                _ => return Err("Unknown AOF file type".into()),
            };
            let f = AofFile { name, seq, kind };
            match kind {
                FileKind::Base => {
                    if m.base.is_some() {
                        return Err("Found duplicate base file information".into());
                    }
                    m.base = Some(f);
                }
                FileKind::History => m.history.push(f),
                FileKind::Incr => {
                    if seq <= last_incr {
                        return Err("Found a non-monotonic sequence number".into());
                    }
                    last_incr = seq;
                    m.incrs.push(f);
                }
            }
        }
        if lines == 0 {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_manifest_round_trips() {
        let text = "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\nfile appendonly.aof.3.incr.aof seq 3 type i\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.base_seq(), 2);
        assert_eq!(m.incr_seq(), 3);
        assert_eq!(m.render(), text);
    }

    #[test]
    fn names_are_quoted_when_needed() {
        let m = Manifest {
            base: Some(AofFile {
                name: "my aof.1.base.rdb".into(),
                seq: 1,
                kind: FileKind::Base,
            }),
            ..Manifest::default()
        };
        let text = m.render();
        assert_eq!(text, "file \"my aof.1.base.rdb\" seq 1 type b\n");
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn bad_manifests_are_refused() {
        let cases: [(&str, &str); 7] = [
            ("", "empty"),
            ("# only a comment\n", "empty"),
            ("file a seq 1\n", "format"),
            ("file a seq 1 type x\n", "Unknown"),
            ("file a seq 1 type b\nfile b seq 2 type b\n", "duplicate"),
            (
                "file a seq 2 type i\nfile b seq 1 type i\n",
                "non-monotonic",
            ),
            ("file ../a seq 1 type b\n", "path"),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let long = format!("file {} seq 1 type b\n", "a".repeat(2000));
        assert!(Manifest::parse(long.as_bytes()).is_err());
        // Unknown keys are skipped.
        let m = Manifest::parse(b"file a seq 1 type b future x\n").unwrap();
        assert_eq!(m.base_seq(), 1);
    }
}
