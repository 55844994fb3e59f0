//! The HyperLogLog family: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST.
//!
//! A HyperLogLog is a string value in Redis's `HYLL` format (`basalt_engine::hll`), so
//! GET returns the same bytes as Redis for the same inputs and a value copied from Redis
//! with SET works here. Semantics, reply shapes and error strings follow Redis 7.0's
//! hyperloglog.c: PFCOUNT of one key refreshes the cached cardinality in the header (a
//! write to a "read-only" command, as in Redis), a string that is not a HyperLogLog
//! answers `WRONGTYPE Key is not a valid HyperLogLog string value.`, and a HyperLogLog
//! whose sparse opcodes do not add up answers `INVALIDOBJ Corrupted HLL object detected`.
//! `hll-sparse-max-bytes` is Redis's default, 3000 (`hll::SPARSE_MAX_BYTES`): Basalt has
//! no such directive yet.

use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::hll::{self, REGISTERS};
use basalt_engine::{EntryMut, Guard, StrRef, StrValue, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;

const RO_ACCESS: &[&str] = &["RO", "access"];

/// A string that is not a HyperLogLog.
pub const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
/// A HyperLogLog whose registers cannot be decoded.
pub const CORRUPTED: &str = "INVALIDOBJ Corrupted HLL object detected";

macro_rules! hll_cmd {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $specs:expr, $summary:literal, $cx:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::HYPERLOGLOG,
            keys: $keys,
            key_specs: $specs,
            group: "hyperloglog",
            since: "2.8.9",
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

/// The HyperLogLog family's commands.
pub const COMMANDS: &[Command] = &[
    hll_cmd!(
        "pfadd",
        -2,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "insert"])],
        "Adds the specified elements to the specified HyperLogLog.",
        "O(1) to add every element.",
        pfadd
    ),
    hll_cmd!(
        "pfcount",
        -2,
        READONLY,
        (1, -1, 1),
        &[KeySpec::rest(1, 1, &["RW", "access"])],
        "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).",
        "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.",
        pfcount
    ),
    hll_cmd!(
        "pfmerge",
        -2,
        WRITE | DENYOOM,
        (1, -1, 1),
        &[
            KeySpec::single(1, &["RW", "access", "insert"]),
            KeySpec::rest(2, 1, RO_ACCESS)
        ],
        "Merge N different HyperLogLogs into a single one.",
        "O(N) to merge N HyperLogLogs, but with high constant times.",
        pfmerge
    ),
    hll_cmd!(
        "pfdebug",
        3,
        WRITE | DENYOOM | ADMIN,
        (2, 2, 1),
        &[KeySpec::single(2, &["RW", "access"])],
        "Internal commands for debugging HyperLogLog values",
        "N/A",
        pfdebug
    ),
    hll_cmd!(
        "pfselftest",
        1,
        ADMIN,
        (0, 0, 0),
        &[],
        "An internal command for testing HyperLogLog values",
        "N/A",
        pfselftest
    ),
];

/// Redis's isHLLObjectOrReply: WRONGTYPE for other types, NOT_HLL for strings that are
/// integer-encoded, too short, lack the magic, have an unknown encoding or a dense size
/// other than 12304 bytes.
fn check_hll(v: ValueRef<'_>) -> Result<(), Error> {
    match v {
        ValueRef::Str(StrRef::Int(_)) => Err(Error::msg(NOT_HLL)),
        ValueRef::Str(s) if s.stored_bytes().is_some_and(hll::is_valid) => Ok(()),
        ValueRef::Str(_) => Err(Error::msg(NOT_HLL)),
        _ => Err(Error::msg(error::WRONGTYPE)),
    }
}

/// The HLL's buffer, made `raw` (Redis's dbUnshareStringValue), after checking it.
fn hll_mut(e: EntryMut<'_>) -> Result<&mut Vec<u8>, Error> {
    check_hll(e.value())?;
    e.into_raw_mut().ok_or_else(|| Error::msg(error::WRONGTYPE))
}

/// The existing (checked) HLL under `key`, or a new empty one stored there. Returns the
/// buffer and whether it was created.
fn hll_for_write<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<(&'g mut Vec<u8>, bool), Error> {
    let created = match g.get(db, key) {
        Some(e) => {
            hll_mut(e)?;
            false
        }
        None => {
            g.insert(db, key, Value::Str(StrValue::Raw(hll::new_sparse())), 0);
            true
        }
    };
    match g.get(db, key) {
        Some(e) => Ok((hll_mut(e)?, created)),
        // Stored just above under the same lock.
        None => Err(Error::msg(CORRUPTED)),
    }
}

