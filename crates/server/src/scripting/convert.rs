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

use super::error;
use super::number::truncate;
use basalt_proto::{Frame, format_double};
use bytes::Bytes;
use mlua::{Lua, Table, Value};

/// Tables nested deeper than this in a script's reply become an error element (Redis
/// answers "reached lua stack limit" when its Lua stack runs out): bounds the recursion.
pub const REPLY_MAX_DEPTH: usize = 1000;

/// A command reply as the script sees it; errors become error tables (raised or not by
/// the caller). `resp3` is the script's protocol (`redis.setresp`).
pub fn frame_to_lua(lua: &Lua, f: &Frame, resp3: bool) -> mlua::Result<Value> {
    Ok(match f {
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(s)?)?;
            Value::Table(t)
        }
        Frame::Error(e) => Value::Table(error_table(lua, e)?),
        Frame::Integer(i) => Value::Number(*i as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::Null | Frame::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Frame::Array(items) | Frame::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua(lua, item, resp3)?)?;
            }
            Value::Table(t)
        }
        Frame::Boolean(b) => {
            if resp3 {
                Value::Boolean(*b)
            } else {
                Value::Number(if *b { 1.0 } else { 0.0 })
            }
        }
        Frame::Double(d) => {
            if resp3 {
                single(lua, "double", Value::Number(*d))?
            } else {
                let mut text = Vec::new();
                format_double(*d, &mut text);
                Value::String(lua.create_string(&text)?)
            }
        }
        Frame::FormattedDouble(text) => {
            if resp3 {
                let d = std::str::from_utf8(text)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0);
                single(lua, "double", Value::Number(d))?
            } else {
                Value::String(lua.create_string(text)?)
            }
        }
        Frame::BigNumber(s) => {
            if resp3 {
                single(lua, "big_number", Value::String(lua.create_string(s)?))?
            } else {
                Value::String(lua.create_string(s)?)
            }
        }
        Frame::Verbatim { format, text } => {
            if resp3 {
                let inner = lua.create_table()?;
                inner.raw_set("string", lua.create_string(text)?)?;
                inner.raw_set("format", lua.create_string(format)?)?;
                single(lua, "verbatim_string", Value::Table(inner))?
            } else {
                Value::String(lua.create_string(text)?)
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                let inner = lua.create_table()?;
                for (k, v) in pairs {
                    let k = frame_to_lua(lua, k, resp3)?;
                    if k != Value::Nil {
                        inner.raw_set(k, frame_to_lua(lua, v, resp3)?)?;
                    }
                }
                single(lua, "map", Value::Table(inner))?
            } else {
                let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
                let mut i = 1;
                for (k, v) in pairs {
                    t.raw_set(i, frame_to_lua(lua, k, resp3)?)?;
                    t.raw_set(i + 1, frame_to_lua(lua, v, resp3)?)?;
                    i += 2;
                }
                Value::Table(t)
            }
        }
        Frame::Set(items) => {
            if resp3 {
                let inner = lua.create_table()?;
                for item in items {
                    let k = frame_to_lua(lua, item, resp3)?;
                    if k != Value::Nil {
                        inner.raw_set(k, true)?;
                    }
                }
                single(lua, "set", Value::Table(inner))?
            } else {
                let t = lua.create_table_with_capacity(items.len(), 0)?;
                for (i, item) in items.iter().enumerate() {
                    t.raw_set(i + 1, frame_to_lua(lua, item, resp3)?)?;
                }
                Value::Table(t)
            }
        }
        Frame::Attribute { data, .. } => frame_to_lua(lua, data, resp3)?,
    })
}

fn single(lua: &Lua, key: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(key, v)?;
    Ok(Value::Table(t))
}

/// `{err = "CODE message", ignore_error_stats_update = true}` for a command's error.
pub fn error_table(lua: &Lua, e: &[u8]) -> mlua::Result<Table> {
    let text = format!("-{}", String::from_utf8_lossy(e));
    let t = lua.create_table()?;
    t.raw_set("err", error::error_text(&text))?;
    t.raw_set("ignore_error_stats_update", true)?;
    Ok(t)
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
