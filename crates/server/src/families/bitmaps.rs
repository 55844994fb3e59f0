//! The bitmap family: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO.
//!
//! Bitmaps are string values read as bit arrays (`Value::Str`); a string a bit command
//! modifies becomes `raw`, as Redis's dbUnshareStringValue makes it. Semantics, reply
//! shapes and error strings follow Redis 7.0's bitops.c, including the order in which it
//! checks things: BITCOUNT looks the key up before parsing its range (a missing key
//! answers 0 whatever the arguments), BITPOS parses the bit first, BITFIELD parses every
//! operation before touching the key. Offsets are limited by `proto-max-bulk-len` as in
//! Redis. The bit arithmetic lives in `basalt_engine::bitops`.

use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::bitops::{self, BitOp, Overflow, Unit};
use basalt_engine::num::parse_i64;
use basalt_engine::{Guard, StrValue, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;
use std::borrow::Cow;

const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];

const BIT_OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";
const BIT_VALUE_ERR: &str = "ERR bit is not an integer or out of range";
const BITFIELD_TYPE_ERR: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

macro_rules! bit_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::BITMAP, "bitmap"; $($t)*)
    };
}

/// The bitmap family's commands.
pub const COMMANDS: &[Command] = &[
    bit_cmd!(
        "setbit",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "2.2.0",
        "Sets or clears the bit at offset in the string value stored at key",
        "O(1)",
        setbit
    ),
    bit_cmd!(
        "getbit",
        3,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "2.2.0",
        "Returns the bit value at offset in the string value stored at key",
        "O(1)",
        getbit
    ),
    bit_cmd!(
        "bitcount",
        -2,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "2.6.0",
        "Count set bits in a string",
        "O(N)",
        bitcount
    ),
    bit_cmd!(
        "bitpos",
        -3,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "2.8.7",
        "Find first bit set or clear in a string",
        "O(N)",
        bitpos
    ),
    bit_cmd!(
        "bitop",
        -4,
        WRITE | DENYOOM,
        (2, -1, 1),
        &[
            KeySpec::single(2, &["OW", "update"]),
            KeySpec::rest(3, 1, RO_ACCESS)
        ],
        "2.6.0",
        "Perform bitwise operations between strings",
        "O(N)",
        bitop
    ),
    bit_cmd!(
        "bitfield",
        -2,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(
            1,
            &["RW", "access", "update", "variable_flags"]
        )],
        "3.2.0",
        "Perform arbitrary bitfield integer operations on strings",
        "O(1) for each subcommand specified",
        bitfield
    ),
    bit_cmd!(
        "bitfield_ro",
        -2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "6.0.0",
        "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
        "O(1) for each subcommand specified",
        bitfield_ro
    ),
];

/// The argument as C's string functions see it: up to the first NUL byte (Redis compares
/// keywords with `strcasecmp`).
fn cstr(arg: &[u8]) -> &[u8] {
    match memchr::memchr(0, arg) {
        Some(i) => &arg[..i],
        None => arg,
    }
}

/// Case-insensitive keyword comparison with `strcasecmp` semantics.
fn cis(arg: &[u8], keyword: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(keyword.as_bytes())
}

fn max_bulk_len(ctx: &Ctx<'_>) -> u64 {
    ctx.srv
        .live
        .max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Parses a bit offset as Redis's getBitOffsetFromArgument: a canonical integer, or with
/// `hash_bits > 0` also `#N` meaning `N * hash_bits`; never negative, and its byte must
/// lie below `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], hash_bits: u32) -> Result<u64, Error> {
    let use_hash = hash_bits > 0 && arg.first() == Some(&b'#');
    let digits = if use_hash { &arg[1..] } else { arg };
    let mut v = parse_i64(digits).ok_or_else(|| Error::msg(BIT_OFFSET_ERR))?;
    if use_hash {
        // Redis multiplies in C's signed arithmetic: an overflow wraps (and a negative
        // result is then refused below).
        v = v.wrapping_mul(i64::from(hash_bits));
    }
    if v < 0 || (v as u64 >> 3) >= max_bulk_len(ctx) {
        return Err(Error::msg(BIT_OFFSET_ERR));
    }
    Ok(v as u64)
}

