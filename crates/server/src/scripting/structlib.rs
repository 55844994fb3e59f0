//! The `struct` library Redis bundles (Roberto Ierusalimschy's struct.c semantics):
//! `struct.pack(fmt, ...)`, `struct.unpack(fmt, data [, pos])`, `struct.size(fmt)`.
//!
//! Formats: `>`/`<` endianness, `![n]` alignment, `x` pad byte, `b/B h/H l/L T i[n]/I[n]`
//! integers (`l`, `L` and `T` are 8 bytes, `i` defaults to 4, at most 32), `c[n]` fixed
//! strings (`c0`: whole string / previous number), `s` zero-terminated string, `f`/`d`
//! floats, spaces ignored.

use super::{args, error};
use mlua::{Lua, MultiValue, Table, Value};

/// Largest integral size.
const MAX_INT_SIZE: usize = 32;
/// Largest alignment.
const MAX_ALIGN: usize = 8;

struct Header {
    little: bool,
    align: usize,
}

struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.i).copied();
        self.i += 1;
        c
    }

    fn num(&mut self, lua: &Lua, default: usize) -> mlua::Result<usize> {
        if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(&c) = self.s.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = usize::from(c - b'0');
            if a > (i32::MAX as usize) / 10 || a * 10 > (i32::MAX as usize) - d {
                return Err(error::string(lua, "integral size overflow"));
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a)
    }
}

fn opt_size(lua: &Lua, opt: u8, f: &mut Fmt<'_>) -> mlua::Result<usize> {
    Ok(match opt {
        b'B' | b'b' | b'x' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'c' => f.num(lua, 1)?,
        b'i' | b'I' => {
            let sz = f.num(lua, 4)?;
            if sz > MAX_INT_SIZE {
                return Err(error::string(
                    lua,
                    &format!("integral size {sz} is larger than limit of {MAX_INT_SIZE}"),
                ));
            }
            sz
        }
        _ => 0,
    })
}

fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

fn control(lua: &Lua, opt: u8, f: &mut Fmt<'_>, h: &mut Header, fname: &str) -> mlua::Result<()> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = f.num(lua, MAX_ALIGN)?;
            if !a.is_power_of_two() {
                return Err(error::string(
                    lua,
                    &format!("alignment {a} is not a power of 2"),
                ));
            }
            h.align = a;
        }
        other => {
            return Err(args::arg_error(
                lua,
                1,
                fname,
                &format!("invalid format option '{}'", char::from(other)),
            ));
        }
    }
    Ok(())
}

fn put_int(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value: u64 = if n < 0.0 {
        super::number::truncate(n) as u64
    } else if n >= 18_446_744_073_709_551_616.0 || n.is_nan() {
        0
    } else {
        n as u64
    };
    let mut buf = vec![0u8; size];
    for b in buf.iter_mut() {
        *b = (value & 0xff) as u8;
        value >>= 8;
    }
    if !little {
        buf.reverse();
    }
    out.extend_from_slice(&buf);
}

fn get_int(data: &[u8], little: bool, signed: bool, size: usize) -> f64 {
    let mut v: u64 = 0;
    for i in 0..size {
        let b = if little { data[size - 1 - i] } else { data[i] };
        v = v.wrapping_shl(8) | u64::from(b);
    }
    if signed && size <= 8 && size > 0 {
        let mask = 1u64 << (size * 8 - 1);
        (((v ^ mask).wrapping_sub(mask)) as i64) as f64
    } else {
        v as f64
    }
}

/// `luaL_checknumber` as struct.pack sees its arguments: a missing one is nil (the
/// library reads past the end of a stack it has grown).
fn pack_number(lua: &Lua, a: &MultiValue, n: usize) -> mlua::Result<f64> {
    match a.get(n - 1) {
        None => Err(args::arg_error(lua, n, "pack", "number expected, got nil")),
        Some(_) => args::number(lua, a, n, "pack"),
    }
}

