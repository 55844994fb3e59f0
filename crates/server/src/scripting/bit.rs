//! The `bit` library (LuaBitOp 1.0 semantics) that Redis bundles: 32-bit operations on
//! Lua numbers, results as signed 32-bit numbers.

use super::args;
use mlua::{Lua, MultiValue, Table, Value};

/// Normalizes a Lua number to a 32-bit integer as LuaBitOp does (round to nearest, then
/// keep the low 32 bits).
pub fn tobit(x: f64) -> i32 {
    // Adding 2^52 + 2^51 moves the integer part into the low mantissa bits.
    (x + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

fn arg(lua: &Lua, a: &MultiValue, n: usize, f: &str) -> mlua::Result<i32> {
    Ok(tobit(args::number(lua, a, n, f)?))
}

fn num(x: i32) -> Value {
    Value::Number(f64::from(x))
}

/// `bit.tohex(x [, n])`.
pub fn tohex(x: i32, n: i64) -> String {
    let (upper, mut n) = if n < 0 { (true, -n) } else { (false, n) };
    if n > 8 {
        n = 8;
    }
    let n = n as u32;
    let mut b = x as u32;
    if n < 8 {
        b &= (1u32 << (4 * n)).wrapping_sub(1);
    }
    let s = if upper {
        format!("{b:08X}")
    } else {
        format!("{b:08x}")
    };
    s[8 - n as usize..].to_string()
}

/// Builds the `bit` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "tobit",
        lua.create_function(|lua, a: MultiValue| Ok(num(arg(lua, &a, 1, "tobit")?)))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|lua, a: MultiValue| Ok(num(!arg(lua, &a, 1, "bnot")?)))?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|lua, a: MultiValue| Ok(num(arg(lua, &a, 1, "bswap")?.swap_bytes())))?,
    )?;
    type Fold = fn(i32, i32) -> i32;
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        t.raw_set(
            name,
            lua.create_function(move |lua, a: MultiValue| {
                let mut acc = arg(lua, &a, 1, name)?;
                for i in 2..=a.len() {
                    acc = op(acc, arg(lua, &a, i, name)?);
                }
                Ok(num(acc))
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |x, n| ((x as u32) << n) as i32),
        ("rshift", |x, n| ((x as u32) >> n) as i32),
        ("arshift", |x, n| x >> n),
        ("rol", |x, n| (x as u32).rotate_left(n) as i32),
        ("ror", |x, n| (x as u32).rotate_right(n) as i32),
    ];
    for (name, op) in shifts {
        t.raw_set(
            name,
            lua.create_function(move |lua, a: MultiValue| {
                let x = arg(lua, &a, 1, name)?;
                let n = arg(lua, &a, 2, name)? as u32 & 31;
                Ok(num(op(x, n)))
            })?,
        )?;
    }
    t.raw_set(
        "tohex",
        lua.create_function(|lua, a: MultiValue| {
            let x = arg(lua, &a, 1, "tohex")?;
            let n = match a.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => i64::from(arg(lua, &a, 2, "tohex")?),
            };
            lua.create_string(tohex(x, n))
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tobit_wraps_and_rounds() {
        assert_eq!(tobit(0xffff_ffff_u32 as f64), -1);
        assert_eq!(tobit(4_294_967_296.0 + 5.0), 5);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(2.5), 2);
        assert_eq!(tobit(3.5), 4);
    }

    #[test]
    fn tohex_widths() {
        assert_eq!(tohex(1, 8), "00000001");
        assert_eq!(tohex(-1, 8), "ffffffff");
        assert_eq!(tohex(255, -2), "FF");
        assert_eq!(tohex(0x1234_5678, 4), "5678");
        assert_eq!(tohex(1, 20), "00000001");
    }

    #[test]
    fn library_computes_like_luabitop() {
        let lua = Lua::new();
        lua.globals().set("bit", open(&lua).unwrap()).unwrap();
        let r: Vec<f64> = lua
            .load("return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(3, 1), bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(0x80000000, 1), bit.bnot(0), bit.bswap(0x12345678)}")
            .eval()
            .unwrap();
        assert_eq!(
            r,
            vec![
                15.0,
                7.0,
                2.0,
                -2147483648.0,
                15.0,
                -16.0,
                1.0,
                -1.0,
                2018915346.0
            ]
        );
    }
}
