//! The hashes family: HSET, HGET and the other H* commands.
//!
//! Semantics, reply shapes (RESP2 and RESP3) and error strings follow Redis 7.0's
//! t_hash.c, including the order in which errors are checked: arguments that Redis
//! parses before looking the key up (HINCRBY's increment, HRANDFIELD's count, HSCAN's
//! cursor) fail before WRONGTYPE, options parsed afterwards (HSCAN's MATCH/COUNT) after
//! it. The storage and its two encodings live in `basalt_engine::types::hash`.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::glob::glob_match;
use basalt_engine::ldouble::{self, IncrFloatError, SoftF80};
use basalt_engine::types::HashValue;
use basalt_engine::{Guard, Value};
use basalt_proto::{Frame, Protocol};
use bytes::Bytes;

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];

pub use crate::rand::MAX_RANDOM_PICKS;

macro_rules! hash_cmd {
    ($name:literal, $arity:expr, $flags:expr, $spec:expr, $since:literal, $summary:literal, $cx:literal, $h:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::HASH,
            keys: (1, 1, 1),
            key_specs: &[KeySpec::single(1, $spec)],
            group: "hash",
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

/// The hashes family's commands.
pub const COMMANDS: &[Command] = &[
    hash_cmd!(
        "hset",
        -4,
        WRITE | DENYOOM | FAST,
        RW_UPDATE,
        "2.0.0",
        "Set the string value of a hash field",
        "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        hset
    ),
    hash_cmd!(
        "hsetnx",
        4,
        WRITE | DENYOOM | FAST,
        &["RW", "insert"],
        "2.0.0",
        "Set the value of a hash field, only if the field does not exist",
        "O(1)",
        hsetnx
    ),
    hash_cmd!(
        "hget",
        3,
        READONLY | FAST,
        RO_ACCESS,
        "2.0.0",
        "Get the value of a hash field",
        "O(1)",
        hget
    ),
    hash_cmd!(
        "hmget",
        -3,
        READONLY | FAST,
        RO_ACCESS,
        "2.0.0",
        "Get the values of all the given hash fields",
        "O(N) where N is the number of fields being requested.",
        hmget
    ),
    hash_cmd!(
        "hmset",
        -4,
        WRITE | DENYOOM | FAST,
        RW_UPDATE,
        "2.0.0",
        "Set multiple hash fields to multiple values",
        "O(N) where N is the number of fields being set.",
        hset
    ),
    hash_cmd!(
        "hdel",
        -3,
        WRITE | FAST,
        &["RW", "delete"],
        "2.0.0",
        "Delete one or more hash fields",
        "O(N) where N is the number of fields to be removed.",
        hdel
    ),
    hash_cmd!(
        "hlen",
        2,
        READONLY | FAST,
        RO,
        "2.0.0",
        "Get the number of fields in a hash",
        "O(1)",
        hlen
    ),
    hash_cmd!(
        "hstrlen",
        3,
        READONLY | FAST,
        RO,
        "3.2.0",
        "Get the length of the value of a hash field",
        "O(1)",
        hstrlen
    ),
    hash_cmd!(
        "hexists",
        3,
        READONLY | FAST,
        RO,
        "2.0.0",
        "Determine if a hash field exists",
        "O(1)",
        hexists
    ),
    Command {
        tips: &["nondeterministic_output_order"],
        ..hash_cmd!(
            "hkeys",
            2,
            READONLY,
            RO_ACCESS,
            "2.0.0",
            "Get all the fields in a hash",
            "O(N) where N is the size of the hash.",
            hkeys
        )
    },
    Command {
        tips: &["nondeterministic_output_order"],
        ..hash_cmd!(
            "hvals",
            2,
            READONLY,
            RO_ACCESS,
            "2.0.0",
            "Get all the values in a hash",
            "O(N) where N is the size of the hash.",
            hvals
        )
    },
    Command {
        tips: &["nondeterministic_output_order"],
        ..hash_cmd!(
            "hgetall",
            2,
            READONLY,
            RO_ACCESS,
            "2.0.0",
            "Get all the fields and values in a hash",
            "O(N) where N is the size of the hash.",
            hgetall
        )
    },
    hash_cmd!(
        "hincrby",
        4,
        WRITE | DENYOOM | FAST,
        RW_ACCESS_UPDATE,
        "2.0.0",
        "Increment the integer value of a hash field by the given number",
        "O(1)",
        hincrby
    ),
    hash_cmd!(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        RW_ACCESS_UPDATE,
        "2.6.0",
        "Increment the float value of a hash field by the given amount",
        "O(1)",
        hincrbyfloat
    ),
    Command {
        tips: &["nondeterministic_output"],
        ..hash_cmd!(
            "hrandfield",
            -2,
            READONLY,
            RO_ACCESS,
            "6.2.0",
            "Get one or multiple random fields from a hash",
            "O(N) where N is the number of fields returned",
            hrandfield
        )
    },
    Command {
        tips: &["nondeterministic_output"],
        ..hash_cmd!(
            "hscan",
            -3,
            READONLY,
            RO_ACCESS,
            "2.8.0",
            "Incrementally iterate hash fields and associated values",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..",
            hscan
        )
    },
];

/// The hash inside a value, or WRONGTYPE.
fn as_hash(v: Option<&mut Value>) -> Result<&mut HashValue, Error> {
    match v {
        Some(Value::Hash(h)) => Ok(h),
        _ => Err(Error::msg(error::WRONGTYPE)),
    }
}

/// Looks a hash up for reading (counts a keyspace hit or miss): `Ok(None)` if missing.
fn read_hash<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g HashValue>, Error> {
    match g.lookup_read(db, key).map(|e| e.into_value().as_other()) {
        None => Ok(None),
        Some(Some(Value::Hash(h))) => Ok(Some(h)),
        Some(_) => Err(Error::msg(error::WRONGTYPE)),
    }
}

/// Runs `f` on the hash at `key`, created empty if missing (Redis's
/// hashTypeLookupWriteOrCreate). A hash left empty is deleted, and a new one is stored
/// only if `f` left something in it. `f` returns its result and the hash event to
/// notify (`hset`, `hincrby`, ...), published after the key is stored, as in Redis.
fn write_hash<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut HashValue) -> Result<(R, Option<&'static str>), Error>,
) -> Result<R, Error> {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let (r, event) = match g.get(db, key) {
        Some(e) => {
            let h = as_hash(e.into_value_mut())?;
            let r = f(h);
            if h.is_empty() {
                g.remove(db, key);
            }
            r?
        }
        None => {
            let mut h = HashValue::new();
            let r = f(&mut h);
            if !h.is_empty() {
                g.insert(db, key, Value::from(h), 0);
            }
            r?
        }
    };
    if let Some(event) = event {
        // Redis replies, then notifies (a new key's `new` came first).
        ctx.reply_here();
        ctx.notify(ev::HASH, event, key);
    }
    Ok(r)
}

fn bulk(b: &[u8]) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(b))
}

fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() % 2 == 1 {
        return Err(Error::arity(ctx.fullname));
    }
    let limits = ctx.enc();
    let created = write_hash(ctx, &args[1], |h| {
        h.prepare_write(&args[2..], &limits);
        let created = args[2..]
            .chunks_exact(2)
            .filter(|p| h.set(&p[0], &p[1], &limits))
            .count();
        Ok((created, Some("hset")))
    })?;
    // Every pair counts, new or not (Redis's `server.dirty += (argc - 2) / 2`).
    ctx.changed((args.len() as u64 - 2) / 2);
    // HMSET is the deprecated form: same work, +OK instead of the count.
    if args[0].len() > 1 && args[0][1].eq_ignore_ascii_case(&b'm') {
        Ok(Frame::ok())
    } else {
        Ok(Frame::Integer(created as i64))
    }
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let limits = ctx.enc();
    write_hash(ctx, &args[1], |h| {
        if h.contains(&args[2]) {
            return Ok((Frame::Integer(0), None));
        }
        h.prepare_write(&args[2..4], &limits);
        h.set(&args[2], &args[3], &limits);
        Ok((Frame::Integer(1), Some("hset")))
    })
}

fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(
        match read_hash(&mut g, db, &args[1])?.and_then(|h| h.get(&args[2])) {
            Some(v) => bulk(v),
            None => Frame::Null,
        },
    )
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let h = read_hash(&mut g, db, &args[1])?;
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|f| match h.and_then(|h| h.get(f)) {
                Some(v) => bulk(v),
                None => Frame::Null,
            })
            .collect(),
    ))
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(e) = g.get(db, key) else {
        return Ok(Frame::Integer(0));
    };
    let h = as_hash(e.into_value_mut())?;
    let mut deleted = 0;
    for f in &args[2..] {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let empty = h.is_empty();
    if deleted > 0 {
        ctx.notify(ev::HASH, "hdel", key);
    }
    if empty {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    }
    ctx.changed(deleted as u64);
    Ok(Frame::Integer(deleted))
}

/// Runs `f` on the hash at `args[1]` for a read, or replies `missing`.
fn read_with(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    missing: Frame,
    f: impl FnOnce(&HashValue) -> Frame,
) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(match read_hash(&mut g, db, &args[1])? {
        Some(h) => f(h),
        None => missing,
    })
}

fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_with(ctx, args, Frame::Integer(0), |h| {
        Frame::Integer(h.len() as i64)
    })
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_with(ctx, args, Frame::Integer(0), |h| {
        Frame::Integer(h.get(&args[2]).map_or(0, |v| v.len() as i64))
    })
}

fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_with(ctx, args, Frame::Integer(0), |h| {
        Frame::Integer(i64::from(h.contains(&args[2])))
    })
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_with(ctx, args, Frame::Array(Vec::new()), |h| {
        let mut out = Vec::with_capacity(h.len());
        h.for_each(|k, _| out.push(bulk(k)));
        Frame::Array(out)
    })
}

