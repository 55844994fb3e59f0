//! Errors raised into Lua from Rust callbacks, in the two shapes Redis scripts see.
//!
//! Redis raises either a plain string (`luaL_error`: "user_script:1: message", the
//! position of the calling Lua code) or an error table `{err = "CODE message"}` (what
//! `redis.call` raises and `redis.pcall` returns). An mlua callback can only raise a Rust
//! error, so both travel as a [`Raise`] inside `mlua::Error`; the script's message
//! handler and the sandbox's `pcall` turn it back into what Redis would have raised.

use mlua::{Lua, Value};
use std::fmt;

/// An error raised by Basalt's Rust side of the Lua API.
#[derive(Debug, Clone)]
pub struct Raise {
    /// The message: for a table error `CODE text`; for a string error the full text
    /// (position included).
    pub msg: String,
    /// Raised as an error table (`{err = msg}`) rather than a string.
    pub table: bool,
    /// The table carries `ignore_error_stats_update = true` (the error was already
    /// counted when the command failed).
    pub ignore_stats: bool,
}

impl fmt::Display for Raise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Raise {}

/// An error table `{err = ...}` built from a Redis error text, as `luaPushError` does:
/// `-CODE message` keeps its code, text without `-` gets `ERR`.
pub fn table(text: &str) -> mlua::Error {
    mlua::Error::external(Raise {
        msg: error_text(text),
        table: true,
        ignore_stats: false,
    })
}

/// The error table of a failed command (counted already).
pub fn command(text: &str) -> mlua::Error {
    mlua::Error::external(Raise {
        msg: error_text(text),
        table: true,
        ignore_stats: true,
    })
}

/// A string error with the position of the calling Lua code, as `luaL_error`.
pub fn string(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::external(Raise {
        msg: format!("{}{msg}", position(lua, 1)),
        table: false,
        ignore_stats: false,
    })
}

/// A string error without position (an error raised inside a C function by the VM).
pub fn bare(msg: &str) -> mlua::Error {
    mlua::Error::external(Raise {
        msg: msg.to_string(),
        table: false,
        ignore_stats: false,
    })
}

/// `luaL_where(L, level)` seen from a Rust callback (level 0 is the callback itself):
/// `"user_script:3: "` when that level is Lua code with a line, else empty.
pub fn position(lua: &Lua, level: usize) -> String {
    lua.inspect_stack(level, |d| {
        let line = d.current_line()?;
        let src = d.source();
        let short = src.short_src?.into_owned();
        Some(format!("{short}:{line}: "))
    })
    .flatten()
    .unwrap_or_default()
}

/// Redis's `luaPushErrorBuff` text rules: `-CODE msg` → `CODE msg`; `-CODE` → `ERR
/// CODE`; `msg` → `ERR msg`; trailing CR/LF trimmed.
pub fn error_text(text: &str) -> String {
    let (code, msg) = match text.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code, msg),
            None => ("ERR", rest),
        },
        None => ("ERR", text),
    };
    let msg = msg.trim_matches(|c| c == '\r' || c == '\n');
    format!("{code} {msg}")
}

/// Finds the [`Raise`] inside an mlua error (callbacks wrap their errors).
pub fn find(e: &mlua::Error) -> Option<&Raise> {
    match e {
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<Raise>(),
        mlua::Error::CallbackError { cause, .. } => find(cause),
        mlua::Error::WithContext { cause, .. } => find(cause),
        _ => None,
    }
}

/// The [`Raise`] carried by a Lua error value, if it is one.
pub fn find_in(v: &Value) -> Option<&Raise> {
    match v {
        Value::Error(e) => find(e),
        _ => None,
    }
}

/// The text of an mlua error that is not a [`Raise`] (a conversion error of mlua itself).
pub fn plain_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => plain_text(cause),
        mlua::Error::WithContext { cause, .. } => plain_text(cause),
        mlua::Error::RuntimeError(s) => s.clone(),
        mlua::Error::MemoryError(_) => "not enough memory".to_string(),
        other => other.to_string(),
    }
}

/// What a Lua error value says, as a string (the sandbox's `pcall` and error replies).
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Error(e) => Some(match find(e) {
            Some(r) => r.msg.clone(),
            None => plain_text(e),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_follows_redis() {
        assert_eq!(error_text("-WRONGTYPE Operation"), "WRONGTYPE Operation");
        assert_eq!(error_text("-FOO"), "ERR FOO");
        assert_eq!(error_text("oops"), "ERR oops");
        assert_eq!(error_text("-ERR x y\r\n"), "ERR x y");
    }
}
