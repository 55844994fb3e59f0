//! Argument checks for the Rust-implemented Lua libraries, with the messages of Lua
//! 5.1's `luaL_check*` functions ("bad argument #1 to 'band' (number expected, got
//! string)"), so scripts see the errors the C libraries give.

use super::error;
use super::number::fmt_g;
use mlua::{Lua, MultiValue, Value};

/// Lua's name of a value's type (`lua_typename`).
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(Value::UserData(_)) | Some(Value::Error(_)) => "userdata",
        Some(_) => "userdata",
    }
}

/// `luaL_argerror`: "bad argument #n to 'f' (msg)" at the caller's position.
pub fn arg_error(lua: &Lua, n: usize, fname: &str, msg: &str) -> mlua::Error {
    error::string(lua, &format!("bad argument #{n} to '{fname}' ({msg})"))
}

fn type_error(lua: &Lua, args: &MultiValue, n: usize, fname: &str, expected: &str) -> mlua::Error {
    let got = type_name(args.get(n - 1));
    arg_error(lua, n, fname, &format!("{expected} expected, got {got}"))
}

/// Lua's string to number coercion (`lua_tonumber` on a string): decimal or hex.
pub fn str_to_number(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?;
    let t = t.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return None;
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let v = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if neg { -v } else { v });
    }
    // strtod accepts what Rust's parser accepts, plus "inf"/"nan" spellings.
    let lower = body.to_ascii_lowercase();
    if lower.starts_with("inf") || lower.starts_with("nan") {
        let v = if lower == "inf" || lower == "infinity" {
            f64::INFINITY
        } else if lower == "nan" {
            f64::NAN
        } else {
            return None;
        };
        return Some(if neg { -v } else { v });
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = body.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// A value as a number, with Lua's coercion of numeric strings.
pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => str_to_number(&s.as_bytes()),
        _ => None,
    }
}

/// `luaL_checknumber` on argument `n` (1-based).
pub fn number(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<f64> {
    args.get(n - 1)
        .and_then(to_number)
        .ok_or_else(|| type_error(lua, args, n, fname, "number"))
}

/// `luaL_optnumber`.
pub fn opt_number(
    lua: &Lua,
    args: &MultiValue,
    n: usize,
    fname: &str,
    default: f64,
) -> mlua::Result<f64> {
    match args.get(n - 1) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => number(lua, args, n, fname),
    }
}

/// `luaL_checkint`: the number truncated toward zero, as C's cast does.
pub fn int(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<i64> {
    Ok(super::number::truncate(number(lua, args, n, fname)?))
}

/// A value as a string, with Lua's coercion of numbers (`%.14g`).
pub fn to_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(i.to_string().into_bytes()),
        Value::Number(n) => Some(fmt_g(*n, 14).into_bytes()),
        _ => None,
    }
}

/// `luaL_checklstring` on argument `n`.
pub fn bytes(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<Vec<u8>> {
    args.get(n - 1)
        .and_then(to_bytes)
        .ok_or_else(|| type_error(lua, args, n, fname, "string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_follows_lua() {
        assert_eq!(str_to_number(b" 10 "), Some(10.0));
        assert_eq!(str_to_number(b"0x10"), Some(16.0));
        assert_eq!(str_to_number(b"1e3"), Some(1000.0));
        assert_eq!(str_to_number(b"abc"), None);
        assert_eq!(str_to_number(b""), None);
    }
}
