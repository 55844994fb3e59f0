//! The `cmsgpack` library Redis bundles (lua-cmsgpack 0.4.0 semantics): `pack(...)`
//! encodes every argument and concatenates them; `unpack(s)` decodes every object;
//! `unpack_one(s [, offset])` and `unpack_limit(s, limit [, offset])` return the next
//! offset (-1 at the end) followed by the objects.
//!
//! Numbers that are whole 64-bit integers encode as the smallest integer type; other
//! numbers as float32 when exact, else float64. A table whose keys are exactly 1..n is
//! an array (the empty table too), any other table a map. Tables nested deeper than 16
//! levels, functions and other values encode as nil.

use super::{args, error};
use mlua::{Lua, MultiValue, Table, Value};

/// Tables nested deeper are encoded as nil (survives reference cycles).
const MAX_NESTING: usize = 16;
/// Deepest nesting `unpack` decodes (the C library runs out of Lua stack about there).
pub const MAX_DECODE_DEPTH: usize = 2000;

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, d: f64) {
    // IS_INT64_EQUIVALENT: finite and equal to its int64 cast.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        let i = d as i64;
        if i as f64 == d {
            encode_int(out, i);
            return;
        }
    }
    let f = d as f32;
    if f64::from(f) == d {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// lua-cmsgpack's array test: every key a positive whole number and max == count.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let mut count = 0f64;
    let mut max = 0f64;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(false),
        };
        if n <= 0.0 || n.fract() != 0.0 || !n.is_finite() {
            return Ok(false);
        }
        max = f64::max(max, n);
        count += 1.0;
    }
    Ok(max == count)
}

