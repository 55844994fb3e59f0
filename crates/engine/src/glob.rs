//! Redis's glob-style pattern matcher (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`, `CONFIG GET`).
//!
//! Redis 7.0 matches patterns with its own routine rather than POSIX `fnmatch`, and clients
//! see its corner cases: `[a-]` is a range that ends at `]`, ranges compare bytes as *signed*
//! chars, `\x` inside a class is compared case-sensitively even in no-case mode, an
//! unterminated `[...` still matches what it listed, and no pattern but the empty one
//! matches an empty string (callers such as `KEYS *` special-case the lone `*` themselves). This module
//! reproduces those results exactly, checked case by case against redis-server 7.0.15.
//!
//! Matching runs in O(pattern × string) time with no recursion: a naive backtracking
//! matcher takes exponential time on `a*a*a*a*b`, and a deep recursion would overflow the
//! stack on a pattern with many stars.

/// Outcome of running the matcher from one (pattern, string) position.
enum Attempt {
    Match,
    Fail,
    /// Reached a `*` that is not the last element of the pattern: the rest of the pattern
    /// (from `rest`) must match starting at some string offset `>= from`.
    Star {
        rest: usize,
        from: usize,
    },
}

/// Returns whether `string` matches the glob `pattern`, with Redis 7.0 semantics.
///
/// * `*` matches any run of bytes, including none (`a*` matches `a`) — but the empty
///   string matches only the empty pattern, so `*` does not match `""`.
/// * `?` matches exactly one byte.
/// * `[abc]`, `[^abc]`, `[a-z]` (also reversed: `[z-a]`) match one byte of a class; `\`
///   escapes the next byte inside a class.
/// * `\x` matches `x` literally; a trailing `\` matches a backslash.
/// * `nocase` folds ASCII letters (Redis uses it for `CONFIG GET`).
///
/// ```
/// use basalt_engine::glob::glob_match;
/// assert!(glob_match(b"user:*", b"user:42", false));
/// assert!(glob_match(b"h[ae]llo", b"hallo", false));
/// assert!(!glob_match(b"h[^e]llo", b"hello", false));
/// assert!(glob_match(b"MAXMEMORY*", b"maxmemory-policy", true));
/// ```
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut outcome = attempt(pattern, 0, string, 0, nocase);
    loop {
        let (rest, mut from) = match outcome {
            Attempt::Match => return true,
            Attempt::Fail => return false,
            Attempt::Star { rest, from } => (rest, from),
        };
        // Try the rest of the pattern at every later offset. If a deeper `*` is reached it
        // becomes the only backtracking point: when the rest after that deeper star matches
        // nowhere, letting this star swallow more bytes could only start the deeper star
        // later, at offsets already known to fail (Redis 7.0 prunes the same way).
        loop {
            match attempt(pattern, rest, string, from, nocase) {
                Attempt::Match => return true,
                Attempt::Fail => {
                    from += 1;
                    // Only non-empty tails are tried, exactly as Redis does.
                    if from >= string.len() {
                        return false;
                    }
                }
                deeper @ Attempt::Star { .. } => {
                    outcome = deeper;
                    break;
                }
            }
        }
    }
}

