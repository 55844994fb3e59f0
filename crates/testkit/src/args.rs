//! Splitting a command line into arguments with redis-cli's quoting rules.
//!
//! Sequence files write commands the way a user types them into `redis-cli`, so they are
//! split with the same rules as Redis's `sdssplitargs`: whitespace separates arguments,
//! `"..."` understands `\n \r \t \b \a \xHH` and `\<char>`, `'...'` only understands `\'`,
//! and a closing quote must be followed by whitespace or the end of the line.
//!
//! This is testkit's own copy, written for Basalt; it can be replaced by
//! `basalt_proto::split_args` once the protocol crate exports one with the same semantics.

/// Why a line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A `"` or `'` was opened and never closed.
    UnbalancedQuotes,
    /// A closing quote was followed by something other than whitespace.
    TrailingAfterQuote,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::UnbalancedQuotes => f.write_str("unbalanced quotes"),
            SplitError::TrailingAfterQuote => {
                f.write_str("closing quote must be followed by a space or the end of the line")
            }
        }
    }
}

impl std::error::Error for SplitError {}

/// The characters `sdssplitargs` treats as separators (C's `isspace` plus NUL).
fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Double,
    Single,
}

/// Splits `line` into arguments with `sdssplitargs` semantics.
///
/// ```
/// use basalt_testkit::split_args;
/// let args = split_args(br#"SET "a key" 'it\'s' "\x41\n""#).unwrap();
/// assert_eq!(args, vec![b"SET".to_vec(), b"a key".to_vec(), b"it's".to_vec(), b"A\n".to_vec()]);
/// ```
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_sep(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let mut mode = Mode::Bare;
        loop {
            match mode {
                Mode::Double => {
                    let Some(&c) = line.get(i) else {
                        return Err(SplitError::UnbalancedQuotes);
                    };
                    if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                        // `\xHH` only counts when both digits are hex; otherwise it is an
                        // escaped `x` followed by literal characters, as in Redis.
                        if let (Some(h), Some(l)) = (hex_val(line[i + 2]), hex_val(line[i + 3])) {
                            cur.push(h * 16 + l);
                            i += 4;
                            continue;
                        }
                    }
                    if c == b'\\' && i + 1 < line.len() {
                        let e = line[i + 1];
                        cur.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    } else if c == b'"' {
                        if i + 1 < line.len() && !is_sep(line[i + 1]) {
                            return Err(SplitError::TrailingAfterQuote);
                        }
                        i += 1;
                        break;
                    } else {
                        cur.push(c);
                        i += 1;
                    }
                }
                Mode::Single => {
                    let Some(&c) = line.get(i) else {
                        return Err(SplitError::UnbalancedQuotes);
                    };
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        cur.push(b'\'');
                        i += 2;
                    } else if c == b'\'' {
                        if i + 1 < line.len() && !is_sep(line[i + 1]) {
                            return Err(SplitError::TrailingAfterQuote);
                        }
                        i += 1;
                        break;
                    } else {
                        cur.push(c);
                        i += 1;
                    }
                }
                Mode::Bare => match line.get(i) {
                    None => break,
                    Some(&c) if is_sep(c) => break,
                    Some(b'"') => {
                        mode = Mode::Double;
                        i += 1;
                    }
                    Some(b'\'') => {
                        mode = Mode::Single;
                        i += 1;
                    }
                    Some(&c) => {
                        cur.push(c);
                        i += 1;
                    }
                },
            }
        }
        out.push(cur);
    }
}

/// Renders arguments back into a line that [`split_args`] parses to the same arguments.
///
/// Arguments that are plain printable words stay bare; everything else is double-quoted with
/// escapes. Used to print commands readably in mismatch reports.
pub fn join_args(args: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for (n, a) in args.iter().enumerate() {
        if n > 0 {
            s.push(' ');
        }
        let bare = !a.is_empty()
            && a.iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
        if bare {
            s.push_str(&String::from_utf8_lossy(a));
            continue;
        }
        s.push('"');
        for &b in a {
            match b {
                b'"' => s.push_str("\\\""),
                b'\\' => s.push_str("\\\\"),
                b'\n' => s.push_str("\\n"),
                b'\r' => s.push_str("\\r"),
                b'\t' => s.push_str("\\t"),
                0x20..=0x7e => s.push(b as char),
                _ => s.push_str(&format!("\\x{b:02x}")),
            }
        }
        s.push('"');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_args(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect()
    }

    #[test]
    fn bare_words_and_whitespace() {
        assert_eq!(split("  SET  foo\tbar  "), vec!["SET", "foo", "bar"]);
        assert!(split_args(b"   ").unwrap().is_empty());
    }

    #[test]
    fn double_quote_escapes() {
        assert_eq!(
            split_args(br#""a\nb" "\x00\xff" "\xzz" "q\"q" """#).unwrap(),
            vec![
                b"a\nb".to_vec(),
                vec![0, 0xff],
                b"xzz".to_vec(),
                b"q\"q".to_vec(),
                Vec::new()
            ]
        );
    }

    #[test]
    fn single_quotes_are_literal_except_quote() {
        assert_eq!(split(r#"'a\nb' 'it\'s'"#), vec![r"a\nb", "it's"]);
    }

    #[test]
    fn quote_inside_bare_word_switches_mode() {
        assert_eq!(split(r#"foo"bar baz" x"#), vec!["foobar baz", "x"]);
    }

    #[test]
    fn errors() {
        assert_eq!(split_args(br#""abc"#), Err(SplitError::UnbalancedQuotes));
        assert_eq!(split_args(br"'abc"), Err(SplitError::UnbalancedQuotes));
        assert_eq!(
            split_args(br#""abc"d"#),
            Err(SplitError::TrailingAfterQuote)
        );
        assert_eq!(split_args(br"'abc'd"), Err(SplitError::TrailingAfterQuote));
    }

    #[test]
    fn join_round_trips() {
        let args = vec![
            b"SET".to_vec(),
            b"a b".to_vec(),
            Vec::new(),
            vec![0, b'"', b'\\', 0xfe],
            b"plain".to_vec(),
        ];
        let line = join_args(&args);
        assert_eq!(split_args(line.as_bytes()).unwrap(), args);
    }
}
