//! Lua ↔ RESP conversion, as Redis documents it.
//!
//! Command replies to Lua (`redis.call`): integers become numbers, bulk strings strings,
//! arrays tables, status replies `{ok = s}`, errors `{err = s}`, a RESP2 null `false`.
//! Under `redis.setresp(3)` the RESP3 types arrive as Redis builds them: `{map = t}`,
//! `{set = t}`, `{double = n}`, `{big_number = s}`, `{verbatim_string = {format, string}}`,
//! booleans, and null as nil.
//!
//! Lua values to the client: numbers truncate to integers, `false`/nil are null, `true`
//! is `1` (or a RESP3 boolean under `setresp(3)`), strings are bulk strings, and tables are
//! errors (`err`), statuses (`ok`), the RESP3 shapes above, or arrays up to the first nil.

use super::number::truncate;
use basalt_proto::{Frame, format_double};
use bytes::Bytes;
use mlua::{Lua, Table, Value, ffi};

/// Tables nested deeper than this in a script's reply become an error element (Redis
/// answers "reached lua stack limit" when its Lua stack runs out): bounds the recursion.
pub const REPLY_MAX_DEPTH: usize = 1000;

/// A command reply as the script sees it (see [`push_frame`]), as an mlua value.
pub fn frame_to_lua(lua: &Lua, f: &Frame, resp3: bool) -> mlua::Result<Value> {
    let mut scratch = Vec::new();
    // SAFETY: `exec_raw` runs the closure inside a protected call with room for the
    // closure's pushes checked by `push_frame`; an error raised while pushing unwinds to
    // that protected call and only `f` and `scratch` (borrowed) are live meanwhile.
    unsafe { lua.exec_raw((), |state| push_frame(state, f, resp3, &mut scratch)) }
}

/// Pushes `s` (any bytes).
///
/// # Safety
/// `state` is a live Lua state with a free stack slot.
pub unsafe fn push_bytes(state: *mut ffi::lua_State, s: &[u8]) {
    unsafe { ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len()) };
}

/// Pushes `{err = <text>, ignore_error_stats_update = true}` for a command's error `e`
/// (without its `-`), with the text rules of Redis's `luaPushErrorBuff`: `CODE msg`
/// keeps its code, a lone word gets `ERR `, CR and LF around the message are trimmed.
///
/// # Safety
/// As [`push_frame`].
pub unsafe fn push_error_table(state: *mut ffi::lua_State, e: &[u8], counted: bool) {
    unsafe {
        ffi::luaL_checkstack(state, 4, c"error reply".as_ptr());
        ffi::lua_createtable(state, 0, 2);
        push_bytes(state, b"err");
        let trim = |m: &[u8]| -> std::ops::Range<usize> {
            let start = m.iter().position(|&c| c != b'\r' && c != b'\n');
            let end = m.iter().rposition(|&c| c != b'\r' && c != b'\n');
            match (start, end) {
                (Some(s), Some(e)) => s..e + 1,
                _ => 0..0,
            }
        };
        match memchr::memchr(b' ', e) {
            Some(sp) => {
                let msg = &e[sp + 1..];
                push_bytes(state, &e[..sp + 1]);
                push_bytes(state, &msg[trim(msg)]);
            }
            None => {
                push_bytes(state, b"ERR ");
                push_bytes(state, &e[trim(e)]);
            }
        }
        ffi::lua_concat(state, 2);
        ffi::lua_rawset(state, -3);
        if counted {
            push_bytes(state, b"ignore_error_stats_update");
            ffi::lua_pushboolean(state, 1);
            ffi::lua_rawset(state, -3);
        }
    }
}

/// Pushes a table with the one field `key` whose value `push` pushes (`{ok = s}`,
/// `{double = n}`, `{map = t}` ...).
unsafe fn push_single(state: *mut ffi::lua_State, key: &[u8], push: impl FnOnce()) {
    unsafe {
        ffi::lua_createtable(state, 0, 1);
        push_bytes(state, key);
        push();
        ffi::lua_rawset(state, -3);
    }
}

