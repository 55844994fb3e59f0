//! Number text exactly as Redis reads and writes it.
//!
//! * [`parse_i64_strict`] accepts what Redis's `string2ll` accepts and nothing else: an
//!   optional `-`, no `+`, no spaces, no leading zeros (except the single digit `0`), no
//!   overflow. The request decoder uses it for `*N` and `$N`; the server can use it wherever
//!   Redis parses an integer argument.
//! * [`format_double`] prints like C's `printf("%.17g")` on glibc, which is what Redis 7.0's
//!   `addReplyDouble` sends (with `inf`/`-inf` spelled out explicitly).
//!
//! Formatting works on a small stack buffer: Rust's `{:.16e}` gives the 17 correctly
//! rounded significant digits (ties to even, like glibc), and `%g`'s layout rules are
//! applied to them here.

use std::fmt::Write as _;

/// Parses a signed 64-bit integer with the strictness of Redis's `string2ll`.
///
/// ```
/// use basalt_proto::parse_i64_strict;
/// assert_eq!(parse_i64_strict(b"-42"), Some(-42));
/// assert_eq!(parse_i64_strict(b"0"), Some(0));
/// assert_eq!(parse_i64_strict(b"+1"), None);
/// assert_eq!(parse_i64_strict(b"007"), None);
/// assert_eq!(parse_i64_strict(b"-0"), None);
/// assert_eq!(parse_i64_strict(b" 1"), None);
/// ```
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    // The first digit must be 1-9: this rejects "", "-", leading zeros and "-0".
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // -(2^63) is the only magnitude that fits negative but not positive.
        if v > 1u64 << 63 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Longest `%.17g` output: `-1.2345678901234567e-308` is 24 bytes.
const DOUBLE_BUF: usize = 32;

/// The text of one double, on the stack.
pub(crate) struct DoubleText {
    buf: [u8; DOUBLE_BUF],
    len: usize,
}

impl DoubleText {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        // The layout below never exceeds 24 bytes; ignoring overflow keeps this panic-free.
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

/// A fixed buffer for `write!`, so formatting needs no heap allocation.
struct Scratch {
    buf: [u8; DOUBLE_BUF],
    len: usize,
}

impl std::fmt::Write for Scratch {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Formats `v` like glibc's `printf("%.17g", v)`; infinities as `inf`/`-inf` and NaN as
/// `nan` (`-nan` when its sign bit is set, as glibc prints it).
pub(crate) fn g17(v: f64) -> DoubleText {
    let mut out = DoubleText {
        buf: [0; DOUBLE_BUF],
        len: 0,
    };
    if v.is_nan() {
        out.extend(if v.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
        return out;
    }
    if v.is_infinite() {
        out.extend(if v < 0.0 { b"-inf" } else { b"inf" });
        return out;
    }

    // 17 significant digits in scientific form, e.g. "-1.2345678901234568e17".
    let mut sci = Scratch {
        buf: [0; DOUBLE_BUF],
        len: 0,
    };
    if write!(sci, "{v:.16e}").is_err() {
        // Cannot happen (at most 25 bytes); fall back to something valid rather than panic.
        out.extend(b"0");
        return out;
    }
    let text = &sci.buf[..sci.len];
    let (negative, text) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let mut digits = [b'0'; 17];
    let mut n = 0;
    let mut exp_part: &[u8] = b"0";
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'0'..=b'9' if n < digits.len() => {
                digits[n] = b;
                n += 1;
            }
            b'e' => {
                exp_part = &text[i + 1..];
                break;
            }
            _ => {}
        }
    }
    // Rust writes the exponent without '+' or padding ("e17", "e-5").
    let exp: i32 = std::str::from_utf8(exp_part)
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);

