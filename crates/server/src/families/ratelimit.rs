//! Rate limiting: `CL.THROTTLE` (redis-cell's module command) and `GCRA` (upstream
//! Redis's command), both on the server's clock.
//!
//! The arithmetic lives in `basalt_engine::ratelimit`; this module parses arguments
//! with the originals' error replies, reads and writes the state, and replies. Both
//! commands keep their state where the originals do, in a plain string key holding the
//! theoretical arrival time (TAT), so a key written by redis-cell or by Redis moves to
//! Basalt unchanged (RDB, `DUMP`/`RESTORE`, `MIGRATE`) and vice versa:
//!
//! - `CL.THROTTLE` stores nanoseconds since the epoch and a relative TTL in whole
//!   milliseconds, as redis-cell's `InternalRedisStore` does. Like a module command it
//!   publishes no keyspace event but signals the key as modified (WATCH).
//! - `GCRA` stores microseconds with the absolute deadline `TAT / 1000` ms and publishes
//!   `set` and `expire`, as upstream does.
//!
//! The AOF records an allowed request as the state it stored, `SET key tat PXAT deadline`
//! (upstream GCRA rewrites itself to exactly this), never the command, whose result
//! depends on the clock; a refused request records nothing.
//!
//! Neither command ever reads a client's clock: the time is the command's snapshot
//! (`Ctx::now`, milliseconds) scaled to the unit of the state.

use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, args};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::ratelimit::{self, CellParams, GcraParams};
use basalt_engine::{StrRef, StrValue, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;

const RW_UPDATE: &[&str] = &["RW", "access", "update"];

/// The usage error redis-cell answers for a wrong argument count.
pub const CELL_USAGE: &str =
    "Cell error: Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]";

/// The rate-limiting commands.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "cl.throttle",
        // Any count reaches the handler, which answers redis-cell's usage error.
        arity: -1,
        flags: WRITE | DENYOOM | FAST,
        acl: 0,
        keys: (1, 1, 1),
        key_specs: &[KeySpec::single(1, RW_UPDATE)],
        group: "rate_limit",
        since: "1.0.0",
        summary: "Rate limit via GCRA, as the redis-cell module defines it.",
        complexity: "O(1)",
        handler: Some(cl_throttle),
        ..Command::EMPTY
    },
    Command {
        name: "gcra",
        arity: -5,
        flags: WRITE | DENYOOM | FAST,
        acl: 0,
        keys: (1, 1, 1),
        key_specs: &[KeySpec::single(1, RW_UPDATE)],
        group: "rate_limit",
        since: "8.8.0",
        summary: "Rate limit via GCRA (Generic Cell Rate Algorithm).",
        complexity: "O(1)",
        handler: Some(gcra),
        ..Command::EMPTY
    },
];

/// A redis-cell error reply (`Cell error: ...`, no error code, as a module's
/// `RedisModule_ReplyWithError` sends it).
fn cell_error(msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("Cell error: {msg}"))
}

/// redis-cell parses integers with Rust's `str::parse::<i64>`.
fn cell_int(arg: &[u8]) -> Result<i64, Error> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            cell_error(format_args!(
                "Couldn't parse as integer: {}",
                String::from_utf8_lossy(arg)
            ))
        })
}

/// The stored TAT of a `GCRA` key (`None`: missing), as upstream reads it: other types
/// answer WRONGTYPE, a string that is not a canonical integer `Invalid GCRA key`.
fn gcra_tat(v: Option<ValueRef<'_>>) -> Result<Option<i64>, Error> {
    match v {
        None => Ok(None),
        Some(ValueRef::Str(s)) => s
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::msg("ERR Invalid GCRA key")),
        Some(_) => Err(Error::msg(error::WRONGTYPE)),
    }
}