/// Pushes a command reply as the script sees it: errors become error tables (raised or
/// not by the caller), `resp3` is the script's protocol (`redis.setresp`). Works on the
/// raw Lua stack: building replies through mlua values cost a reference slot per value.
///
/// # Safety
/// `state` is a live Lua state running a protected call. Lua may raise an error (out of
/// memory, stack overflow) from any push, which unwinds with `longjmp` to that protected
/// call: the caller must hold nothing that needs dropping in the frames in between
/// (`f` and `scratch` are borrowed, so they are fine).
pub unsafe fn push_frame(
    state: *mut ffi::lua_State,
    f: &Frame,
    resp3: bool,
    scratch: &mut Vec<u8>,
) {
    unsafe {
        // The value, a table under construction, its key and a nested table.
        ffi::luaL_checkstack(state, 4, c"reply nesting".as_ptr());
        match f {
            Frame::Simple(s) => push_single(state, b"ok", || push_bytes(state, s)),
            Frame::Error(e) => push_error_table(state, e, true),
            Frame::Integer(i) => ffi::lua_pushnumber(state, *i as f64),
            Frame::Bulk(b) => push_bytes(state, b),
            Frame::Null | Frame::NullArray => {
                if resp3 {
                    ffi::lua_pushnil(state)
                } else {
                    ffi::lua_pushboolean(state, 0)
                }
            }
            Frame::Array(items) | Frame::Push(items) => {
                ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as i32, 0);
                for (i, item) in items.iter().enumerate() {
                    push_frame(state, item, resp3, scratch);
                    ffi::lua_rawseti_(state, -2, (i + 1) as i32);
                }
            }
            Frame::Boolean(b) => {
                if resp3 {
                    ffi::lua_pushboolean(state, *b as i32)
                } else {
                    ffi::lua_pushnumber(state, if *b { 1.0 } else { 0.0 })
                }
            }
            Frame::Double(d) => {
                if resp3 {
                    push_single(state, b"double", || ffi::lua_pushnumber(state, *d))
                } else {
                    scratch.clear();
                    format_double(*d, scratch);
                    push_bytes(state, scratch)
                }
            }
            Frame::FormattedDouble(text) => {
                if resp3 {
                    let d = std::str::from_utf8(text)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                        .unwrap_or(0.0);
                    push_single(state, b"double", || ffi::lua_pushnumber(state, d))
                } else {
                    push_bytes(state, text)
                }
            }
            Frame::BigNumber(s) => {
                if resp3 {
                    push_single(state, b"big_number", || push_bytes(state, s))
                } else {
                    push_bytes(state, s)
                }
            }
            Frame::Verbatim { format, text } => {
                if resp3 {
                    push_single(state, b"verbatim_string", || {
                        ffi::lua_createtable(state, 0, 2);
                        push_bytes(state, b"string");
                        push_bytes(state, text);
                        ffi::lua_rawset(state, -3);
                        push_bytes(state, b"format");
                        push_bytes(state, format);
                        ffi::lua_rawset(state, -3);
                    })
                } else {
                    push_bytes(state, text)
                }
            }
            Frame::Map(pairs) => {
                if resp3 {
                    push_single(state, b"map", || {
                        ffi::lua_createtable(state, 0, pairs.len().min(i32::MAX as usize) as i32);
                        for (k, v) in pairs {
                            push_frame(state, k, resp3, scratch);
                            if ffi::lua_isnil(state, -1) != 0 {
                                ffi::lua_pop(state, 1);
                                continue;
                            }
                            push_frame(state, v, resp3, scratch);
                            ffi::lua_rawset(state, -3);
                        }
                    })
                } else {
                    let n = pairs.len().saturating_mul(2).min(i32::MAX as usize) as i32;
                    ffi::lua_createtable(state, n, 0);
                    let mut i = 1;
                    for (k, v) in pairs {
                        push_frame(state, k, resp3, scratch);
                        ffi::lua_rawseti_(state, -2, i);
                        push_frame(state, v, resp3, scratch);
                        ffi::lua_rawseti_(state, -2, i + 1);
                        i += 2;
                    }
                }
            }
            Frame::Set(items) => {
                if resp3 {
                    push_single(state, b"set", || {
                        ffi::lua_createtable(state, 0, items.len().min(i32::MAX as usize) as i32);
                        for item in items {
                            push_frame(state, item, resp3, scratch);
                            if ffi::lua_isnil(state, -1) != 0 {
                                ffi::lua_pop(state, 1);
                                continue;
                            }
                            ffi::lua_pushboolean(state, 1);
                            ffi::lua_rawset(state, -3);
                        }
                    })
                } else {
                    ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as i32, 0);
                    for (i, item) in items.iter().enumerate() {
                        push_frame(state, item, resp3, scratch);
                        ffi::lua_rawseti_(state, -2, (i + 1) as i32);
                    }
                }
            }
            Frame::Attribute { data, .. } => push_frame(state, data, resp3, scratch),
            Frame::Bulks(list) => {
                ffi::lua_createtable(state, list.len().min(i32::MAX as usize) as i32, 0);
                for (i, item) in list.iter().enumerate() {
                    push_bytes(state, item);
                    ffi::lua_rawseti_(state, -2, (i + 1) as i32);
                }
            }
        }
    }
}

fn map_crlf(b: &[u8]) -> Bytes {
    Bytes::from(
        b.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
            .collect::<Vec<u8>>(),
    )
}

/// A script's return value as a reply. `resp3` is the script's protocol.
pub fn lua_to_frame(v: &Value, resp3: bool) -> Frame {
    to_frame(v, resp3, 0)
}

fn field(t: &Table, key: &str) -> Value {
    t.get::<Value>(key).unwrap_or(Value::Nil)
}

fn to_frame(v: &Value, resp3: bool, depth: usize) -> Frame {
    if depth > REPLY_MAX_DEPTH {
        return Frame::error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => {
            if resp3 {
                Frame::Boolean(*b)
            } else if *b {
                Frame::Integer(1)
            } else {
                Frame::Null
            }
        }
        Value::Integer(i) => Frame::Integer(*i),
        Value::Number(n) => Frame::Integer(truncate(*n)),
        Value::Table(t) => table_to_frame(t, resp3, depth),
        _ => Frame::Null,
    }
}