/// A string value's bytes for reading, `None` if the key is missing, WRONGTYPE if it
/// holds another type. Counts a keyspace hit or miss (Redis's lookupKeyRead).
fn read_str<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<Cow<'g, [u8]>>, Error> {
    match g.lookup_read(db, key) {
        None => Ok(None),
        Some(e) => match e.into_value() {
            ValueRef::Str(s) => Ok(Some(s.as_bytes())),
            _ => Err(Error::msg(error::WRONGTYPE)),
        },
    }
}

/// Redis's lookupStringForBitCommand: the key's string as a `raw` buffer at least
/// `bytes` long (created zero-filled if missing, grown with zeros if short). Returns the
/// buffer and whether it was created or grown.
fn string_for_write<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
    bytes: usize,
) -> Result<(&'g mut Vec<u8>, bool), Error> {
    let dirty = match g.get(db, key) {
        None => {
            g.insert(db, key, Value::Str(StrValue::Raw(vec![0u8; bytes])), 0);
            true
        }
        Some(e) => match e.into_raw_mut() {
            Some(raw) => {
                if raw.len() < bytes {
                    raw.resize(bytes, 0);
                    true
                } else {
                    false
                }
            }
            _ => return Err(Error::msg(error::WRONGTYPE)),
        },
    };
    match g.get(db, key).and_then(|e| e.into_raw_mut()) {
        Some(raw) => Ok((raw, dirty)),
        // The key was stored just above under the same lock.
        _ => Err(Error::msg(error::WRONGTYPE)),
    }
}

fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &args[2], 0)?;
    let on = parse_i64(&args[3]).ok_or_else(|| Error::msg(BIT_VALUE_ERR))?;
    if on & !1 != 0 {
        return Err(Error::msg(BIT_VALUE_ERR));
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let (buf, dirty) = string_for_write(&mut g, db, &args[1], (offset >> 3) as usize + 1)?;
    let old = bitops::set_bit(buf, offset, on == 1);
    if dirty || old != (on == 1) {
        ctx.notify(ev::STRING, "setbit", &args[1]);
    }
    Ok(Frame::Integer(i64::from(old)))
}

fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &args[2], 0)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let bit = match read_str(&mut g, db, &args[1])? {
        None => false,
        Some(s) => bitops::get_bit(&s, offset),
    };
    Ok(Frame::Integer(i64::from(bit)))
}

/// Parses `BYTE|BIT` (anything else is a syntax error).
fn unit(arg: &[u8]) -> Result<Unit, Error> {
    if cis(arg, "bit") {
        Ok(Unit::Bit)
    } else if cis(arg, "byte") {
        Ok(Unit::Byte)
    } else {
        Err(Error::msg(error::SYNTAX))
    }
}

fn int(arg: &[u8]) -> Result<i64, Error> {
    parse_i64(arg).ok_or_else(|| Error::msg(error::NOT_INTEGER))
}

fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    // Redis 7.0 looks the key up before it parses the range.
    let Some(s) = read_str(&mut g, db, &args[1])? else {
        return Ok(Frame::Integer(0));
    };
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let start = int(&args[2])?;
            let end = int(&args[3])?;
            // Redis 7.0 answers an inverted negative range before it reads the unit.
            if start < 0 && end < 0 && start > end {
                return Ok(Frame::Integer(0));
            }
            let u = match args.get(4) {
                Some(a) => unit(a)?,
                None => Unit::Byte,
            };
            Some((start, end, u))
        }
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    Ok(Frame::Integer(bitops::bitcount(&s, range) as i64))
}

fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let bit = int(&args[2])?;
    if bit != 0 && bit != 1 {
        return Err(Error::msg("ERR The bit argument must be 1 or 0."));
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    // A missing key is an infinite run of clear bits.
    let Some(s) = read_str(&mut g, db, &args[1])? else {
        return Ok(Frame::Integer(if bit == 1 { -1 } else { 0 }));
    };
    let (start, end, u) = match args.len() {
        3 => (None, None, Unit::Byte),
        4..=6 => {
            let start = int(&args[3])?;
            let u = match args.get(5) {
                Some(a) => unit(a)?,
                None => Unit::Byte,
            };
            let end = match args.get(4) {
                Some(a) => Some(int(a)?),
                None => None,
            };
            (Some(start), end, u)
        }
        _ => return Err(Error::msg(error::SYNTAX)),
    };
    Ok(Frame::Integer(bitops::bitpos(&s, bit == 1, start, end, u)))
}

fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = &args[1];
    let op = if cis(name, "and") {
        BitOp::And
    } else if cis(name, "or") {
        BitOp::Or
    } else if cis(name, "xor") {
        BitOp::Xor
    } else if cis(name, "not") {
        BitOp::Not
    } else {
        return Err(Error::msg(error::SYNTAX));
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err(Error::msg(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let db = ctx.client.db;
    let dest = &args[2];
    let mut g = ctx.srv.keyspace.lock_keys(&args[2..], ctx.now);
    let mut sources: Vec<Option<Vec<u8>>> = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        sources.push(read_str(&mut g, db, key)?.map(Cow::into_owned));
    }
    let refs: Vec<Option<&[u8]>> = sources.iter().map(|s| s.as_deref()).collect();
    let result = bitops::bitop(op, &refs);
    let len = result.len();
    if len > 0 {
        g.insert(db, dest, Value::Str(StrValue::Raw(result)), 0);
        ctx.notify(ev::STRING, "set", dest);
    } else if g.remove(db, dest).is_some() {
        ctx.notify(ev::GENERIC, "del", dest);
    }
    Ok(Frame::Integer(len as i64))
}

/// One parsed BITFIELD operation.
#[derive(Debug, Clone, Copy)]
struct FieldOp {
    kind: FieldKind,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Get,
    Set,
    Incrby,
}

/// Parses a field type: `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), Error> {
    let err = || Error::msg(BITFIELD_TYPE_ERR);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    // Redis reads the width with strlen, so it stops at a NUL byte.
    let bits = parse_i64(cstr(&arg[1..])).ok_or_else(err)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

fn parse_field_ops(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Vec<FieldOp>, Error> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let sub = &args[j];
        let kind = if cis(sub, "get") && remaining >= 2 {
            FieldKind::Get
        } else if cis(sub, "set") && remaining >= 3 {
            FieldKind::Set
        } else if cis(sub, "incrby") && remaining >= 3 {
            FieldKind::Incrby
        } else if cis(sub, "overflow") && remaining >= 1 {
            let t = &args[j + 1];
            overflow = if cis(t, "wrap") {
                Overflow::Wrap
            } else if cis(t, "sat") {
                Overflow::Sat
            } else if cis(t, "fail") {
                Overflow::Fail
            } else {
                return Err(Error::msg("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(Error::msg(error::SYNTAX));
        };
        let (signed, bits) = field_type(&args[j + 1])?;
        let offset = bit_offset(ctx, &args[j + 2], bits)?;
        let value = if kind == FieldKind::Get {
            0
        } else {
            int(&args[j + 3])?
        };
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        j += if kind == FieldKind::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// Applies a SET or INCRBY to the buffer; the reply is the old value (SET), the new
/// value (INCRBY), or null when OVERFLOW FAIL refused the write. With it, whether the
/// field's value changed (`None`: refused).
fn apply_write(buf: &mut [u8], op: &FieldOp) -> (Frame, Option<bool>) {
    let incr = op.kind == FieldKind::Incrby;
    if op.signed {
        let old = bitops::get_signed(buf, op.offset, op.bits);
        let (new, overflow, limit) = if incr {
            let (o, l) = bitops::signed_overflow(old, op.value, op.bits, op.overflow);
            (old.wrapping_add(op.value), o, l)
        } else {
            let (o, l) = bitops::signed_overflow(op.value, 0, op.bits, op.overflow);
            (op.value, o, l)
        };
        if overflow && op.overflow == Overflow::Fail {
            return (Frame::Null, None);
        }
        let new = if overflow { limit.unwrap_or(new) } else { new };
        bitops::set_field(buf, op.offset, op.bits, new as u64);
        (
            Frame::Integer(if incr { new } else { old }),
            Some(new != old),
        )
    } else {
        let old = bitops::get_unsigned(buf, op.offset, op.bits);
        let (new, overflow, limit) = if incr {
            let (o, l) = bitops::unsigned_overflow(old, op.value, op.bits, op.overflow);
            (old.wrapping_add(op.value as u64), o, l)
        } else {
            let v = op.value as u64;
            let (o, l) = bitops::unsigned_overflow(v, 0, op.bits, op.overflow);
            (v, o, l)
        };
        if overflow && op.overflow == Overflow::Fail {
            return (Frame::Null, None);
        }
        let new = if overflow { limit.unwrap_or(new) } else { new };
        bitops::set_field(buf, op.offset, op.bits, new);
        (
            Frame::Integer(if incr { new as i64 } else { old as i64 }),
            Some(new != old),
        )
    }
}

fn read_field(src: &[u8], op: &FieldOp) -> Frame {
    if op.signed {
        Frame::Integer(bitops::get_signed(src, op.offset, op.bits))
    } else {
        Frame::Integer(bitops::get_unsigned(src, op.offset, op.bits) as i64)
    }
}

fn bitfield_generic(ctx: &mut Ctx<'_>, args: &[Bytes], ro: bool) -> CmdResult {
    let ops = parse_field_ops(ctx, args)?;
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let writes = ops.iter().filter(|o| o.kind != FieldKind::Get);
    let Some(highest) = writes.map(|o| o.offset + u64::from(o.bits) - 1).max() else {
        // Only reads: a missing key reads as zeros.
        let src = read_str(&mut g, db, key)?;
        let src: &[u8] = src.as_deref().unwrap_or(&[]);
        return Ok(Frame::Array(
            ops.iter().map(|op| read_field(src, op)).collect(),
        ));
    };
    if ro {
        return Err(Error::msg(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let (buf, grown) = string_for_write(&mut g, db, key, (highest >> 3) as usize + 1)?;
    // As Redis 7.0: a write counts as a change if it was not refused by OVERFLOW FAIL
    // and it changed the field's value or the string was created or grown.
    let mut changes = 0u64;
    let replies = ops
        .iter()
        .map(|op| match op.kind {
            FieldKind::Get => read_field(buf, op),
            _ => {
                let (reply, changed) = apply_write(buf, op);
                if changed.is_some_and(|c| c || grown) {
                    changes += 1;
                }
                reply
            }
        })
        .collect();
    // The reply goes first; the key is signalled only if something changed.
    ctx.reply_here();
    if changes > 0 {
        ctx.notify(ev::STRING, "setbit", key);
    }
    ctx.changed(changes);
    Ok(Frame::Array(replies))
}

fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types() {
        assert_eq!(field_type(b"i64"), Ok((true, 64)));
        assert_eq!(field_type(b"u63"), Ok((false, 63)));
        assert!(field_type(b"U8").is_err());
        assert_eq!(field_type(b"i8\0junk"), Ok((true, 8)));
        assert!(field_type(b"u64").is_err());
        assert!(field_type(b"i0").is_err());
        assert!(field_type(b"i-1").is_err());
        assert!(field_type(b"x8").is_err());
        assert!(field_type(b"").is_err());
        assert!(field_type(b"i08").is_err());
    }

    #[test]
    fn keywords_stop_at_nul() {
        assert!(cis(b"GeT", "get"));
        assert!(cis(b"get\0x", "get"));
        assert!(!cis(b"gets", "get"));
    }

    #[test]
    fn writes_reply_like_redis() {
        let mut buf = vec![0u8; 2];
        let op = FieldOp {
            kind: FieldKind::Incrby,
            signed: false,
            bits: 2,
            offset: 100 % 8,
            value: 1,
            overflow: Overflow::Wrap,
        };
        assert_eq!(apply_write(&mut buf, &op), (Frame::Integer(1), Some(true)));
        assert_eq!(apply_write(&mut buf, &op), (Frame::Integer(2), Some(true)));
        assert_eq!(apply_write(&mut buf, &op), (Frame::Integer(3), Some(true)));
        assert_eq!(apply_write(&mut buf, &op), (Frame::Integer(0), Some(true)));
        let fail = FieldOp {
            overflow: Overflow::Fail,
            value: 4,
            ..op
        };
        assert_eq!(apply_write(&mut buf, &fail), (Frame::Null, None));
        let set = FieldOp {
            kind: FieldKind::Set,
            signed: true,
            bits: 8,
            offset: 0,
            value: -1,
            overflow: Overflow::Wrap,
        };
        assert_eq!(apply_write(&mut buf, &set), (Frame::Integer(0), Some(true)));
        assert_eq!(read_field(&buf, &set), Frame::Integer(-1));
        // Writing the value already there changes nothing (no change is counted).
        assert_eq!(
            apply_write(&mut buf, &set),
            (Frame::Integer(-1), Some(false))
        );
    }
}
