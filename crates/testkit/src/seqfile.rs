//! The `.cmds` sequence file format of the differential tests.
//!
//! A sequence file lists named command sequences, one command per line in redis-cli quoting:
//!
//! ```text
//! # comment
//! === set-get                 a new sequence (fresh connection, empty keyspace)
//! SET k "hello world"
//! GET k
//! !resp3                      directive: switch this connection to RESP3 (unrecorded)
//! !sleep 120                  directive: pause 120 ms
//! ?sorted KEYS *              compare arrays ignoring element order
//! ?type PTTL k                compare only the reply's type/shape
//! ?range 99 100 TTL k         integer reply within [99, 100]
//! @sub SUBSCRIBE ch           runs on the named connection `sub` (opened on first use)
//! @sub ?read 2                reads two more replies (pushed messages) from `sub`
//! @sub !resp3                 directives take a connection too
//! ```
//!
//! The full format is documented in `docs/testing.md`. Parsing is strict: anything the runner
//! would not understand is an error with a line number, so a typo cannot silently skip a test.

use basalt_proto::split_args;

/// How a command's reply is compared with the recorded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Byte-for-byte (the default).
    Exact,
    /// Every array, set and map is compared as a multiset of its elements (recursively).
    Sorted,
    /// Only the type tags, nil-ness and aggregate lengths are compared, not scalar contents.
    Type,
    /// The reply must be an integer in `[lo, hi]`.
    Range(i64, i64),
}

/// Largest `?read N`.
pub const MAX_READ: usize = 1000;

/// One line of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A command to send and whose reply is recorded.
    Command {
        /// The line as written (trimmed), connection prefix and marker included: the key
        /// that ties a golden entry to its command.
        text: String,
        /// The comparison mode from the marker.
        check: Check,
        /// The arguments after quoting is resolved.
        args: Vec<Vec<u8>>,
        /// 1-based line number in the `.cmds` file.
        line: usize,
        /// The named connection (`@name`), `None` for the sequence's main connection.
        conn: Option<String>,
    },
    /// `?read N`: read `n` more replies (pushed messages) from a connection, each
    /// recorded and compared byte for byte.
    Read {
        /// The line as written.
        text: String,
        /// How many replies.
        n: usize,
        /// 1-based line number.
        line: usize,
        /// The named connection, `None` for the main one.
        conn: Option<String>,
    },
    /// `!resp3`: `HELLO 3` on this (or the named) connection, reply not recorded.
    Resp3(Option<String>),
    /// `!sleep MS`.
    Sleep(u64),
}

impl Step {
    /// The text by which this step appears in a golden file (`!resp3`, `@sub !resp3`,
    /// `!sleep 5`, or the command line).
    pub fn text(&self) -> String {
        match self {
            Step::Command { text, .. } | Step::Read { text, .. } => text.clone(),
            Step::Resp3(None) => "!resp3".to_string(),
            Step::Resp3(Some(c)) => format!("@{c} !resp3"),
            Step::Sleep(ms) => format!("!sleep {ms}"),
        }
    }

    /// How many replies the step records (0 for directives).
    pub fn replies(&self) -> usize {
        match self {
            Step::Command { .. } => 1,
            Step::Read { n, .. } => *n,
            _ => 0,
        }
    }
}

/// A named sequence: runs on a fresh connection against an empty keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Unique name (within all files of a directory).
    pub name: String,
    /// Line of the `=== name` header.
    pub line: usize,
    /// Commands and directives, in order.
    pub steps: Vec<Step>,
}

