//! The `cjson` library Redis bundles (lua-cjson 2.1.0 semantics, Redis's defaults).
//!
//! `encode`: numbers as `%.14g` (`encode_number_precision`), NaN/Inf refused, strings
//! with `"` `\` `/` and control characters escaped, a table whose keys are all whole
//! numbers >= 1 is an array (an empty table is the object `{}`), excessively sparse
//! arrays refused, nesting limited by `encode_max_depth` (1000). `decode`: strict
//! JSON tokens with lua-cjson's error texts ("Expected value but found invalid token at
//! character 1"), `null` as `cjson.null`, nesting limited by `decode_max_depth` (1000).

use super::number::fmt_g;
use super::{args, error};
use mlua::{LightUserData, Lua, MultiValue, Table, Value};
use parking_lot::Mutex;
use std::sync::Arc;

/// One cjson instance's settings (`cjson.new()` makes a fresh one).
#[derive(Debug, Clone)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
    encode_max_depth: i64,
    decode_max_depth: i64,
    invalid_numbers: InvalidNumbers,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum InvalidNumbers {
    Refuse,
    Allow,
    Null,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            invalid_numbers: InvalidNumbers::Refuse,
            decode_invalid_numbers: true,
            keep_buffer: true,
            precision: 14,
        }
    }
}

type Shared = Arc<Mutex<Config>>;

/// Nesting beyond which encode/decode fail whatever the configured depth: lua-cjson's
/// `lua_checkstack` fails about there (Lua's C stack limit), and it bounds recursion.
pub const STACK_DEPTH_LIMIT: i64 = 2600;

fn type_name(v: &Value) -> &'static str {
    args::type_name(Some(v))
}

fn exception(lua: &Lua, v: &Value, reason: &str) -> mlua::Error {
    error::string(lua, &format!("Cannot serialise {}: {reason}", type_name(v)))
}

fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn append_number(
    lua: &Lua,
    cfg: &Config,
    out: &mut Vec<u8>,
    v: &Value,
    n: f64,
) -> mlua::Result<()> {
    if !n.is_finite() {
        match cfg.invalid_numbers {
            InvalidNumbers::Refuse => return Err(exception(lua, v, "must not be NaN or Inf")),
            InvalidNumbers::Allow => {
                let s: &[u8] = if n.is_nan() {
                    b"NaN"
                } else if n > 0.0 {
                    b"Infinity"
                } else {
                    b"-Infinity"
                };
                out.extend_from_slice(s);
                return Ok(());
            }
            InvalidNumbers::Null => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    out.extend_from_slice(fmt_g(n, cfg.precision).as_bytes());
    Ok(())
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// lua-cjson's `lua_array_length`: the array length, or `None` for an object.
fn array_length(lua: &Lua, cfg: &Config, t: &Table, v: &Value) -> mlua::Result<Option<usize>> {
    let mut max = 0f64;
    let mut items = 0i64;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match number_of(&k) {
            Some(n) if n != 0.0 && n.floor() == n && n >= 1.0 => {
                max = f64::max(max, n);
                items += 1;
            }
            _ => return Ok(None),
        }
    }
    if cfg.sparse_ratio > 0
        && max > (items * cfg.sparse_ratio) as f64
        && max > cfg.sparse_safe as f64
    {
        if !cfg.sparse_convert {
            return Err(exception(lua, v, "excessively sparse array"));
        }
        return Ok(None);
    }
    Ok(Some(max as usize))
}

fn append(lua: &Lua, cfg: &Config, out: &mut Vec<u8>, v: &Value, depth: i64) -> mlua::Result<()> {
    match v {
        Value::String(s) => append_string(out, &s.as_bytes()),
        Value::Integer(_) | Value::Number(_) => {
            let n = number_of(v).unwrap_or(0.0);
            append_number(lua, cfg, out, v, n)?;
        }
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth || depth > STACK_DEPTH_LIMIT {
                return Err(error::string(
                    lua,
                    &format!("Cannot serialise, excessive nesting ({depth})"),
                ));
            }
            match array_length(lua, cfg, t, v)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i)?;
                        append(lua, cfg, out, &item, depth)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, val) = pair?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::Integer(_) | Value::Number(_) => {
                                out.push(b'"');
                                append_number(lua, cfg, out, &k, number_of(&k).unwrap_or(0.0))?;
                                out.extend_from_slice(b"\":");
                            }
                            Value::String(s) => {
                                append_string(out, &s.as_bytes());
                                out.push(b':');
                            }
                            _ => {
                                return Err(exception(
                                    lua,
                                    &k,
                                    "table key must be a number or string",
                                ));
                            }
                        }
                        append(lua, cfg, out, &val, depth)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(exception(lua, other, "type not supported")),
    }
    Ok(())
}