    if negative {
        out.push(b'-');
    }
    // %g: fixed notation when -4 <= X < precision, scientific otherwise; then drop trailing
    // zeros of the fraction and a dangling point.
    if (-4..17).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            out.extend(&digits[..int_len]);
            let frac = trim_zeros(&digits[int_len..]);
            if !frac.is_empty() {
                out.push(b'.');
                out.extend(frac);
            }
        } else {
            out.extend(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.extend(trim_zeros(&digits));
        }
    } else {
        out.push(digits[0]);
        let frac = trim_zeros(&digits[1..]);
        if !frac.is_empty() {
            out.push(b'.');
            out.extend(frac);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let mut ebuf = itoa::Buffer::new();
        let e = ebuf.format(exp.unsigned_abs());
        if e.len() < 2 {
            out.push(b'0');
        }
        out.extend(e.as_bytes());
    }
    out
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let end = d.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1);
    &d[..end]
}

/// Appends `v` formatted like C's `printf("%.17g", v)`, the way Redis 7.0 replies with
/// doubles: `0.1` → `0.10000000000000001`, `3.0` → `3`, `1e20` → `1e+20`,
/// `1e-5` → `1.0000000000000001e-05`. Infinities are `inf`/`-inf`; NaN is `nan` (or
/// `-nan` when its sign bit is set, as glibc prints it).
///
/// ```
/// let mut out = Vec::new();
/// basalt_proto::format_double(1.5, &mut out);
/// assert_eq!(out, b"1.5");
/// ```
pub fn format_double(v: f64, out: &mut Vec<u8>) {
    out.extend_from_slice(g17(v).as_bytes());
}

/// [`format_double`] returning a `String`: the `%.17g` text Redis 7.0's `addReplyDouble`
/// sends (for example the score replies of `ZSCORE`/`ZINCRBY`).
///
/// Not to be confused with Redis's `LD_STR_HUMAN` long-double formatting (`%.17Lf`, used by
/// `INCRBYFLOAT`), which this crate does not provide.
pub fn format_double_human(v: f64) -> String {
    // The text is ASCII by construction.
    String::from_utf8_lossy(g17(v).as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        let ok: &[(&[u8], i64)] = &[
            (b"0", 0),
            (b"1", 1),
            (b"-1", -1),
            (b"10", 10),
            (b"9223372036854775807", i64::MAX),
            (b"-9223372036854775808", i64::MIN),
            (b"2147483647", 2147483647),
        ];
        for (s, v) in ok {
            assert_eq!(
                parse_i64_strict(s),
                Some(*v),
                "{}",
                String::from_utf8_lossy(s)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"00",
            b"-0",
            b"-01",
            b"1a",
            b"a1",
            b"1.0",
            b"1e3",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"18446744073709551616",
            b"1\0",
        ];
        for s in bad {
            assert_eq!(
                parse_i64_strict(s),
                None,
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
    }

    /// Expected strings were produced with python3's `'%.17g' % x`; the NaN signs with glibc's
    /// `printf`.
    #[test]
    fn double_table() {
        let table: &[(f64, &str)] = &[
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (3.0, "3"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1e20, "1e+20"),
            (1e-5, "1.0000000000000001e-05"),
            (1e-4, "0.0001"),
            (0.00012345, "0.00012344999999999999"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (12345678901234567.0, "12345678901234568"),
            (99999999999999999.0, "1e+17"),
            (9007199254740993.0, "9007199254740992"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (1.0 / 3.0, "0.33333333333333331"),
            (2.0 / 3.0, "0.66666666666666663"),
            (2.675, "2.6749999999999998"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "4.9406564584124654e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (1e100, "1e+100"),
            (1e23, "9.9999999999999992e+22"),
            (1.0 + f64::EPSILON, "1.0000000000000002"),
            // An exact tie at the 17th digit: rounds half to even, like glibc.
            (1.0 + 1.0 / 131072.0, "1.0000076293945312"),
            (0.5, "0.5"),
            (-1e-300, "-1e-300"),
            (123.456, "123.456"),
            (1e15 + 0.3, "1000000000000000.2"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "-nan"),
        ];
        for (v, want) in table {
            assert_eq!(format_double_human(*v), *want, "value {v:e}");
            let mut out = b"x".to_vec();
            format_double(*v, &mut out);
            assert_eq!(&out[1..], want.as_bytes());
        }
    }
}