/// A parse error with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Line of the offending text.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Parses a marker prefix (`?sorted `, `?type `, `?range lo hi `) off a command line.
fn parse_marker(rest: &str) -> Result<(Check, &str), String> {
    let mut words = rest.splitn(2, char::is_whitespace);
    let marker = words.next().unwrap_or_default();
    let after = words.next().unwrap_or_default().trim_start();
    match marker {
        "?sorted" => Ok((Check::Sorted, after)),
        "?type" => Ok((Check::Type, after)),
        "?range" => {
            let mut parts = after.splitn(3, char::is_whitespace);
            let lo = parts.next().unwrap_or_default();
            let hi = parts.next().unwrap_or_default();
            let cmd = parts.next().unwrap_or_default().trim_start();
            let lo: i64 = lo
                .parse()
                .map_err(|_| format!("?range: bad low bound {lo:?}"))?;
            let hi: i64 = hi
                .parse()
                .map_err(|_| format!("?range: bad high bound {hi:?}"))?;
            if lo > hi {
                return Err(format!("?range: empty range {lo}..{hi}"));
            }
            Ok((Check::Range(lo, hi), cmd))
        }
        other => Err(format!("unknown marker {other:?}")),
    }
}

/// Parses the text of a `.cmds` file.
pub fn parse_cmds(text: &str) -> Result<Vec<Sequence>, ParseError> {
    let mut seqs: Vec<Sequence> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let err = |msg: String| ParseError { line, msg };
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix("===") {
            let name = name.trim();
            if !valid_name(name) {
                return Err(err(format!(
                    "bad sequence name {name:?} (use letters, digits, - _ . :)"
                )));
            }
            if seqs.iter().any(|s| s.name == name) {
                return Err(err(format!("duplicate sequence name {name:?}")));
            }
            seqs.push(Sequence {
                name: name.to_string(),
                line,
                steps: Vec::new(),
            });
            continue;
        }
        let Some(seq) = seqs.last_mut() else {
            return Err(err("command before the first `=== name` line".to_string()));
        };
        let (conn, body) = match t.strip_prefix('@') {
            Some(rest) => {
                let mut parts = rest.splitn(2, char::is_whitespace);
                let name = parts.next().unwrap_or_default();
                let body = parts.next().unwrap_or_default().trim_start();
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                {
                    return Err(err(format!(
                        "bad connection name {name:?} (use letters, digits, - _)"
                    )));
                }
                if body.is_empty() {
                    return Err(err(format!("@{name} without a command")));
                }
                (Some(name.to_string()), body)
            }
            None => (None, t),
        };
        if let Some(dir) = body.strip_prefix('!') {
            let mut words = dir.split_whitespace();
            let step = match (words.next(), words.next(), words.next()) {
                (Some("resp3"), None, _) => Step::Resp3(conn),
                (Some("sleep"), Some(ms), None) if conn.is_none() => match ms.parse::<u64>() {
                    Ok(ms) if ms <= 10_000 => Step::Sleep(ms),
                    _ => return Err(err(format!("!sleep wants 0..=10000 ms, got {ms:?}"))),
                },
                _ => return Err(err(format!("unknown directive {t:?}"))),
            };
            seq.steps.push(step);
            continue;
        }
        if let Some(n) = body.strip_prefix("?read") {
            let n = n.trim();
            let n = match n.parse::<usize>() {
                Ok(n) if (1..=MAX_READ).contains(&n) => n,
                _ => return Err(err(format!("?read wants 1..={MAX_READ}, got {n:?}"))),
            };
            seq.steps.push(Step::Read {
                text: t.to_string(),
                n,
                line,
                conn,
            });
            continue;
        }
        let (check, cmd) = if body.starts_with('?') {
            parse_marker(body).map_err(err)?
        } else {
            (Check::Exact, body)
        };
        let args = split_args(cmd.as_bytes()).ok_or_else(|| {
            err("unbalanced quotes, or a closing quote not followed by a space".to_string())
        })?;
        if args.is_empty() {
            return Err(err("marker without a command".to_string()));
        }
        seq.steps.push(Step::Command {
            text: t.to_string(),
            check,
            args,
            line,
            conn,
        });
    }
    if let Some(empty) = seqs.iter().find(|s| s.steps.is_empty()) {
        return Err(ParseError {
            line: empty.line,
            msg: format!("sequence {:?} has no commands", empty.name),
        });
    }
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# leading comment
=== first
SET k "a b"
  # indented comment
?sorted KEYS *
!resp3
?type PTTL k
!sleep 20
?range 99 100 TTL k

