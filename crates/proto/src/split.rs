//! Splitting a line into arguments with the rules of Redis's `sdssplitargs`.
//!
//! Used for inline requests (`SET k "a b"` typed into telnet) and by the server's config file
//! parser, which in Redis goes through the same function. Every quirk is kept because users
//! see the difference: a quote may open in the middle of a word (`a"b c"` is `ab c`), a
//! closing quote must be followed by whitespace or the end, and the input ends at the first
//! NUL byte (the C function works on a C string).

/// `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `line` into arguments like Redis's `sdssplitargs`; `None` when quotes are
/// unbalanced or a closing quote is followed by something other than whitespace.
///
/// * Arguments are separated by whitespace (`isspace`); inside an unquoted word only space,
///   tab, CR and LF end it.
/// * `"double quotes"` understand `\n \r \t \b \a`, `\xHH` and `\<any>` (that character).
/// * `'single quotes'` only understand `\'`.
/// * A NUL byte ends the input.
///
/// ```
/// use basalt_proto::split_args;
/// assert_eq!(
///     split_args(br#"set k "a\x41\n" 'it\'s'"#),
///     Some(vec![b"set".to_vec(), b"k".to_vec(), b"aA\n".to_vec(), b"it's".to_vec()])
/// );
/// assert_eq!(split_args(br#"get "k"x"#), None);
/// ```
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|&b| is_c_space(b)) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = line.get(i).copied();
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\') => {
                        let next = line.get(i + 1).copied();
                        if next == Some(b'x')
                            && let (Some(hi), Some(lo)) =
                                (hex_value(line.get(i + 2)), hex_value(line.get(i + 3)))
                        {
                            current.push(hi * 16 + lo);
                            i += 4;
                            continue;
                        }
                        match next {
                            Some(e) => {
                                current.push(match e {
                                    b'n' => b'\n',
                                    b'r' => b'\r',
                                    b't' => b'\t',
                                    b'b' => 0x08,
                                    b'a' => 0x07,
                                    other => other,
                                });
                                i += 2;
                            }
                            // A backslash at the very end: the string is unterminated.
                            None => return None,
                        }
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|&n| !is_c_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(b) => {
                        current.push(b);
                        i += 1;
                    }
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        current.push(b'\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|&n| !is_c_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(b) => {
                        current.push(b);
                        i += 1;
                    }
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        i += 1;
                        break;
                    }
                    Some(b'"') => {
                        in_double = true;
                        i += 1;
                    }
                    Some(b'\'') => {
                        in_single = true;
                        i += 1;
                    }
                    Some(b) => {
                        current.push(b);
                        i += 1;
                    }
                }
            }
        }
        args.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &[u8]) -> Option<Vec<String>> {
        split_args(s).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn table() {
        let ok: &[(&[u8], &[&str])] = &[
            (b"", &[]),
            (b"   ", &[]),
            (b" \t\x0b\x0c ", &[]),
            (b"ping", &["ping"]),
            (b"set a b", &["set", "a", "b"]),
            (b"  set   a\tb  ", &["set", "a", "b"]),
            (b"a\rb\nc", &["a", "b", "c"]),
            // \v and \f are blanks between words but not word terminators.
            (b"a\x0bb", &["a\x0bb"]),
            (b"\x0ba", &["a"]),
            (br#""hello world""#, &["hello world"]),
            (br#""""#, &[""]),
            (br#"''"#, &[""]),
            (br#""" ''"#, &["", ""]),
            (br#""a\nb\rc\td\be\af""#, &["a\nb\rc\td\x08e\x07f"]),
            (br#""\\ \" \q""#, &["\\ \" q"]),
            (br#""\x41\x6a\x6A""#, &["Ajj"]),
            // Not a valid \xHH: the backslash escapes the 'x'.
            (br#""\x4g""#, &["x4g"]),
            (br#""\x4""#, &["x4"]),
            (br#"'it\'s'"#, &["it's"]),
            (br#"'a\nb'"#, &["a\\nb"]),
            (br#"'a"b'"#, &["a\"b"]),
            (br#""a'b""#, &["a'b"]),
            // A quote may open in the middle of a word.
            (br#"ab"c d""#, &["abc d"]),
            (br#"ab'c d'"#, &["abc d"]),
            (br#""a" "b""#, &["a", "b"]),
            (b"\"a\"\tb", &["a", "b"]),
            (b"\"a\"\x0bb", &["a", "b"]),
            // A backslash outside quotes is an ordinary byte.
            (br#"a\b"#, &["a\\b"]),
            // NUL ends the input, as in the C string the original works on.
            (b"get a\0b c", &["get", "a"]),
        ];
        for (input, want) in ok {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                split(input),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bad: &[&[u8]] = &[
            br#"""#,
            br#"'"#,
            br#""abc"#,
            br#"'abc"#,
            br#""a"b"#,
            br#"'a'b"#,
            br#"set """test-key""" test-value"#,
            br#""abc\"#,
            br#""abc\""#,
            br#"'abc\'"#,
            b"\"cut at NUL\0\"",
            // The backslash does not escape the quote, which opens a string never closed.
            br#"a\"b"#,
        ];
        for input in bad {
            assert_eq!(split(input), None, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn binary_bytes_pass_through() {
        assert_eq!(
            split_args(b"\xff\xfe \"\xc3\xa9\""),
            Some(vec![b"\xff\xfe".to_vec(), b"\xc3\xa9".to_vec()])
        );
    }
}