fn table_to_frame(t: &Table, resp3: bool, depth: usize) -> Frame {
    if let Value::String(s) = field(t, "err") {
        return Frame::Error(map_crlf(&s.as_bytes()));
    }
    if let Value::String(s) = field(t, "ok") {
        return Frame::Simple(map_crlf(&s.as_bytes()));
    }
    match field(t, "double") {
        Value::Integer(i) => return Frame::Double(i as f64),
        Value::Number(n) => return Frame::Double(n),
        _ => {}
    }
    if let Value::String(s) = field(t, "big_number") {
        return Frame::BigNumber(map_crlf(&s.as_bytes()));
    }
    if let Value::Table(vt) = field(t, "verbatim_string")
        && let Value::String(format) = field(&vt, "format")
        && let Value::String(text) = field(&vt, "string")
    {
        let mut f = [b' '; 3];
        for (d, s) in f.iter_mut().zip(format.as_bytes().iter()) {
            *d = *s;
        }
        return Frame::Verbatim {
            format: f,
            text: Bytes::copy_from_slice(&text.as_bytes()),
        };
    }
    if let Value::Table(m) = field(t, "map") {
        let mut pairs = Vec::new();
        for pair in m.pairs::<Value, Value>() {
            let Ok((k, v)) = pair else { break };
            pairs.push((
                to_frame(&k, resp3, depth + 1),
                to_frame(&v, resp3, depth + 1),
            ));
        }
        return Frame::Map(pairs);
    }
    if let Value::Table(s) = field(t, "set") {
        let mut items = Vec::new();
        for pair in s.pairs::<Value, Value>() {
            let Ok((k, _)) = pair else { break };
            items.push(to_frame(&k, resp3, depth + 1));
        }
        return Frame::Set(items);
    }
    let mut items = Vec::new();
    let mut j = 1;
    loop {
        let v: Value = t.get(j).unwrap_or(Value::Nil);
        if v == Value::Nil {
            break;
        }
        items.push(to_frame(&v, resp3, depth + 1));
        j += 1;
    }
    Frame::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_values_become_redis_replies() {
        let lua = Lua::new();
        let v: Value = lua
            .load("return {1, 2.9, 'x', {3, nil, 4}, true, false, nil, 5}")
            .eval()
            .unwrap();
        assert_eq!(
            lua_to_frame(&v, false),
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Integer(2),
                Frame::Bulk(Bytes::from_static(b"x")),
                Frame::Array(vec![Frame::Integer(3)]),
                Frame::Integer(1),
                Frame::Null,
            ])
        );
        let v: Value = lua.load("return {err = 'E\\r\\nx'}").eval().unwrap();
        assert_eq!(lua_to_frame(&v, false), Frame::error("E  x"));
        let v: Value = lua.load("return {double = 1.5}").eval().unwrap();
        assert_eq!(lua_to_frame(&v, false), Frame::Double(1.5));
        let v: Value = lua.load("return true").eval().unwrap();
        assert_eq!(lua_to_frame(&v, true), Frame::Boolean(true));
    }

    #[test]
    fn self_referencing_tables_are_bounded() {
        // The server's workers have room for this recursion; a test thread needs it too.
        std::thread::Builder::new()
            .stack_size(crate::WORKER_STACK_BYTES)
            .spawn(self_referencing_body)
            .expect("spawn")
            .join()
            .expect("bounded");
    }

    fn self_referencing_body() {
        let lua = Lua::new();
        let v: Value = lua.load("local t = {} t[1] = t return t").eval().unwrap();
        let mut f = lua_to_frame(&v, false);
        let mut depth = 0;
        while let Frame::Array(mut items) = f {
            f = items.remove(0);
            depth += 1;
        }
        assert_eq!(depth, REPLY_MAX_DEPTH + 1);
        assert_eq!(f, Frame::error("ERR reached lua stack limit"));
    }

    #[test]
    fn replies_become_lua_values() {
        let lua = Lua::new();
        let f = Frame::Array(vec![
            Frame::Integer(7),
            Frame::Null,
            Frame::Simple(Bytes::from_static(b"OK")),
        ]);
        let v = frame_to_lua(&lua, &f, false).unwrap();
        let t = v.as_table().unwrap();
        assert_eq!(t.raw_get::<f64>(1).unwrap(), 7.0);
        assert!(!t.raw_get::<bool>(2).unwrap());
        let ok: Table = t.raw_get(3).unwrap();
        assert_eq!(ok.raw_get::<String>("ok").unwrap(), "OK");
        let e = frame_to_lua(&lua, &Frame::error("WRONGTYPE bad"), false).unwrap();
        assert_eq!(
            e.as_table().unwrap().raw_get::<String>("err").unwrap(),
            "WRONGTYPE bad"
        );
    }
}
