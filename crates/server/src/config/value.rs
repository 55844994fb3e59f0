//! How Redis 7.0 reads and writes configuration values as text: memory sizes (`1gb`,
//! `100k`), `yes`/`no`, the lenient `strtoll` used for `save`, the quoted form written by
//! CONFIG REWRITE, and the OS error text Redis prints with `strerror`.
//!
//! Each parser reproduces Redis's exact acceptance rules (`CONFIG SET maxmemory ""` is 0,
//! `20000000000gb` wraps around like the C multiplication) because clients and config files
//! written for Redis depend on what is accepted and what is not.

/// Parses a memory value like Redis's `memtoull`: digits followed by an optional unit
/// (`b`, `k` = 1000, `kb` = 1024, `m`, `mb`, `g`, `gb`, any case).
///
/// Faithful to Redis, the digits may be absent (`""` and `"kb"` are 0), an overflowing
/// number saturates at `u64::MAX`, and the unit multiplication wraps around.
pub fn parse_memory(s: &[u8]) -> Option<u64> {
    if s.first() == Some(&b'-') {
        return None;
    }
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let unit = &s[digits..];
    let mul: u64 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // Redis copies the digits into a 128-byte buffer first and refuses longer numbers.
    if digits >= 128 {
        return None;
    }
    let value = s[..digits].iter().fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .unwrap_or(u64::MAX)
    });
    Some(value.wrapping_mul(mul))
}

/// Formats bytes the way CONFIG REWRITE writes memory directives: the largest of `gb`,
/// `mb`, `kb` that divides the value exactly, else plain bytes.
pub fn format_memory(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * 1024;
    const GB: u64 = 1024 * 1024 * 1024;
    if bytes == 0 {
        "0".to_string()
    } else if bytes.is_multiple_of(GB) {
        format!("{}gb", bytes / GB)
    } else if bytes.is_multiple_of(MB) {
        format!("{}mb", bytes / MB)
    } else if bytes.is_multiple_of(KB) {
        format!("{}kb", bytes / KB)
    } else {
        bytes.to_string()
    }
}

/// `yes` / `no` in any case, as Redis's `yesnotoi`.
pub fn parse_yes_no(s: &[u8]) -> Option<bool> {
    if s.eq_ignore_ascii_case(b"yes") {
        Some(true)
    } else if s.eq_ignore_ascii_case(b"no") {
        Some(false)
    } else {
        None
    }
}

pub fn yes_no(v: bool) -> &'static str {
    if v { "yes" } else { "no" }
}

/// C's `strtoll(s, &end, 10)` followed by Redis's `*end == '\0'` check, as `save` uses it:
/// leading whitespace and a sign are allowed, overflow saturates, and the empty string is 0
/// (strtoll converts nothing and `end` points at the terminating NUL).
pub fn parse_strtoll(s: &[u8]) -> Option<i64> {
    // C sees the argument as a C string.
    let s = match s.iter().position(|&b| b == 0) {
        Some(nul) => &s[..nul],
        None => s,
    };
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut magnitude: u64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        magnitude = magnitude
            .saturating_mul(10)
            .saturating_add(u64::from(d - b'0'));
        i += 1;
    }
    if i == start {
        // Nothing converted: `end` is the start of the string, valid only if it is empty.
        return s.is_empty().then_some(0);
    }
    if i != s.len() {
        return None;
    }
    Some(if negative {
        // Saturates at i64::MIN like strtoll.
        0i64.checked_sub_unsigned(magnitude).unwrap_or(i64::MIN)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MAX)
    })
}

/// `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Quotes bytes like Redis's `sdscatrepr`, so `basalt_proto::split_args` reads them back
/// unchanged: `"a \"b\"\n"`.
pub fn repr(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' | b'"' => {
                out.push(b'\\');
                out.push(b);
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
    out
}

/// The text C's `strerror` gives for an I/O error ("No such file or directory"), which is
/// what Redis puts in its messages; Rust's `Display` adds " (os error N)".
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(cut)) => text[..cut].to_string(),
        _ => text,
    }
}