/// Runs the matcher from pattern offset `p` and string offset `s` until it matches, fails,
/// or meets a `*` that needs backtracking.
fn attempt(pattern: &[u8], mut p: usize, string: &[u8], mut s: usize, nocase: bool) -> Attempt {
    // Redis reads one byte past the pattern's end (the C string's NUL) in a few places;
    // `at` reproduces that by answering 0 beyond the end.
    let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let plen = pattern.len();
    while p < plen && s < string.len() {
        let c = string[s];
        match pattern[p] {
            b'*' => {
                while at(p + 1) == b'*' {
                    p += 1;
                }
                if p + 1 == plen {
                    return Attempt::Match;
                }
                return Attempt::Star {
                    rest: p + 1,
                    from: s,
                };
            }
            b'?' => s += 1,
            b'[' => {
                let (matched, end) = match_class(pattern, p + 1, c, nocase);
                if !matched {
                    return Attempt::Fail;
                }
                p = end;
                s += 1;
            }
            b'\\' => {
                if plen - p >= 2 {
                    p += 1;
                }
                if !same_byte(pattern[p], c, nocase) {
                    return Attempt::Fail;
                }
                s += 1;
            }
            literal => {
                if !same_byte(literal, c, nocase) {
                    return Attempt::Fail;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            // Trailing stars may match nothing once the string is used up.
            while at(p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    if p == plen && s == string.len() {
        Attempt::Match
    } else {
        Attempt::Fail
    }
}

/// Matches byte `c` against the class whose body starts at `p` (just after the `[`).
/// Returns whether it matched and the offset of the class's last pattern byte (its `]`,
/// or the pattern's last byte when the class is unterminated).
fn match_class(pattern: &[u8], mut p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let negate = at(p) == b'^';
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        let remaining = pattern.len().saturating_sub(p);
        if at(p) == b'\\' && remaining >= 2 {
            // An escaped byte is compared exactly, even in no-case mode (as Redis does).
            p += 1;
            if pattern[p] == c {
                matched = true;
            }
        } else if at(p) == b']' {
            break;
        } else if remaining == 0 {
            // Unterminated class: it ends with the pattern.
            p -= 1;
            break;
        } else if remaining >= 3 && pattern[p + 1] == b'-' {
            // Redis compares range bounds as C `char`, which is signed on the platforms it
            // ships on: bytes >= 0x80 sort below ASCII. `[a-]` is the range `a`..`]`.
            let mut start = i32::from(pattern[p] as i8);
            let mut end = i32::from(pattern[p + 2] as i8);
            let mut ch = i32::from(c as i8);
            if start > end {
                std::mem::swap(&mut start, &mut end);
            }
            if nocase {
                start = c_tolower(start);
                end = c_tolower(end);
                ch = c_tolower(ch);
            }
            p += 2;
            if (start..=end).contains(&ch) {
                matched = true;
            }
        } else if same_byte(pattern[p], c, nocase) {
            matched = true;
        }
        p += 1;
    }
    (matched != negate, p)
}

/// `tolower` of the C locale on a (possibly negative) `char` value.
fn c_tolower(v: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&v) {
        v + 32
    } else {
        v
    }
}

fn same_byte(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;
    use proptest::prelude::*;

    /// (pattern, string, nocase, expected). Expectations were recorded from redis-server
    /// 7.0.15 (`KEYS` for case-sensitive rows, `CONFIG GET` for no-case rows).
    const CASES: &[(&[u8], &[u8], bool, bool)] = &[
        (b"*", b"", false, false),
        (b"*", b"abc", false, true),
        (b"**", b"", false, false),
        (b"**", b"a", false, true),
        (b"", b"", false, true),
        (b"", b"a", false, false),
        (b"a", b"", false, false),
        (b"a*", b"a", false, true),
        (b"a**", b"a", false, true),
        (b"a*b", b"ab", false, true),
        (b"a*b", b"axxb", false, true),
        (b"a*b", b"axxbc", false, false),
        (b"*b*", b"b", false, true),
        (b"*b*", b"ab", false, true),
        (b"*b*", b"abc", false, true),
        (b"?", b"", false, false),
        (b"?", b"a", false, true),
        (b"?", b"ab", false, false),
        (b"h?llo", b"hello", false, true),
        (b"h[ae]llo", b"hallo", false, true),
        (b"h[ae]llo", b"hillo", false, false),
        (b"h[^e]llo", b"hallo", false, true),
        (b"h[^e]llo", b"hello", false, false),
        (b"h[a-b]llo", b"hbllo", false, true),
        (b"[z-a]", b"b", false, true),
        (b"[z-a]", b"A", false, false),
        // Unterminated classes.
        (b"[", b"[", false, false),
        (b"[^", b"x", false, true),
        (b"[^", b"", false, false),
        (b"[a", b"a", false, true),
        (b"[a", b"b", false, false),
        (b"[a-", b"-", false, true),
        (b"[a-", b"a", false, true),
        (b"[a-", b"b", false, false),
        (b"[\\", b"\\", false, true),
        // `[a-]` is the range `]`..`a`; the class then ends with the pattern.
        (b"[a-]", b"]", false, true),
        (b"[a-]", b"^", false, true),
        (b"[a-]", b"a", false, true),
        (b"[a-]", b"-", false, false),
        (b"[a-]]", b"^", false, true),
        (b"[!-]", b"A", false, true),
        (b"[!-]", b"a", false, false),
        // Empty classes match nothing.
        (b"[]", b"]", false, false),
        (b"[]]", b"]", false, false),
        (b"[]]", b"]]", false, false),
        (b"[^]", b"a", false, true),
        (b"[^]]", b"]", false, false),
        (b"[\\]]", b"]", false, true),
        // Escapes and a trailing backslash.
        (b"\\", b"\\", false, true),
        (b"a\\", b"a", false, false),
        (b"a\\", b"a\\", false, true),
        (b"\\*", b"*", false, true),
        (b"\\*", b"a", false, false),
        (b"\\?", b"a", false, false),
        // Signed-char ranges: 0xff is -1, 0x80 is -128.
        (b"[a-\xff]", b"A", false, true),
        (b"[a-\xff]", b"\xff", false, true),
        (b"[a-\xff]", b"b", false, false),
        (b"[a-\xff]", b"\x80", false, false),
        (b"[\x80-\xff]", b"\x80", false, true),
        (b"[\xff-\x80]", b"\xff", false, true),
        (b"[\xff-\x80]", b"a", false, false),
        // No-case mode.
        (b"PORT", b"port", true, true),
        (b"[P]ort", b"port", true, true),
        (b"[\\P]ort", b"port", true, false),
        (b"[\\p]ort", b"port", true, true),
        (b"[O-Q]ort", b"port", true, true),
        (b"[Z-a]ort", b"port", true, false),
        (b"[a-Z]ort", b"port", true, false),
        (b"?ORT", b"port", true, true),
        (b"p*T", b"port", true, true),
        (b"*BULK*", b"proto-max-bulk-len", true, true),
        (b"PORT", b"port", false, false),
    ];

    #[test]
    fn matches_redis_table() {
        for &(pattern, string, nocase, expected) in CASES {
            assert_eq!(
                glob_match(pattern, string, nocase),
                expected,
                "pattern {:?} string {:?} nocase {nocase}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(string),
            );
        }
    }

    #[test]
    fn many_stars_do_not_explode() {
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let string = vec![b'a'; 10_000];
        assert!(!glob_match(pattern, &string, false));
        let mut with_b = string.clone();
        with_b.push(b'b');
        assert!(glob_match(pattern, &with_b, false));
    }

    #[test]
    fn long_star_patterns_do_not_recurse() {
        // 200k stars interleaved with literals would overflow a recursive matcher's stack.
        let pattern: Vec<u8> = b"*a".repeat(100_000);
        let string = vec![b'a'; 100_000];
        assert!(glob_match(&pattern, &string, false));
        assert!(!glob_match(&pattern, &string[..99_999], false));
    }

    /// Straightforward exponential backtracking matcher with the same byte-level rules, used
    /// as the model for the property test: it never prunes, so it checks that the pruning
    /// and the iterative driver of [`glob_match`] change no answer.
    fn reference(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
        // The pattern as C sees it: one NUL past the end.
        let mut padded = pattern.to_vec();
        padded.push(0);
        naive(&padded, 0, pattern.len(), string, nocase)
    }

    fn naive(pat: &[u8], mut p: usize, plen: usize, mut s: &[u8], nocase: bool) -> bool {
        let lower = |b: u8| {
            if nocase { b.to_ascii_lowercase() } else { b }
        };
        while p < plen && !s.is_empty() {
            match pat[p] {
                b'*' => {
                    while pat[p + 1] == b'*' {
                        p += 1;
                    }
                    if p + 1 == plen {
                        return true;
                    }
                    return (0..s.len()).any(|k| naive(pat, p + 1, plen, &s[k..], nocase));
                }
                b'?' => s = &s[1..],
                b'[' => {
                    p += 1;
                    let not = pat[p] == b'^';
                    if not {
                        p += 1;
                    }
                    let mut hit = false;
                    loop {
                        let left = plen - p;
                        if pat[p] == b'\\' && left >= 2 {
                            p += 1;
                            hit |= pat[p] == s[0];
                        } else if pat[p] == b']' {
                            break;
                        } else if left == 0 {
                            p -= 1;
                            break;
                        } else if left >= 3 && pat[p + 1] == b'-' {
                            let (a, b) = (pat[p] as i8, pat[p + 2] as i8);
                            let (mut lo, mut hi) = (a.min(b), a.max(b));
                            let mut ch = s[0] as i8;
                            if nocase {
                                lo = (lo as u8).to_ascii_lowercase() as i8;
                                hi = (hi as u8).to_ascii_lowercase() as i8;
                                ch = (ch as u8).to_ascii_lowercase() as i8;
                            }
                            hit |= lo <= ch && ch <= hi;
                            p += 2;
                        } else {
                            hit |= lower(pat[p]) == lower(s[0]);
                        }
                        p += 1;
                    }
                    if hit == not {
                        return false;
                    }
                    s = &s[1..];
                }
                first => {
                    let lit = if first == b'\\' && plen - p >= 2 {
                        p += 1;
                        pat[p]
                    } else {
                        first
                    };
                    if lower(lit) != lower(s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p += 1;
            if s.is_empty() {
                while pat[p] == b'*' {
                    p += 1;
                }
                break;
            }
        }
        p == plen && s.is_empty()
    }

    fn pattern_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'*'),
                Just(b'?'),
                Just(b'['),
                Just(b']'),
                Just(b'^'),
                Just(b'-'),
                Just(b'\\'),
                Just(b'a'),
                Just(b'b'),
                Just(b'A'),
                Just(b'z'),
                Just(0xffu8),
            ],
            0..9,
        )
    }

    fn string_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'a'),
                Just(b'b'),
                Just(b'A'),
                Just(b'B'),
                Just(b'-'),
                Just(b']'),
                Just(b'*'),
                Just(b'\\'),
                Just(0x80u8),
                Just(0xffu8),
            ],
            0..8,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_naive_reference(
            pattern in pattern_bytes(),
            string in string_bytes(),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(
                glob_match(&pattern, &string, nocase),
                reference(&pattern, &string, nocase)
            );
        }
    }
}