/// Encodes a value with the default settings (for tests and Rust callers).
pub fn encode_value(lua: &Lua, v: &Value) -> mlua::Result<Vec<u8>> {
    let mut out = Vec::new();
    append(lua, &Config::default(), &mut out, v, 0)?;
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(s) => s,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: i64,
    cfg: Config,
}

/// C `strtod` on a prefix: returns the value and the bytes consumed (0: no number).
fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    let neg = match s.first() {
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
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let lower: Vec<u8> = rest.iter().take(8).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"infinity") {
        return (sign * f64::INFINITY, i + 8);
    }
    if lower.starts_with(b"inf") {
        return (sign * f64::INFINITY, i + 3);
    }
    if lower.starts_with(b"nan") {
        return (f64::NAN, i + 3);
    }
    if lower.starts_with(b"0x") {
        let digits = rest[2..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if digits > 0 {
            let mut v = 0f64;
            for &c in &rest[2..2 + digits] {
                v = v * 16.0 + f64::from((c as char).to_digit(16).unwrap_or(0));
            }
            return (sign * v, i + 2 + digits);
        }
        // "0x" alone parses as "0".
        return (0.0, i + 1);
    }
    let start = i;
    let mut j = i;
    let int_digits = s[j..].iter().take_while(|c| c.is_ascii_digit()).count();
    j += int_digits;
    let mut frac_digits = 0;
    if s.get(j) == Some(&b'.') {
        frac_digits = s[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if int_digits > 0 || frac_digits > 0 {
            j += 1 + frac_digits;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return (0.0, 0);
    }
    if matches!(s.get(j), Some(b'e') | Some(b'E')) {
        let mut k = j + 1;
        if matches!(s.get(k), Some(b'+') | Some(b'-')) {
            k += 1;
        }
        let exp_digits = s[k..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits > 0 {
            j = k + exp_digits;
        }
    }
    let text = std::str::from_utf8(&s[start..j]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    (sign * v, j)
}

fn invalid_number(p: &[u8]) -> bool {
    let mut i = 0;
    if p.first() == Some(&b'+') {
        return true;
    }
    if p.first() == Some(&b'-') {
        i += 1;
    }
    match p.get(i) {
        Some(b'0') => {
            let c2 = p.get(i + 1).copied().unwrap_or(0);
            (c2 | 0x20) == b'x' || c2.is_ascii_digit()
        }
        Some(c) if *c <= b'9' => false,
        _ => {
            let rest: Vec<u8> = p[i..].iter().take(3).map(u8::to_ascii_lowercase).collect();
            rest == b"inf" || rest == b"nan"
        }
    }
}

impl Parser<'_> {
    /// The next token and its 0-based index.
    fn next(&mut self) -> (Tok, usize) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        let index = self.pos;
        let Some(&c) = self.s.get(self.pos) else {
            return (Tok::End, index);
        };
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, index);
        }
        if c == b'"' {
            return self.string(index);
        }
        let rest = &self.s[self.pos..];
        if c == b'-' || c.is_ascii_digit() {
            if !self.cfg.decode_invalid_numbers && invalid_number(rest) {
                return (Tok::Error("invalid number"), self.pos);
            }
            return self.number(index);
        }
        if rest.starts_with(b"true") {
            self.pos += 4;
            return (Tok::Bool(true), index);
        }
        if rest.starts_with(b"false") {
            self.pos += 5;
            return (Tok::Bool(false), index);
        }
        if rest.starts_with(b"null") {
            self.pos += 4;
            return (Tok::Null, index);
        }
        if self.cfg.decode_invalid_numbers && invalid_number(rest) {
            return self.number(index);
        }
        (Tok::Error("invalid token"), self.pos)
    }

    fn number(&mut self, index: usize) -> (Tok, usize) {
        let (v, n) = strtod(&self.s[self.pos..]);
        if n == 0 {
            return (Tok::Error("invalid number"), self.pos);
        }
        self.pos += n;
        (Tok::Num(v), index)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let t = std::str::from_utf8(h).ok()?;
        if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(t, 16).ok()
    }

    fn string(&mut self, index: usize) -> (Tok, usize) {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return (Tok::Error("unexpected end of string"), self.pos);
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return (Tok::Str(out), index);
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos + 1) else {
                        return (Tok::Error("unexpected end of string"), self.pos);
                    };
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        self.pos += 2;
                        continue;
                    }
                    if e != b'u' {
                        return (Tok::Error("invalid escape code"), self.pos);
                    }
                    let bad = (Tok::Error("invalid unicode escape code"), self.pos);
                    let Some(mut cp) = self.hex4(self.pos + 2) else {
                        return bad;
                    };
                    let mut len = 6;
                    if (0xdc00..=0xdfff).contains(&cp) {
                        return bad;
                    }
                    if (0xd800..=0xdbff).contains(&cp) {
                        if self.s.get(self.pos + 6) != Some(&b'\\')
                            || self.s.get(self.pos + 7) != Some(&b'u')
                        {
                            return bad;
                        }
                        let Some(lo) = self.hex4(self.pos + 8) else {
                            return bad;
                        };
                        if !(0xdc00..=0xdfff).contains(&lo) {
                            return bad;
                        }
                        cp = (((cp & 0x3ff) << 10) | (lo & 0x3ff)) + 0x10000;
                        len = 12;
                    }
                    let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    self.pos += len;
                }
                _ => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn parse_error(&self, lua: &Lua, expected: &str, tok: &Tok, index: usize) -> mlua::Error {
        error::string(
            lua,
            &format!(
                "Expected {expected} but found {} at character {}",
                tok.name(),
                index + 1
            ),
        )
    }

    fn descend(&mut self, lua: &Lua) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth || self.depth > STACK_DEPTH_LIMIT {
            return Err(error::string(
                lua,
                &format!(
                    "Found too many nested data structures ({}) at character {}",
                    self.depth, self.pos
                ),
            ));
        }
        Ok(())
    }

    fn value(&mut self, lua: &Lua, tok: Tok, index: usize) -> mlua::Result<Value> {
        Ok(match tok {
            Tok::Str(s) => Value::String(lua.create_string(&s)?),
            Tok::Num(n) => Value::Number(n),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
            Tok::ObjBegin => {
                self.descend(lua)?;
                let t = lua.create_table()?;
                let (mut tok, mut idx) = self.next();
                if tok != Tok::ObjEnd {
                    loop {
                        let Tok::Str(key) = tok else {
                            return Err(self.parse_error(lua, "object key string", &tok, idx));
                        };
                        let (colon, ci) = self.next();
                        if colon != Tok::Colon {
                            return Err(self.parse_error(lua, "colon", &colon, ci));
                        }
                        let (vt, vi) = self.next();
                        let v = self.value(lua, vt, vi)?;
                        t.raw_set(lua.create_string(&key)?, v)?;
                        let (sep, si) = self.next();
                        if sep == Tok::ObjEnd {
                            break;
                        }
                        if sep != Tok::Comma {
                            return Err(self.parse_error(lua, "comma or object end", &sep, si));
                        }
                        (tok, idx) = self.next();
                    }
                }
                self.depth -= 1;
                Value::Table(t)
            }
            Tok::ArrBegin => {
                self.descend(lua)?;
                let t = lua.create_table()?;
                let (mut tok, mut idx) = self.next();
                if tok != Tok::ArrEnd {
                    let mut i = 1;
                    loop {
                        let v = self.value(lua, tok, idx)?;
                        t.raw_set(i, v)?;
                        i += 1;
                        let (sep, si) = self.next();
                        if sep == Tok::ArrEnd {
                            break;
                        }
                        if sep != Tok::Comma {
                            return Err(self.parse_error(lua, "comma or array end", &sep, si));
                        }
                        (tok, idx) = self.next();
                    }
                }
                self.depth -= 1;
                Value::Table(t)
            }
            other => return Err(self.parse_error(lua, "value", &other, index)),
        })
    }
}

