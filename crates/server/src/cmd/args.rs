//! Argument parsing helpers shared by every family, with Redis's error replies.

use crate::error::{self, Error};
use basalt_engine::num;

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn int(arg: &[u8]) -> Result<i64, Error> {
    num::parse_i64(arg).ok_or_else(|| Error::msg(error::NOT_INTEGER))
}

/// Parses a non-negative integer argument that must fit `usize`, replying with `msg`
/// when it is negative.
pub fn non_negative(arg: &[u8], msg: &str) -> Result<u64, Error> {
    let v = int(arg)?;
    if v < 0 {
        return Err(Error::msg(msg));
    }
    Ok(v as u64)
}

/// Parses a float argument (`ERR value is not a valid float`).
pub fn float(arg: &[u8]) -> Result<f64, Error> {
    num::parse_f64(arg).ok_or_else(|| Error::msg(error::NOT_FLOAT))
}

/// Parses a blocking command's timeout in seconds (fractions allowed) into a Unix-ms
/// deadline; 0 means forever (`None`). Errors and edge cases as Redis 7.0's
/// getTimeoutFromObjectOrReply: the value is read as a long double (`inf` and `1e400`
/// included), multiplied by 1000 and rounded up to whole milliseconds (`ceill`), and
/// anything out of range becomes `LLONG_MIN`, so `inf` is "negative", `0.0001` waits one
/// millisecond and `-0.0001` means forever (all measured against redis-server 7.0.15). A timeout so large that the deadline overflows blocks forever, as it does
/// in Redis 7.0.
pub fn timeout_deadline(arg: &[u8], now: u64) -> Result<Option<u64>, Error> {
    let v = basalt_engine::ldouble::parse_long_double(arg)
        .filter(|v| !v.is_nan())
        .ok_or_else(|| Error::msg("ERR timeout is not a float or out of range"))?;
    let ms = long_double_to_ms(&v);
    if ms < 0 {
        return Err(Error::msg("ERR timeout is negative"));
    }
    if ms == 0 {
        return Ok(None);
    }
    if ms > i64::MAX - now as i64 {
        // 7.0 adds the current time without a range check; the wrapped deadline never
        // comes (7.2 replies "timeout is out of range" instead).
        return Ok(None);
    }
    Ok(Some(now + ms as u64))
}

/// `(long long)ceill(v * 1000.0)` as x86-64 computes it: the product rounded to the
/// x87's 64-bit mantissa (ties to even), then rounded up to an integer; a result outside
/// `i64` is `i64::MIN` (the "integer indefinite" value).
fn long_double_to_ms(v: &basalt_engine::ldouble::SoftF80) -> i64 {
    if !v.is_finite() {
        return i64::MIN;
    }
    let (sign_exp, mant) = v.to_x87_bits();
    // value = mant * 2^scale; a biased exponent of 0 (zero, subnormals) has the scale of 1.
    let mut scale = i32::from(sign_exp & 0x7fff).max(1) - 16383 - 63;
    let mut p = u128::from(mant) * 1000;
    let bits = 128 - p.leading_zeros() as i32;
    if bits > 64 {
        let shift = bits - 64;
        let rem = p & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        p >>= shift;
        if rem > half || (rem == half && p & 1 == 1) {
            p += 1;
        }
        scale += shift;
    }
    let magnitude = if scale >= 0 {
        if p != 0 && (scale >= 64 || p.leading_zeros() < 65 + scale as u32) {
            return i64::MIN;
        }
        p << scale
    } else {
        // Round up: a positive value with a fraction gains one; a negative one rounds
        // towards zero, which the magnitude's truncation already does.
        let (whole, frac) = if scale <= -128 {
            (0, p != 0)
        } else {
            let s = -scale as u32;
            (p >> s, p & ((1u128 << s) - 1) != 0)
        };
        if frac && !v.is_sign_negative() {
            whole + 1
        } else {
            whole
        }
    };
    match i64::try_from(magnitude) {
        Ok(m) if v.is_sign_negative() => -m,
        Ok(m) => m,
        Err(_) => i64::MIN,
    }
}