fn encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(out, *i),
        Value::Number(n) => encode_number(out, *n),
        Value::Table(t) if level < MAX_NESTING => {
            if is_array(t)? {
                let n = t.raw_len();
                header(out, n, 0x90, 0xdc, 0xdd);
                for j in 1..=n {
                    let item: Value = t.raw_get(j)?;
                    encode(out, &item, level + 1)?;
                }
            } else {
                let pairs: Vec<(Value, Value)> =
                    t.pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
                header(out, pairs.len(), 0x80, 0xde, 0xdf);
                for (k, v) in &pairs {
                    encode(out, k, level + 1)?;
                    encode(out, v, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

/// Encodes one value as lua-cmsgpack does (exposed for tests).
pub fn pack_value(v: &Value) -> mlua::Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(&mut out, v, 0)?;
    Ok(out)
}

#[derive(Debug, PartialEq)]
enum DecodeError {
    Eof,
    BadFormat,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.s.len() - self.pos < n {
            return Err(DecodeError::Eof);
        }
        let b = &self.s[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn u(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn left(&self) -> usize {
        self.s.len() - self.pos
    }
}

fn decode(lua: &Lua, c: &mut Cursor<'_>) -> Result<mlua::Result<Value>, DecodeError> {
    if c.depth > MAX_DECODE_DEPTH {
        return Ok(Err(error::string(
            lua,
            "stack overflow (in function mp_decode_to_lua_type)",
        )));
    }
    let t = c.take(1)?[0];
    let num = |n: f64| Ok(Ok(Value::Number(n)));
    match t {
        0x00..=0x7f => num(f64::from(t)),
        0xe0..=0xff => num(f64::from(t as i8)),
        0xcc => num(c.u(1)? as f64),
        0xcd => num(c.u(2)? as f64),
        0xce => num(c.u(4)? as f64),
        0xcf => num(c.u(8)? as f64),
        0xd0 => num(f64::from(c.u(1)? as u8 as i8)),
        0xd1 => num(f64::from(c.u(2)? as u16 as i16)),
        0xd2 => num(f64::from(c.u(4)? as u32 as i32)),
        0xd3 => num(c.u(8)? as i64 as f64),
        0xc0 => Ok(Ok(Value::Nil)),
        0xc2 => Ok(Ok(Value::Boolean(false))),
        0xc3 => Ok(Ok(Value::Boolean(true))),
        0xca => num(f64::from(f32::from_bits(c.u(4)? as u32))),
        0xcb => num(f64::from_bits(c.u(8)?)),
        0xa0..=0xbf => string(lua, c, usize::from(t & 0x1f)),
        // str8/16/32, array16/32, map16/32: a big-endian length of 1, 2 or 4 bytes.
        0xd9..=0xdb => {
            let n = c.u(1 << (t - 0xd9))? as usize;
            string(lua, c, n)
        }
        0x90..=0x9f => array(lua, c, usize::from(t & 0x0f)),
        0xdc | 0xdd => {
            let n = c.u(2 << (t - 0xdc))? as usize;
            array(lua, c, n)
        }
        0x80..=0x8f => map(lua, c, usize::from(t & 0x0f)),
        0xde | 0xdf => {
            let n = c.u(2 << (t - 0xde))? as usize;
            map(lua, c, n)
        }
        _ => Err(DecodeError::BadFormat),
    }
}

fn string(lua: &Lua, c: &mut Cursor<'_>, n: usize) -> Result<mlua::Result<Value>, DecodeError> {
    let b = c.take(n)?;
    Ok(lua.create_string(b).map(Value::String))
}

fn array(lua: &Lua, c: &mut Cursor<'_>, n: usize) -> Result<mlua::Result<Value>, DecodeError> {
    let t = match lua.create_table() {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    c.depth += 1;
    for i in 1..=n {
        let v = match decode(lua, c)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = t.raw_set(i, v) {
            return Ok(Err(e));
        }
    }
    c.depth -= 1;
    Ok(Ok(Value::Table(t)))
}

fn map(lua: &Lua, c: &mut Cursor<'_>, n: usize) -> Result<mlua::Result<Value>, DecodeError> {
    let t = match lua.create_table() {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    c.depth += 1;
    for _ in 0..n {
        let k = match decode(lua, c)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let v = match decode(lua, c)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if k == Value::Nil {
            return Ok(Err(error::string(lua, "table index is nil")));
        }
        if let Err(e) = t.raw_set(k, v) {
            return Ok(Err(e));
        }
    }
    c.depth -= 1;
    Ok(Ok(Value::Table(t)))
}

fn unpack_full(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(error::string(
            lua,
            &format!(
                "Invalid request to unpack with offset of {offset} and limit of {}.",
                s.len()
            ),
        ));
    }
    if offset as usize > s.len() {
        return Err(error::string(
            lua,
            &format!(
                "Start offset {offset} greater than input length {}.",
                s.len()
            ),
        ));
    }
    let limit = if decode_all { i64::MAX } else { limit };
    let mut c = Cursor {
        s,
        pos: offset as usize,
        depth: 0,
    };
    let mut out = Vec::new();
    let mut cnt = 0;
    while c.left() > 0 && cnt < limit {
        match decode(lua, &mut c) {
            Ok(v) => out.push(v?),
            Err(DecodeError::Eof) => return Err(error::string(lua, "Missing bytes in input.")),
            Err(DecodeError::BadFormat) => {
                return Err(error::string(lua, "Bad data format in input."));
            }
        }
        cnt += 1;
    }
    if !decode_all {
        let next = if c.left() == 0 { -1 } else { c.pos as i64 };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_vec(out))
}

/// Builds the `cmsgpack` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, a: MultiValue| {
            if a.is_empty() {
                return Err(args::arg_error(
                    lua,
                    0,
                    "pack",
                    "MessagePack pack needs input.",
                ));
            }
            let mut out = Vec::new();
            for v in a.iter() {
                encode(&mut out, v, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, a: MultiValue| {
            let s = args::bytes(lua, &a, 1, "unpack")?;
            unpack_full(lua, &s, 0, 0)
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, a: MultiValue| {
            let offset = args::opt_number(lua, &a, 2, "unpack_one", 0.0)? as i64;
            let s = args::bytes(lua, &a, 1, "unpack_one")?;
            unpack_full(lua, &s, 1, offset)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, a: MultiValue| {
            let limit = args::number(lua, &a, 2, "unpack_limit")? as i64;
            let offset = args::opt_number(lua, &a, 3, "unpack_limit", 0.0)? as i64;
            let s = args::bytes(lua, &a, 1, "unpack_limit")?;
            unpack_full(lua, &s, limit, offset)
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals().set("cmsgpack", open(&lua).unwrap()).unwrap();
        lua
    }

    fn pack(lua: &Lua, expr: &str) -> Vec<u8> {
        let s: mlua::LuaString = lua
            .load(format!("return cmsgpack.pack({expr})"))
            .eval()
            .unwrap();
        s.as_bytes().to_vec()
    }

    #[test]
    fn encodes_smallest_types() {
        let lua = lua();
        assert_eq!(pack(&lua, "1"), vec![0x01]);
        assert_eq!(pack(&lua, "-1"), vec![0xff]);
        assert_eq!(pack(&lua, "200"), vec![0xcc, 200]);
        assert_eq!(pack(&lua, "-200"), vec![0xd1, 0xff, 0x38]);
        assert_eq!(pack(&lua, "1.5"), vec![0xca, 0x3f, 0xc0, 0, 0]);
        assert_eq!(
            pack(&lua, "0.1"),
            vec![0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]
        );
        assert_eq!(pack(&lua, "'ab'"), vec![0xa2, b'a', b'b']);
        assert_eq!(pack(&lua, "{}"), vec![0x90]);
        assert_eq!(pack(&lua, "{1, 2}"), vec![0x92, 1, 2]);
        assert_eq!(pack(&lua, "{a = true}"), vec![0x81, 0xa1, b'a', 0xc3]);
        assert_eq!(pack(&lua, "nil, false"), vec![0xc0, 0xc2]);
    }

    #[test]
    fn round_trips_and_offsets() {
        let lua = lua();
        let r: Vec<f64> = lua
            .load("local a, b = cmsgpack.unpack(cmsgpack.pack(300, -70000)) return {a, b}")
            .eval()
            .unwrap();
        assert_eq!(r, vec![300.0, -70000.0]);
        let r: Vec<f64> = lua
            .load("local s = cmsgpack.pack(1, 2, 3) local o1, a = cmsgpack.unpack_one(s) local o2, b = cmsgpack.unpack_one(s, o1) local o3, c = cmsgpack.unpack_one(s, o2) return {o1, a, o2, b, o3, c}")
            .eval()
            .unwrap();
        assert_eq!(r, vec![1.0, 1.0, 2.0, 2.0, -1.0, 3.0]);
        let e = lua
            .load("return cmsgpack.unpack('\\205\\1')")
            .eval::<f64>()
            .unwrap_err();
        assert!(e.to_string().contains("Missing bytes in input."), "{e}");
        let e = lua
            .load("return cmsgpack.unpack('\\193')")
            .eval::<f64>()
            .unwrap_err();
        assert!(e.to_string().contains("Bad data format in input."), "{e}");
    }
}