fn decode(lua: &Lua, cfg: &Config, s: &[u8]) -> mlua::Result<Value> {
    if s.len() >= 2 && (s[0] == 0 || s[1] == 0) {
        return Err(error::string(
            lua,
            "JSON parser does not support UTF-16 or UTF-32",
        ));
    }
    let mut p = Parser {
        s,
        pos: 0,
        depth: 0,
        cfg: cfg.clone(),
    };
    let (tok, idx) = p.next();
    let v = p.value(lua, tok, idx)?;
    let (tok, idx) = p.next();
    if tok != Tok::End {
        return Err(p.parse_error(lua, "the end", &tok, idx));
    }
    Ok(v)
}

fn int_setting(
    lua: &Lua,
    a: &MultiValue,
    n: usize,
    fname: &str,
    min: i64,
    max: i64,
) -> mlua::Result<Option<i64>> {
    match a.get(n - 1) {
        None | Some(Value::Nil) => Ok(None),
        Some(v) => match args::to_number(v) {
            Some(x) if x.fract() == 0.0 && x >= min as f64 && x <= max as f64 => Ok(Some(x as i64)),
            _ => Err(args::arg_error(
                lua,
                n,
                fname,
                &format!("expected integer between {min} and {max}"),
            )),
        },
    }
}