/// Case-insensitive comparison with an ASCII keyword.
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Lossy UTF-8 for error messages.
pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// `ERR unknown subcommand 'x'. Try CONTAINER HELP.`
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> Error {
    let sub = text(sub);
    let sub: String = sub.chars().take(128).collect();
    Error::msg(format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        container.to_ascii_uppercase()
    ))
}

/// Options of the SCAN family, parsed from `args[from..]`.
pub struct ScanOptions<'a> {
    /// COUNT (at least 1; default 10).
    pub count: usize,
    /// MATCH pattern; `None` also for `*`, which filters nothing.
    pub pattern: Option<&'a [u8]>,
    /// TYPE (SCAN only), lowercased.
    pub type_filter: Option<String>,
}

/// Parses COUNT, MATCH and (when `with_type`) TYPE as Redis's scanGenericCommand does.
pub fn scan_options(
    args: &[bytes::Bytes],
    from: usize,
    with_type: bool,
) -> Result<ScanOptions<'_>, Error> {
    let mut o = ScanOptions {
        count: 10,
        pattern: None,
        type_filter: None,
    };
    let mut i = from;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is(&args[i], "count") && has_value {
            let v = int(&args[i + 1])?;
            if v < 1 {
                return Err(Error::msg(error::SYNTAX));
            }
            o.count = usize::try_from(v).unwrap_or(usize::MAX);
        } else if is(&args[i], "match") && has_value {
            let p = args[i + 1].as_ref();
            o.pattern = (p != b"*").then_some(p);
        } else if with_type && is(&args[i], "type") && has_value {
            o.type_filter = Some(String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase());
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 2;
    }
    Ok(o)
}

/// The `[cursor, [items...]]` reply of the SCAN family.
pub fn scan_reply(cursor: u64, items: Vec<basalt_proto::Frame>) -> basalt_proto::Frame {
    basalt_proto::Frame::Array(vec![
        basalt_proto::Frame::Bulk(bytes::Bytes::from(cursor.to_string())),
        basalt_proto::Frame::Array(items),
    ])
}

#[cfg(test)]
mod tests {
    use super::timeout_deadline;

    #[test]
    fn timeouts_follow_redis_7_0() {
        let now = 1_700_000_000_000;
        assert_eq!(timeout_deadline(b"0", now), Ok(None));
        assert_eq!(timeout_deadline(b"1.5", now), Ok(Some(now + 1500)));
        assert_eq!(timeout_deadline(b"0.0019", now), Ok(Some(now + 2)));
        // 0.001 is below 1/1000 as a long double and the product 1 - 2^-64: rounding up
        // gives 1 ms (truncation would give 0 = forever; Redis times out).
        assert_eq!(timeout_deadline(b"0.001", now), Ok(Some(now + 1)));
        // 0.3 is 0.29999...9989 as a long double; the product rounds back up to 300.
        assert_eq!(timeout_deadline(b"0.3", now), Ok(Some(now + 300)));
        assert_eq!(timeout_deadline(b"0x1p-1", now), Ok(Some(now + 500)));
        // Rounded up to whole milliseconds: a positive fraction waits 1 ms, a negative
        // one rounds to 0, which means forever.
        assert_eq!(timeout_deadline(b"0.0001", now), Ok(Some(now + 1)));
        assert_eq!(timeout_deadline(b"1e-300", now), Ok(Some(now + 1)));
        assert_eq!(timeout_deadline(b"-0.0001", now), Ok(None));
        let negative = Err(super::Error::msg("ERR timeout is negative"));
        for v in ["-1", "inf", "-inf", "1e400", "9223372036854775807"] {
            assert_eq!(timeout_deadline(v.as_bytes(), now), negative, "{v}");
        }
        let not_float = Err(super::Error::msg(
            "ERR timeout is not a float or out of range",
        ));
        for v in ["nan", "abc", "", " 1", "1x"] {
            assert_eq!(timeout_deadline(v.as_bytes(), now), not_float, "{v}");
        }
        // The deadline would overflow: 7.0 never wakes such a client.
        assert_eq!(timeout_deadline(b"9223372036854775", now), Ok(None));
    }
}