=== second:x
GET '#notacomment'
"#;

    #[test]
    fn parses_sample() {
        let seqs = parse_cmds(SAMPLE).unwrap();
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0].name, "first");
        assert_eq!(seqs[0].line, 3);
        let s = &seqs[0].steps;
        assert_eq!(s.len(), 6);
        assert_eq!(
            s[0],
            Step::Command {
                text: "SET k \"a b\"".into(),
                check: Check::Exact,
                args: vec![b"SET".to_vec(), b"k".to_vec(), b"a b".to_vec()],
                line: 4,
                conn: None,
            }
        );
        assert!(
            matches!(&s[1], Step::Command { check: Check::Sorted, args, .. } if args.len() == 2)
        );
        assert_eq!(s[2], Step::Resp3(None));
        assert!(matches!(
            &s[3],
            Step::Command {
                check: Check::Type,
                ..
            }
        ));
        assert_eq!(s[4], Step::Sleep(20));
        match &s[5] {
            Step::Command {
                check, args, text, ..
            } => {
                assert_eq!(*check, Check::Range(99, 100));
                assert_eq!(args, &vec![b"TTL".to_vec(), b"k".to_vec()]);
                assert_eq!(text, "?range 99 100 TTL k");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seqs[1].name, "second:x");
        match &seqs[1].steps[0] {
            Step::Command { args, .. } => assert_eq!(args[1], b"#notacomment"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s[2].text(), "!resp3");
        assert_eq!(s[4].text(), "!sleep 20");
    }

    fn err_line(text: &str) -> (usize, String) {
        let e = parse_cmds(text).unwrap_err();
        (e.line, e.msg)
    }

    #[test]
    fn parses_named_connections_and_reads() {
        let seqs =
            parse_cmds("=== p\n@sub SUBSCRIBE ch\n@sub ?read 2\n@sub !resp3\nPUBLISH ch m\n")
                .unwrap();
        let s = &seqs[0].steps;
        assert!(
            matches!(&s[0], Step::Command { conn: Some(c), args, .. } if c == "sub" && args[0] == b"SUBSCRIBE")
        );
        assert_eq!(
            s[1],
            Step::Read {
                text: "@sub ?read 2".into(),
                n: 2,
                line: 3,
                conn: Some("sub".into())
            }
        );
        assert_eq!(s[2], Step::Resp3(Some("sub".into())));
        assert_eq!(s[2].text(), "@sub !resp3");
        assert_eq!(s[1].replies(), 2);
        assert!(matches!(&s[3], Step::Command { conn: None, .. }));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(err_line("GET k").0, 1);
        assert!(
            err_line("=== a\nGET k\n=== a\nGET k")
                .1
                .contains("duplicate")
        );
        assert!(
            err_line("=== bad name\nGET k")
                .1
                .contains("bad sequence name")
        );
        assert!(err_line("=== a\n!bogus").1.contains("unknown directive"));
        assert!(err_line("=== a\n!sleep x").1.contains("!sleep"));
        assert!(err_line("=== a\n!sleep 99999").1.contains("!sleep"));
        assert!(err_line("=== a\n?fuzzy GET k").1.contains("unknown marker"));
        assert!(
            err_line("=== a\n?range 5 1 TTL k")
                .1
                .contains("empty range")
        );
        assert!(err_line("=== a\n?range x 1 TTL k").1.contains("low bound"));
        assert!(err_line("=== a\n?sorted").1.contains("without a command"));
        assert!(err_line("=== a\nGET \"k").1.contains("unbalanced"));
        assert!(err_line("=== a\n@ GET k").1.contains("connection name"));
        assert!(err_line("=== a\n@a!b GET k").1.contains("connection name"));
        assert!(err_line("=== a\n@sub").1.contains("without a command"));
        assert!(err_line("=== a\n?read 0").1.contains("?read"));
        assert!(err_line("=== a\n@s ?read x").1.contains("?read"));
        assert!(
            err_line("=== a\n@s !sleep 5")
                .1
                .contains("unknown directive")
        );
        assert_eq!(
            err_line("=== a\n\n=== b\nGET k"),
            (1, "sequence \"a\" has no commands".into())
        );
    }
}