fn bool_setting(lua: &Lua, a: &MultiValue, n: usize, fname: &str) -> mlua::Result<Option<bool>> {
    match a.get(n - 1) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.as_bytes().as_ref() == b"on" => Ok(Some(true)),
        Some(Value::String(s)) if s.as_bytes().as_ref() == b"off" => Ok(Some(false)),
        Some(_) => Err(args::arg_error(
            lua,
            n,
            fname,
            "invalid option (expected: boolean)",
        )),
    }
}

/// Builds a `cjson` table with its own settings.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    build(lua, Arc::new(Mutex::new(Config::default())))
}

fn build(lua: &Lua, cfg: Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.raw_set(
        "encode",
        lua.create_function(move |lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(args::arg_error(lua, 1, "encode", "expected 1 argument"));
            }
            let cfg = c.lock().clone();
            let mut out = Vec::new();
            append(lua, &cfg, &mut out, &a[0], 0)?;
            lua.create_string(&out)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        lua.create_function(move |lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(args::arg_error(lua, 1, "decode", "expected 1 argument"));
            }
            let s = args::bytes(lua, &a, 1, "decode")?;
            let cfg = c.lock().clone();
            decode(lua, &cfg, &s)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_sparse_array",
        lua.create_function(move |lua, a: MultiValue| {
            let f = "encode_sparse_array";
            let convert = bool_setting(lua, &a, 1, f)?;
            let ratio = int_setting(lua, &a, 2, f, 0, i64::from(i32::MAX))?;
            let safe = int_setting(lua, &a, 3, f, 0, i64::from(i32::MAX))?;
            let mut g = c.lock();
            if let Some(v) = convert {
                g.sparse_convert = v;
            }
            if let Some(v) = ratio {
                g.sparse_ratio = v;
            }
            if let Some(v) = safe {
                g.sparse_safe = v;
            }
            Ok((
                g.sparse_convert,
                g.sparse_ratio as f64,
                g.sparse_safe as f64,
            ))
        })?,
    )?;
    for (name, decode_side) in [("encode_max_depth", false), ("decode_max_depth", true)] {
        let c = cfg.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, a: MultiValue| {
                let v = int_setting(lua, &a, 1, name, 1, i64::from(i32::MAX))?;
                let mut g = c.lock();
                let slot = if decode_side {
                    &mut g.decode_max_depth
                } else {
                    &mut g.encode_max_depth
                };
                if let Some(v) = v {
                    *slot = v;
                }
                Ok(*slot as f64)
            })?,
        )?;
    }
    let c = cfg.clone();
    t.raw_set(
        "encode_number_precision",
        lua.create_function(move |lua, a: MultiValue| {
            let v = int_setting(lua, &a, 1, "encode_number_precision", 1, 14)?;
            let mut g = c.lock();
            if let Some(v) = v {
                g.precision = v as usize;
            }
            Ok(g.precision as f64)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_keep_buffer",
        lua.create_function(move |lua, a: MultiValue| {
            let v = bool_setting(lua, &a, 1, "encode_keep_buffer")?;
            let mut g = c.lock();
            if let Some(v) = v {
                g.keep_buffer = v;
            }
            Ok(g.keep_buffer)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, a: MultiValue| {
            let mut g = c.lock();
            match a.front() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(true)) => g.invalid_numbers = InvalidNumbers::Allow,
                Some(Value::Boolean(false)) => g.invalid_numbers = InvalidNumbers::Refuse,
                Some(Value::String(s)) if s.as_bytes().as_ref() == b"null" => {
                    g.invalid_numbers = InvalidNumbers::Null
                }
                Some(Value::String(s)) if s.as_bytes().as_ref() == b"on" => {
                    g.invalid_numbers = InvalidNumbers::Allow
                }
                Some(Value::String(s)) if s.as_bytes().as_ref() == b"off" => {
                    g.invalid_numbers = InvalidNumbers::Refuse
                }
                Some(_) => {
                    return Err(args::arg_error(
                        lua,
                        1,
                        "encode_invalid_numbers",
                        "invalid option (expected: boolean or 'null')",
                    ));
                }
            }
            Ok(match g.invalid_numbers {
                InvalidNumbers::Allow => Value::Boolean(true),
                InvalidNumbers::Refuse => Value::Boolean(false),
                InvalidNumbers::Null => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode_invalid_numbers",
        lua.create_function(move |lua, a: MultiValue| {
            let v = bool_setting(lua, &a, 1, "decode_invalid_numbers")?;
            let mut g = c.lock();
            if let Some(v) = v {
                g.decode_invalid_numbers = v;
            }
            Ok(g.decode_invalid_numbers)
        })?,
    )?;
    t.raw_set(
        "new",
        lua.create_function(|lua, ()| build(lua, Arc::new(Mutex::new(Config::default()))))?,
    )?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    t.raw_set(
        "null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals().set("cjson", open(&lua).unwrap()).unwrap();
        lua
    }

    fn enc(lua: &Lua, expr: &str) -> String {
        let s: mlua::LuaString = lua
            .load(format!("return cjson.encode({expr})"))
            .eval()
            .unwrap();
        String::from_utf8(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn encodes_like_lua_cjson() {
        let lua = lua();
        assert_eq!(enc(&lua, "{}"), "{}");
        assert_eq!(enc(&lua, "{1, 2, 'a'}"), "[1,2,\"a\"]");
        assert_eq!(enc(&lua, "{a = 1}"), "{\"a\":1}");
        assert_eq!(enc(&lua, "0.1"), "0.1");
        assert_eq!(enc(&lua, "1/3"), "0.33333333333333");
        assert_eq!(enc(&lua, "1e20"), "1e+20");
        assert_eq!(enc(&lua, "'a/b\"c\\n'"), "\"a\\/b\\\"c\\n\"");
        assert_eq!(enc(&lua, "cjson.null"), "null");
        assert_eq!(enc(&lua, "{[1] = 1, [3] = 3}"), "[1,null,3]");
        assert_eq!(enc(&lua, "{[2.5] = 1}"), "{\"2.5\":1}");
        let e = lua
            .load("return cjson.encode({[20] = 1})")
            .eval::<mlua::LuaString>()
            .unwrap_err();
        assert!(e.to_string().contains("excessively sparse array"), "{e}");
        let e = lua
            .load("return cjson.encode(1/0)")
            .eval::<mlua::LuaString>()
            .unwrap_err();
        assert!(e.to_string().contains("must not be NaN or Inf"), "{e}");
    }

    #[test]
    fn decodes_like_lua_cjson() {
        let lua = lua();
        let v: Vec<f64> = lua
            .load("local t = cjson.decode('[1, 2.5, -3e2]') return t")
            .eval()
            .unwrap();
        assert_eq!(v, vec![1.0, 2.5, -300.0]);
        let s: String = lua
            .load("return cjson.decode('{\"a\":\"\\\\u00e9\\\\ud83d\\\\ude00\"}').a")
            .eval()
            .unwrap();
        assert_eq!(s, "é😀");
        let b: bool = lua
            .load("return cjson.decode('null') == cjson.null")
            .eval()
            .unwrap();
        assert!(b);
        for (input, msg) in [
            ("''", "Expected value but found T_END at character 1"),
            (
                "'x'",
                "Expected value but found invalid token at character 1",
            ),
            (
                "'[1 2]'",
                "Expected comma or array end but found T_NUMBER at character 4",
            ),
            (
                "'{1:2}'",
                "Expected object key string but found T_NUMBER at character 2",
            ),
            (
                "'[1] x'",
                "Expected the end but found invalid token at character 5",
            ),
            ("'\"abc'", "unexpected end of string"),
        ] {
            let e = lua
                .load(format!("return cjson.decode({input})"))
                .eval::<Value>()
                .unwrap_err();
            assert!(e.to_string().contains(msg), "{input}: {e}");
        }
    }

    #[test]
    fn depth_limits() {
        // The server's workers have room for this recursion; a test thread needs it too.
        std::thread::Builder::new()
            .stack_size(crate::WORKER_STACK_BYTES)
            .spawn(depth_limits_body)
            .expect("spawn")
            .join()
            .expect("depth limits");
    }

    fn depth_limits_body() {
        let lua = lua();
        let deep = "[".repeat(1001);
        let e = lua
            .load(format!("return cjson.decode('{deep}')"))
            .eval::<Value>()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("Found too many nested data structures (1001) at character 1001"),
            "{e}"
        );
        let n: f64 = lua.load("return cjson.encode_max_depth(2)").eval().unwrap();
        assert_eq!(n, 2.0);
        let e = lua
            .load("return cjson.encode({{{1}}})")
            .eval::<mlua::LuaString>()
            .unwrap_err();
        assert!(e.to_string().contains("excessive nesting (3)"), "{e}");
    }
}
