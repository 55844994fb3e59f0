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
/// deadline; 0 means forever (`None`). Errors as Redis's getTimeoutFromObjectOrReply.
pub fn timeout_deadline(arg: &[u8], now: u64) -> Result<Option<u64>, Error> {
    let secs = basalt_engine::num::parse_f64(arg)
        .filter(|v| v.is_finite())
        .ok_or_else(|| Error::msg("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Error::msg("ERR timeout is negative"));
    }
    let ms = (secs * 1000.0).round();
    if ms == 0.0 {
        return Ok(None);
    }
    if ms >= (i64::MAX as f64) - now as f64 {
        return Err(Error::msg("ERR timeout is out of range"));
    }
    Ok(Some(now + ms as u64))
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