fn pfadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let (s, created) = hll_for_write(&mut g, db, &args[1])?;
    // Redis counts the creation and every element that changed a register.
    let mut updated = u64::from(created);
    for ele in &args[2..] {
        // As in Redis, registers set before a corruption is found stay set.
        match hll::add(s, ele, hll::SPARSE_MAX_BYTES) {
            Ok(changed) => updated += u64::from(changed),
            Err(hll::Corrupt) => return Err(Error::msg(CORRUPTED)),
        }
    }
    if updated > 0 {
        hll::invalidate_cache(s);
        ctx.notify(ev::STRING, "pfadd", &args[1]);
    }
    ctx.changed(updated);
    Ok(Frame::Integer(i64::from(updated > 0)))
}

fn pfcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if args.len() > 2 {
        // The cardinality of the union; cached values are not used.
        let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
        let mut max = Box::new([0u8; REGISTERS]);
        for key in &args[1..] {
            let Some(e) = g.lookup_read(db, key) else {
                continue;
            };
            check_hll(e.value())?;
            if let ValueRef::Str(s) = e.value() {
                hll::merge_into(&mut max, &s.as_bytes()).map_err(|_| Error::msg(CORRUPTED))?;
            }
        }
        return Ok(Frame::Integer(hll::count_registers(&max) as i64));
    }
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(e) = g.lookup_read_mut(db, &args[1]) else {
        return Ok(Frame::Integer(0));
    };
    let s = hll_mut(e)?;
    if let Some(card) = hll::cached_card(s) {
        return Ok(Frame::Integer(card as i64));
    }
    let card = hll::count(s).map_err(|_| Error::msg(CORRUPTED))?;
    hll::set_cached_card(s, card);
    // Refreshing the cached cardinality changes the stored bytes: Redis signals the key
    // as modified (WATCH), without a keyspace event.
    drop(g);
    ctx.modified(&args[1]);
    Ok(Frame::Integer(card as i64))
}

fn pfmerge(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    let mut max = Box::new([0u8; REGISTERS]);
    let mut use_dense = false;
    // The destination is a source too.
    for key in &args[1..] {
        let Some(e) = g.lookup_read(db, key) else {
            continue;
        };
        check_hll(e.value())?;
        if let ValueRef::Str(s) = e.value() {
            let bytes = s.as_bytes();
            use_dense |= !hll::is_sparse(&bytes);
            hll::merge_into(&mut max, &bytes).map_err(|_| Error::msg(CORRUPTED))?;
        }
    }
    let (s, _) = hll_for_write(&mut g, db, &args[1])?;
    if use_dense {
        hll::to_dense(s).map_err(|_| Error::msg(CORRUPTED))?;
    }
    for (i, &m) in max.iter().enumerate() {
        // Registers are raised in index order, as Redis does, so a sparse result has
        // the same bytes. The destination was validated as a source: errors cannot
        // happen here, and Redis ignores them as well.
        if m != 0 {
            let _ = hll::set_register(s, i, m, hll::SPARSE_MAX_BYTES);
        }
    }
    hll::invalidate_cache(s);
    ctx.notify(ev::STRING, "pfadd", &args[1]);
    Ok(Frame::ok())
}

fn pfdebug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    let Some(e) = g.get(db, &args[2]) else {
        return Err(Error::msg("ERR The specified key does not exist"));
    };
    let s = hll_mut(e)?;
    // Redis compares the subcommand with strcasecmp: it ends at a NUL byte.
    let sub = &args[1];
    let sub = match memchr::memchr(0, sub) {
        Some(i) => &sub[..i],
        None => &sub[..],
    };
    let is = |kw: &str| sub.eq_ignore_ascii_case(kw.as_bytes());
    if is("getreg") {
        hll::to_dense(s).map_err(|_| Error::msg(CORRUPTED))?;
        let regs = hll::dense_registers(s);
        Ok(Frame::Array(
            regs.into_iter()
                .map(|r| Frame::Integer(i64::from(r)))
                .collect(),
        ))
    } else if is("decode") {
        match hll::decode_sparse(s) {
            Some(text) => Ok(Frame::Bulk(Bytes::from(text))),
            None => Err(Error::msg("ERR HLL encoding is not sparse")),
        }
    } else if is("encoding") {
        Ok(Frame::simple(if hll::is_sparse(s) {
            "sparse"
        } else {
            "dense"
        }))
    } else if is("todense") {
        let converted = hll::to_dense(s).map_err(|_| Error::msg(CORRUPTED))?;
        Ok(Frame::Integer(i64::from(converted)))
    } else {
        Err(Error::msg(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub).replace(['\r', '\n'], " ")
        )))
    }
}

fn pfselftest(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    match hll::self_test() {
        Ok(()) => Ok(Frame::ok()),
        Err(msg) => Err(Error::msg(msg)),
    }
}