fn pack(lua: &Lua, a: MultiValue) -> mlua::Result<mlua::LuaString> {
    let fmt = args::bytes(lua, &a, 1, "pack")?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header {
        little: true,
        align: 1,
    };
    let mut arg = 2;
    let mut out = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = opt_size(lua, opt, &mut f)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = pack_number(lua, &a, arg)?;
                arg += 1;
                put_int(&mut out, n, h.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = pack_number(lua, &a, arg)? as f32;
                arg += 1;
                let b = if h.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'd' => {
                let n = pack_number(lua, &a, arg)?;
                arg += 1;
                let b = if h.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'c' | b's' => {
                let s = args::bytes(lua, &a, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // struct.c names the argument after the string (its `arg++`).
                    return Err(args::arg_error(lua, arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            other => control(lua, other, &mut f, &mut h, "pack")?,
        }
    }
    lua.create_string(&out)
}

fn unpack(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let fmt = args::bytes(lua, &a, 1, "unpack")?;
    let data = args::bytes(lua, &a, 2, "unpack")?;
    let ld = data.len();
    let start = args::opt_number(lua, &a, 3, "unpack", 1.0)?;
    let start = super::number::truncate(start);
    if start < 1 {
        return Err(args::arg_error(
            lua,
            3,
            "unpack",
            "offset must be 1 or greater",
        ));
    }
    let mut pos = (start - 1) as usize;
    if pos > ld {
        return Err(args::arg_error(
            lua,
            3,
            "unpack",
            "offset must be 1 or greater",
        ));
    }
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header {
        little: true,
        align: 1,
    };
    let mut out: Vec<Value> = Vec::new();
    let too_short = |lua: &Lua| args::arg_error(lua, 2, "unpack", "data string too short");
    while let Some(opt) = f.next() {
        let mut size = opt_size(lua, opt, &mut f)?;
        pos += to_align(pos, &h, opt, size);
        if size > ld || pos > ld - size {
            return Err(too_short(lua));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                out.push(Value::Number(get_int(
                    &data[pos..pos + size],
                    h.little,
                    signed,
                    size,
                )));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let prev = out.pop().and_then(|v| args::to_number(&v));
                    let Some(n) = prev else {
                        return Err(error::string(lua, "format 'c0' needs a previous size"));
                    };
                    size = n.max(0.0) as usize;
                    if size > ld || pos > ld - size {
                        return Err(too_short(lua));
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = memchr::memchr(0, &data[pos..]) else {
                    return Err(error::string(lua, "unfinished string in data"));
                };
                size = end + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + end])?));
            }
            other => control(lua, other, &mut f, &mut h, "unpack")?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_vec(out))
}

fn size(lua: &Lua, a: MultiValue) -> mlua::Result<f64> {
    let fmt = args::bytes(lua, &a, 1, "size")?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header {
        little: true,
        align: 1,
    };
    let mut total = 0usize;
    while let Some(opt) = f.next() {
        let size = opt_size(lua, opt, &mut f)?;
        total += to_align(total, &h, opt, size);
        if opt == b's' {
            return Err(args::arg_error(
                lua,
                1,
                "size",
                "option 's' has no fixed size",
            ));
        } else if opt == b'c' && size == 0 {
            return Err(args::arg_error(
                lua,
                1,
                "size",
                "option 'c0' has no fixed size",
            ));
        }
        if !matches!(
            opt,
            b'b' | b'B'
                | b'h'
                | b'H'
                | b'l'
                | b'L'
                | b'T'
                | b'i'
                | b'I'
                | b'x'
                | b'f'
                | b'd'
                | b'c'
        ) {
            control(lua, opt, &mut f, &mut h, "size")?;
        }
        total += size;
    }
    Ok(total as f64)
}

/// Builds the `struct` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(pack)?)?;
    t.raw_set("unpack", lua.create_function(unpack)?)?;
    t.raw_set("size", lua.create_function(size)?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals().set("struct", open(&lua).unwrap()).unwrap();
        lua
    }

    #[test]
    fn pack_unpack_round_trip() {
        let lua = lua();
        let s: mlua::LuaString = lua
            .load("return struct.pack('>iHbs', -2, 513, 7, 'ab')")
            .eval()
            .unwrap();
        assert_eq!(
            s.as_bytes().to_vec(),
            vec![0xff, 0xff, 0xff, 0xfe, 2, 1, 7, b'a', b'b', 0]
        );
        let v: Vec<f64> = lua
            .load("local a, b, c, s, n = struct.unpack('>iHbs', struct.pack('>iHbs', -2, 513, 7, 'ab')) return {a, b, c, #s, n}")
            .eval()
            .unwrap();
        assert_eq!(v, vec![-2.0, 513.0, 7.0, 2.0, 11.0]);
    }

    #[test]
    fn alignment_and_size() {
        let lua = lua();
        let n: f64 = lua.load("return struct.size('!4bi')").eval().unwrap();
        assert_eq!(n, 8.0);
        let n: f64 = lua.load("return struct.size('bi')").eval().unwrap();
        assert_eq!(n, 5.0);
        let e = lua.load("return struct.size('s')").eval::<f64>();
        assert!(e.is_err());
    }

    #[test]
    fn errors_name_the_problem() {
        let lua = lua();
        let e = lua
            .load("return struct.unpack('i', 'ab')")
            .eval::<f64>()
            .unwrap_err();
        assert!(e.to_string().contains("data string too short"), "{e}");
        let e = lua
            .load("return struct.pack('q', 1)")
            .eval::<mlua::LuaString>()
            .unwrap_err();
        assert!(e.to_string().contains("invalid format option 'q'"), "{e}");
    }
}