/// Client-supplied bytes for an error message: lossy UTF-8 with CR and LF turned into
/// spaces, as Redis does so an error reply stays one line.
pub fn error_text(s: &[u8]) -> String {
    String::from_utf8_lossy(s).replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_follow_redis() {
        assert_eq!(parse_memory(b"0"), Some(0));
        assert_eq!(parse_memory(b"100"), Some(100));
        assert_eq!(parse_memory(b"1b"), Some(1));
        assert_eq!(parse_memory(b"1B"), Some(1));
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"1K"), Some(1000));
        assert_eq!(parse_memory(b"1kb"), Some(1024));
        assert_eq!(parse_memory(b"1Kb"), Some(1024));
        assert_eq!(parse_memory(b"2m"), Some(2_000_000));
        assert_eq!(parse_memory(b"2mb"), Some(2 * 1024 * 1024));
        assert_eq!(parse_memory(b"3g"), Some(3_000_000_000));
        assert_eq!(parse_memory(b"3GB"), Some(3 * 1024 * 1024 * 1024));
        // Accepted by Redis 7.0.15 as 0.
        assert_eq!(parse_memory(b""), Some(0));
        assert_eq!(parse_memory(b"kb"), Some(0));
        // Saturation and wrap-around, as observed on redis-server 7.0.15.
        assert_eq!(parse_memory(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_memory(b"18446744073709551616"), Some(u64::MAX));
        assert_eq!(parse_memory(b"99999999999999999999"), Some(u64::MAX));
        assert_eq!(
            parse_memory(b"20000000000gb"),
            Some(3_028_092_406_290_448_384)
        );
        assert_eq!(parse_memory(b"17179869184gb"), Some(0));
        for bad in [
            &b"-1"[..],
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"1.5mb",
            b"0x10",
            b"1kbb",
            b"1t",
            b"mb1",
        ] {
            assert_eq!(
                parse_memory(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_memory(&[b'1'; 128]), None);
        assert_eq!(parse_memory(&[b'0'; 127]), Some(0));
    }

    #[test]
    fn memory_formatting_for_rewrite() {
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(1000), "1000");
        assert_eq!(format_memory(1024), "1kb");
        assert_eq!(format_memory(1536 * 1024), "1536kb");
        assert_eq!(format_memory(512 * 1024 * 1024), "512mb");
        assert_eq!(format_memory(1024 * 1024 * 1024), "1gb");
        assert_eq!(format_memory(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn yes_no_is_case_insensitive() {
        assert_eq!(parse_yes_no(b"yes"), Some(true));
        assert_eq!(parse_yes_no(b"YES"), Some(true));
        assert_eq!(parse_yes_no(b"No"), Some(false));
        assert_eq!(parse_yes_no(b"y"), None);
        assert_eq!(parse_yes_no(b"1"), None);
        assert_eq!(parse_yes_no(b""), None);
    }

    #[test]
    fn strtoll_is_lenient_like_c() {
        assert_eq!(parse_strtoll(b"5"), Some(5));
        assert_eq!(parse_strtoll(b"+5"), Some(5));
        assert_eq!(parse_strtoll(b"007"), Some(7));
        assert_eq!(parse_strtoll(b" \t5"), Some(5));
        assert_eq!(parse_strtoll(b"-3"), Some(-3));
        assert_eq!(parse_strtoll(b""), Some(0));
        assert_eq!(parse_strtoll(b"9223372036854775808"), Some(i64::MAX));
        assert_eq!(parse_strtoll(b"-9223372036854775809"), Some(i64::MIN));
        assert_eq!(parse_strtoll(b"5\0junk"), Some(5));
        assert_eq!(parse_strtoll(b"5 "), None);
        assert_eq!(parse_strtoll(b" "), None);
        assert_eq!(parse_strtoll(b"+"), None);
        assert_eq!(parse_strtoll(b"x"), None);
        assert_eq!(parse_strtoll(b"1x"), None);
    }

    #[test]
    fn repr_round_trips_through_split_args() {
        let raw: &[u8] = b"a \"b\" \\ \n\r\t\x07\x08\x01\xff'";
        assert_eq!(
            repr(raw),
            b"\"a \\\"b\\\" \\\\ \\n\\r\\t\\a\\b\\x01\\xff'\"".to_vec()
        );
        assert_eq!(
            basalt_proto::split_args(&repr(raw)),
            Some(vec![raw.to_vec()])
        );
        assert_eq!(repr(b""), b"\"\"".to_vec());
    }

    #[test]
    fn strerror_drops_the_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(strerror(&e), "No such file or directory");
        let custom = std::io::Error::other("boom");
        assert_eq!(strerror(&custom), "boom");
    }

    #[test]
    fn error_text_stays_on_one_line() {
        assert_eq!(error_text(b"a\r\nb"), "a  b");
    }
}