fn cl_throttle(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() != 5 && argv.len() != 6 {
        return Err(Error::msg(CELL_USAGE));
    }
    let p = CellParams {
        max_burst: cell_int(&argv[2])?,
        count: cell_int(&argv[3])?,
        period_secs: cell_int(&argv[4])?,
        quantity: match argv.get(5) {
            Some(q) => cell_int(q)?,
            None => 1,
        },
    };
    let db = ctx.client.db;
    let key = &argv[1];
    let now_ms = ctx.now;
    let now_ns = i64::try_from(now_ms)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or_else(|| cell_error(ratelimit::CellError::Overflow))?;
    let mut g = ctx.srv.keyspace.lock_key(key, now_ms);
    let tat = match g.get(db, key).map(|e| e.into_value()) {
        None => None,
        Some(ValueRef::Str(StrRef::Int(i))) => Some(i),
        // redis-cell parses the stored text with `str::parse::<i64>` and reports Rust's
        // ParseIntError.
        Some(ValueRef::Str(s)) => {
            let b = s.as_bytes();
            let text = String::from_utf8_lossy(&b);
            Some(text.parse::<i64>().map_err(cell_error)?)
        }
        Some(_) => return Err(Error::msg(error::WRONGTYPE)),
    };
    // redis-cell reads a stored -1 as "no key".
    let tat = tat.filter(|&t| t != -1);
    let o = ratelimit::cell(tat, now_ns, p).map_err(cell_error)?;
    if let Some(new_tat) = o.new_tat {
        // The TTL in whole milliseconds (time::Duration::whole_milliseconds), relative
        // to the command's time, as RedisModule_SetExpire takes it.
        let ttl_ms = (new_tat - now_ns) / 1_000_000;
        let deadline = now_ms.saturating_add(ttl_ms as u64);
        g.insert(db, key, Value::Str(StrValue::Int(new_tat)), deadline);
        drop(g);
        ctx.modified(key);
        propagate_tat(ctx, key, new_tat, deadline);
    } else if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    Ok(Frame::Array(vec![
        Frame::Integer(i64::from(o.limited)),
        Frame::Integer(o.limit),
        Frame::Integer(o.remaining),
        Frame::Integer(o.retry_after.map_or(-1, ratelimit::cell_seconds)),
        Frame::Integer(ratelimit::cell_seconds(o.reset_after)),
    ]))
}

/// Logs an allowed request as its effect, the stored state: `SET key <tat> PXAT
/// <deadline>` (upstream GCRA rewrites itself to exactly this), or `DEL key` when the
/// deadline is already due. The command itself must not be replayed: its result depends
/// on the time.
fn propagate_tat(ctx: &mut Ctx<'_>, key: &Bytes, tat: i64, deadline: u64) {
    if !ctx.aof_on() {
        return;
    }
    if deadline <= ctx.now {
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
    } else {
        ctx.propagate(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            crate::aof::int_arg(tat),
            Bytes::from_static(b"PXAT"),
            crate::aof::int_arg(deadline),
        ]);
    }
}

/// Redis's getRangeLongFromObjectOrReply with its default message.
fn range_long(arg: &[u8], min: i64, max: i64) -> Result<i64, Error> {
    let v = args::int(arg)?;
    if v < min || v > max {
        return Err(Error::msg(format!(
            "ERR value is out of range, value must between {min} and {max}"
        )));
    }
    Ok(v)
}

fn gcra(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 7 {
        return Err(Error::arity(ctx.fullname));
    }
    let max_burst = args::non_negative(&argv[2], error::NOT_POSITIVE)? as i64;
    let tokens_per_period = range_long(&argv[3], 1, i64::MAX)?;
    let period = args::float(&argv[4])?;
    if !(period > 0.0 && period < 1e12) {
        return Err(Error::msg("ERR period must be > 0 and < 1e12"));
    }
    let mut tokens = 1;
    if argv.len() >= 6 {
        if !args::is(&argv[5], "tokens") {
            return Err(Error::msg(error::SYNTAX));
        }
        let Some(n) = argv.get(6) else {
            return Err(Error::msg("ERR Missing TOKENS value"));
        };
        tokens = range_long(n, 1, i64::MAX)?;
    }
    let p = GcraParams {
        max_burst,
        tokens_per_period,
        period,
        tokens,
    };
    let db = ctx.client.db;
    let key = &argv[1];
    let now_ms = ctx.now;
    // Basalt's clock, like Redis's commandTimeSnapshot, has millisecond resolution.
    let now_us = (now_ms as i64).saturating_mul(1000);
    let mut g = ctx.srv.keyspace.lock_key(key, now_ms);
    let tat = gcra_tat(g.get(db, key).map(|e| e.into_value()))?;
    if tat.is_some_and(|t| t <= 0) {
        return Err(Error::msg("ERR Negative time is invalid value for GCRA"));
    }
    let o = ratelimit::gcra(tat, now_us, p).map_err(|m| Error::msg(format!("ERR {m}")))?;
    if let Some(new_tat) = o.new_tat {
        let deadline = (new_tat / 1000) as u64;
        g.insert(db, key, Value::Str(StrValue::Int(new_tat)), deadline);
        drop(g);
        ctx.notify(ev::STRING, "set", key);
        ctx.notify(ev::GENERIC, "expire", key);
        propagate_tat(ctx, key, new_tat, deadline);
    } else if ctx.aof_on() {
        ctx.propagate_nothing();
    }
    Ok(Frame::Array(vec![
        Frame::Integer(i64::from(o.limited)),
        Frame::Integer(o.limit),
        Frame::Integer(o.remaining),
        Frame::Integer(o.retry_after.map_or(-1, ratelimit::gcra_seconds)),
        Frame::Integer(ratelimit::gcra_seconds(o.reset_after)),
    ]))
}