fn hvals(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_with(ctx, args, Frame::Array(Vec::new()), |h| {
        let mut out = Vec::with_capacity(h.len());
        h.for_each(|_, v| out.push(bulk(v)));
        Frame::Array(out)
    })
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_with(ctx, args, Frame::Map(Vec::new()), |h| {
        let mut out = Vec::with_capacity(h.len());
        h.for_each(|k, v| out.push((bulk(k), bulk(v))));
        Frame::Map(out)
    })
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let incr = args::int(&args[3])?;
    let limits = ctx.enc();
    let field = &args[2];
    write_hash(ctx, &args[1], |h| {
        let current = match h.get(field) {
            None => 0,
            Some(v) => basalt_engine::num::parse_i64(v)
                .ok_or_else(|| Error::msg("ERR hash value is not an integer"))?,
        };
        let value = current
            .checked_add(incr)
            .ok_or_else(|| Error::msg(error::OVERFLOW))?;
        h.set(field, itoa::Buffer::new().format(value).as_bytes(), &limits);
        Ok((Frame::Integer(value), Some("hincrby")))
    })
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let incr = ldouble::parse_long_double(&args[3]).ok_or_else(|| Error::msg(error::NOT_FLOAT))?;
    if !incr.is_finite() {
        return Err(Error::msg("ERR value is NaN or Infinity"));
    }
    let limits = ctx.enc();
    let field = &args[2];
    let reply = write_hash(ctx, &args[1], |h| {
        let current = match h.get(field) {
            None => SoftF80::from_i64(0),
            Some(v) => ldouble::parse_long_double(v)
                .ok_or_else(|| Error::msg("ERR hash value is not a float"))?,
        };
        let result = ldouble::add_human(current, incr).map_err(|e| match e {
            IncrFloatError::NotFloat => Error::msg("ERR hash value is not a float"),
            IncrFloatError::NanOrInfinity => {
                Error::msg("ERR increment would produce NaN or Infinity")
            }
        })?;
        h.set(field, &result, &limits);
        Ok((Frame::Bulk(Bytes::from(result)), Some("hincrbyfloat")))
    });
    // Logged as the value it produced, as Redis does.
    if ctx.aof_on()
        && let Ok(Frame::Bulk(v)) = &reply
    {
        let effect = vec![
            Bytes::from_static(b"HSET"),
            args[1].clone(),
            field.clone(),
            v.clone(),
        ];
        ctx.propagate(effect);
    }
    reply
}

fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() >= 3 {
        let l = args::int(&args[2])?;
        // Redis reads the count with getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX).
        if l == i64::MIN {
            return Err(Error::msg(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        if args.len() > 4 || (args.len() == 4 && !is(&args[3], "withvalues")) {
            return Err(Error::msg(error::SYNTAX));
        }
        let withvalues = args.len() == 4;
        // Redis refuses counts whose doubled reply length would overflow.
        if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return Err(Error::msg("ERR value is out of range"));
        }
        return hrandfield_count(ctx, args, l, withvalues);
    }
    read_with(ctx, args, Frame::Null, |h| {
        match h.random_pair(&mut crate::rand::command_rng()) {
            Some((k, _)) => bulk(k),
            None => Frame::Null,
        }
    })
}

fn hrandfield_count(ctx: &mut Ctx<'_>, args: &[Bytes], l: i64, withvalues: bool) -> CmdResult {
    let (count, unique) = (l.unsigned_abs(), l >= 0);
    let resp3 = ctx.client.proto == Protocol::Resp3;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(h) = read_hash(&mut g, db, &args[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Frame::Array(Vec::new()));
    }
    let picks = if !unique || count == 1 {
        if count > MAX_RANDOM_PICKS {
            return Err(Error::msg("ERR value is out of range"));
        }
        h.random_pairs(count as usize, &mut crate::rand::command_rng())
    } else {
        // A count beyond usize is beyond any hash's size: the whole hash.
        h.random_unique(
            usize::try_from(count).unwrap_or(usize::MAX),
            &mut crate::rand::command_rng(),
        )
    };
    let mut out = Vec::with_capacity(picks.len() * if withvalues { 2 } else { 1 });
    for (k, v) in picks {
        if !withvalues {
            out.push(bulk(k));
        } else if resp3 {
            out.push(Frame::Array(vec![bulk(k), bulk(v)]));
        } else {
            out.push(bulk(k));
            out.push(bulk(v));
        }
    }
    Ok(Frame::Array(out))
}

fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = crate::families::keys::parse_cursor(&args[2])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(h) = read_hash(&mut g, db, &args[1])? else {
        return Ok(args::scan_reply(0, Vec::new()));
    };
    // Options are parsed only for an existing hash, as in Redis.
    let args::ScanOptions { count, pattern, .. } = args::scan_options(args, 3, false)?;
    let mut out = Vec::new();
    let next = h.scan(cursor, count, |k, v| {
        if pattern.is_none_or(|p| glob_match(p, k, false)) {
            out.push(bulk(k));
            out.push(bulk(v));
        }
    });
    Ok(args::scan_reply(next, out))
}
