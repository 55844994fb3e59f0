//! The streams family: XADD, XLEN, XRANGE, XREVRANGE, XREAD, XDEL, XTRIM, XSETID,
//! XGROUP (CREATE, CREATECONSUMER, DELCONSUMER, DESTROY, SETID, HELP), XREADGROUP, XACK,
//! XPENDING, XCLAIM, XAUTOCLAIM and XINFO (STREAM, GROUPS, CONSUMERS, HELP).
//!
//! Semantics, reply shapes and error strings follow Redis 7.0's t_stream.c, including
//! the order in which arguments are checked (options are parsed before the key is
//! looked up, so the same bad request gets the same error). The data structure is
//! `basalt_engine::types::stream`.
//!
//! Blocking reads (XREAD/XREADGROUP with BLOCK) go through the shared waiter registry:
//! a read that finds nothing calls [`Ctx::block`] with its arguments rewritten so that a
//! re-run means the same thing (`$` becomes the ID it stood for, a missing COUNT becomes
//! Redis's 1000 for served blocked clients), and asks that a failed re-run pass the
//! wake-up on to the next waiter, because unlike a list pop one XADD can serve every
//! XREAD client. A blocked XREADGROUP also watches its streams: when one is deleted or
//! its group destroyed, the client gets Redis's UNBLOCKED / NOGROUP error.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::types::stream::{
    AddError, ClaimOptions, EntryRef, IdRequest, StreamId, StreamValue, Trim, TrimStrategy,
    Watcher, parse_id,
};
use basalt_engine::{Guard, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;
use std::sync::Arc;

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const RW_DELETE: &[&str] = &["RW", "delete"];
const RW_INSERT: &[&str] = &["RW", "insert"];

macro_rules! stream_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::STREAM, "stream"; $($t)*)
    };
}

/// XREAD/XREADGROUP keys: after STREAMS, the first half of the remaining arguments.
const READ_SPECS_XREAD: &[KeySpec] = &[KeySpec {
    notes: "",
    flags: RO_ACCESS,
    begin: BeginSearch::Keyword {
        keyword: "STREAMS",
        startfrom: 1,
    },
    find: FindKeys::Range {
        lastkey: -1,
        step: 1,
        limit: 2,
    },
}];

const READ_SPECS_XREADGROUP: &[KeySpec] = &[KeySpec {
    notes: "",
    flags: RO_ACCESS,
    begin: BeginSearch::Keyword {
        keyword: "STREAMS",
        startfrom: 4,
    },
    find: FindKeys::Range {
        lastkey: -1,
        step: 1,
        limit: 2,
    },
}];

const XGROUP_CREATE_SPECS: &[KeySpec] = &[KeySpec::single(2, RW_INSERT)];
const XGROUP_DELETE_SPECS: &[KeySpec] = &[KeySpec::single(2, RW_DELETE)];
const XGROUP_UPDATE_SPECS: &[KeySpec] = &[KeySpec::single(2, RW_UPDATE)];
const XINFO_SPECS: &[KeySpec] = &[KeySpec::single(2, RO_ACCESS)];

const XGROUP_SUBCOMMANDS: &[Command] = &[
    stream_cmd!(
        "create",
        -5,
        WRITE | DENYOOM,
        (2, 2, 1),
        XGROUP_CREATE_SPECS,
        "5.0.0",
        "Create a consumer group.",
        "O(1)",
        xgroup_create
    ),
    stream_cmd!(
        "delconsumer",
        5,
        WRITE,
        (2, 2, 1),
        XGROUP_DELETE_SPECS,
        "5.0.0",
        "Delete a consumer from a consumer group.",
        "O(1)",
        xgroup_delconsumer
    ),
    stream_cmd!(
        "destroy",
        4,
        WRITE,
        (2, 2, 1),
        XGROUP_DELETE_SPECS,
        "5.0.0",
        "Destroy a consumer group.",
        "O(N) where N is the number of entries in the group's pending entries list (PEL).",
        xgroup_destroy
    ),
    stream_cmd!(
        "setid",
        -5,
        WRITE,
        (2, 2, 1),
        XGROUP_UPDATE_SPECS,
        "5.0.0",
        "Set a consumer group to an arbitrary last delivered ID value.",
        "O(1)",
        xgroup_setid
    ),
    stream_cmd!(
        "createconsumer",
        5,
        WRITE | DENYOOM,
        (2, 2, 1),
        XGROUP_CREATE_SPECS,
        "6.2.0",
        "Create a consumer in a consumer group.",
        "O(1)",
        xgroup_createconsumer
    ),
    stream_cmd!(
        "help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        &[],
        "5.0.0",
        "Show helpful text about the different subcommands",
        "O(1)",
        xgroup_help
    ),
];

const XINFO_SUBCOMMANDS: &[Command] = &[
    stream_cmd!(
        "help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        &[],
        "5.0.0",
        "Show helpful text about the different subcommands",
        "O(1)",
        xinfo_help
    ),
    stream_cmd!(
        "stream",
        -3,
        READONLY,
        (2, 2, 1),
        XINFO_SPECS,
        "5.0.0",
        "Get information about a stream",
        "O(1)",
        xinfo_stream
    ),
    stream_cmd!(
        "groups",
        3,
        READONLY,
        (2, 2, 1),
        XINFO_SPECS,
        "5.0.0",
        "List the consumer groups of a stream",
        "O(1)",
        xinfo_groups
    ),
    Command {
        tips: &["nondeterministic_output"],
        ..stream_cmd!(
            "consumers",
            4,
            READONLY,
            (2, 2, 1),
            XINFO_SPECS,
            "5.0.0",
            "List the consumers in a consumer group",
            "O(1)",
            xinfo_consumers
        )
    },
];

/// The streams family's commands.
pub const COMMANDS: &[Command] = &[
    Command {
        tips: &["nondeterministic_output"],
        ..stream_cmd!(
            "xadd",
            -5,
            WRITE | DENYOOM | FAST,
            (1, 1, 1),
            &[KeySpec {
                notes: "UPDATE instead of INSERT because of the optional trimming feature",
                ..KeySpec::single(1, RW_UPDATE)
            }],
            "5.0.0",
            "Appends a new entry to a stream",
            "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
            xadd
        )
    },
    stream_cmd!(
        "xlen",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "5.0.0",
        "Return the number of entries in a stream",
        "O(1)",
        xlen
    ),
    stream_cmd!(
        "xrange",
        -4,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "5.0.0",
        "Return a range of elements in a stream, with IDs matching the specified IDs interval",
        "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        xrange
    ),
    stream_cmd!(
        "xrevrange",
        -4,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "5.0.0",
        "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE",
        "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        xrevrange
    ),
    stream_cmd!(
        "xread",
        -4,
        READONLY | BLOCKING | MOVABLE_KEYS,
        (0, 0, 0),
        READ_SPECS_XREAD,
        "5.0.0",
        "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block.",
        "For each stream mentioned: O(N) with N being the number of elements being returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option is used, XADD will pay O(M) time in order to serve the M clients blocked on the stream getting new data.",
        xread
    ),
    stream_cmd!(
        "xdel",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_DELETE)],
        "5.0.0",
        "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist.",
        "O(1) for each single item to delete in the stream, regardless of the stream size.",
        xdel
    ),
    Command {
        tips: &["nondeterministic_output"],
        ..stream_cmd!(
            "xtrim",
            -4,
            WRITE,
            (1, 1, 1),
            &[KeySpec::single(1, RW_DELETE)],
            "5.0.0",
            "Trims the stream to (approximately if '~' is passed) a certain size",
            "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
            xtrim
        )
    },
    stream_cmd!(
        "xsetid",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "5.0.0",
        "An internal command for replicating stream values",
        "O(1)",
        xsetid
    ),
    Command {
        name: "xgroup",
        arity: -2,
        group: "stream",
        since: "5.0.0",
        summary: "A container for consumer groups commands",
        complexity: "Depends on subcommand.",
        subcommands: XGROUP_SUBCOMMANDS,
        ..Command::EMPTY
    },
    stream_cmd!(
        "xreadgroup",
        -7,
        WRITE | BLOCKING | MOVABLE_KEYS,
        (0, 0, 0),
        READ_SPECS_XREADGROUP,
        "5.0.0",
        "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.",
        "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.",
        xreadgroup
    ),
    stream_cmd!(
        "xack",
        -4,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "5.0.0",
        "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL.",
        "O(1) for each message ID processed.",
        xack
    ),
    Command {
        tips: &["nondeterministic_output"],
        ..stream_cmd!(
            "xpending",
            -3,
            READONLY,
            (1, 1, 1),
            &[KeySpec::single(1, RO_ACCESS)],
            "5.0.0",
            "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.",
            "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.",
            xpending
        )
    },
    Command {
        tips: &["nondeterministic_output"],
        ..stream_cmd!(
            "xclaim",
            -6,
            WRITE | FAST,
            (1, 1, 1),
            &[KeySpec::single(1, RW_UPDATE)],
            "5.0.0",
            "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer.",
            "O(log N) with N being the number of messages in the PEL of the consumer group.",
            xclaim
        )
    },
    Command {
        tips: &["nondeterministic_output"],
        ..stream_cmd!(
            "xautoclaim",
            -6,
            WRITE | FAST,
            (1, 1, 1),
            &[KeySpec::single(1, RW_DELETE)],
            "6.2.0",
            "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.",
            "O(1) if COUNT is small.",
            xautoclaim
        )
    },
    Command {
        name: "xinfo",
        arity: -2,
        group: "stream",
        since: "5.0.0",
        summary: "A container for stream introspection commands",
        complexity: "Depends on subcommand.",
        subcommands: XINFO_SUBCOMMANDS,
        ..Command::EMPTY
    },
];

// ---------------------------------------------------------------------------------------
// Errors, word for word Redis 7.0's.
// ---------------------------------------------------------------------------------------

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const XADD_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const XADD_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const XADD_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
const XADD_TOO_LARGE: &str = "ERR Elements are too large to be stored";
const BAD_START: &str = "ERR invalid start ID for the interval";
const BAD_END: &str = "ERR invalid end ID for the interval";
const XGROUP_NEEDS_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
const UNBLOCKED_DELETED: &str = "UNBLOCKED the stream key no longer exists";
const NOGROUP_BLOCKED: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";

/// XAUTOCLAIM allocates 16 bytes per COUNT up front; Redis's allocation fails, with its
/// "COUNT too high" error, once that exceeds the 47-bit address space of x86-64 user
/// processes. Basalt allocates as it goes but refuses the same requests.
const AUTOCLAIM_MAX_BYTES: u64 = 1 << 47;

/// Count Redis uses for a blocked XREAD/XREADGROUP without COUNT once it is served.
const BLOCKED_DEFAULT_COUNT: &[u8] = b"1000";

fn nogroup_key(key: &[u8], group: &[u8]) -> Error {
    Error::msg(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn subcommand_syntax(args: &[Bytes]) -> Error {
    Error::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&args[1][..args[1].len().min(128)]),
        String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
    ))
}

// ---------------------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------------------

/// A strict ID (no `-`/`+`), missing sequence 0.
fn strict_id(arg: &[u8]) -> Result<StreamId, Error> {
    parse_id(arg, 0, true, false)
        .map(|p| p.id)
        .ok_or_else(|| Error::msg(INVALID_ID))
}

/// An ID that may be `-`/`+`.
fn loose_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Error> {
    parse_id(arg, missing_seq, false, false)
        .map(|p| p.id)
        .ok_or_else(|| Error::msg(INVALID_ID))
}

/// A range end with an optional `(` (exclusive); returns the inclusive bound, or the
/// given error when excluding it leaves nothing (`(` before the first or after the last
/// possible ID).
fn interval_start(arg: &[u8]) -> Result<StreamId, Error> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = strict_id(&arg[1..])?;
        id.incr().ok_or_else(|| Error::msg(BAD_START))
    } else {
        loose_id(arg, 0)
    }
}

fn interval_end(arg: &[u8]) -> Result<StreamId, Error> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = parse_id(&arg[1..], u64::MAX, true, false)
            .map(|p| p.id)
            .ok_or_else(|| Error::msg(INVALID_ID))?;
        id.decr().ok_or_else(|| Error::msg(BAD_END))
    } else {
        loose_id(arg, u64::MAX)
    }
}

fn id_frame(id: StreamId) -> Frame {
    Frame::Bulk(Bytes::from(id.to_string()))
}

fn entry_frame(e: &EntryRef<'_>) -> Frame {
    let mut fields = Vec::with_capacity(e.field_count() as usize * 2);
    for (f, v) in e.fields() {
        fields.push(Frame::Bulk(Bytes::copy_from_slice(f)));
        fields.push(Frame::Bulk(Bytes::copy_from_slice(v)));
    }
    Frame::Array(vec![id_frame(e.id), Frame::Array(fields)])
}

/// The stream at `key`, or `None`; WRONGTYPE for another type. `read` counts a keyspace
/// hit or miss (read commands).
fn stream_at<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
    read: bool,
) -> Result<Option<&'g mut StreamValue>, Error> {
    let entry = if read {
        g.lookup_read_mut(db, key)
    } else {
        g.get(db, key)
    };
    match entry {
        None => Ok(None),
        Some(e) => match e.into_value_mut() {
            Some(Value::Stream(s)) => Ok(Some(s)),
            _ => Err(Error::msg(error::WRONGTYPE)),
        },
    }
}

/// [`stream_at`] for write commands.
fn stream_mut<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g mut StreamValue>, Error> {
    stream_at(g, db, key, false)
}

/// [`stream_at`] for read commands.
fn stream_read<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g mut StreamValue>, Error> {
    stream_at(g, db, key, true)
}

/// `getLongLongFromObjectOrReply`.
fn int(arg: &[u8]) -> Result<i64, Error> {
    args::int(arg)
}

fn int_msg(arg: &[u8], msg: &str) -> Result<i64, Error> {
    basalt_engine::num::parse_i64(arg).ok_or_else(|| Error::msg(format!("ERR {msg}")))
}

// ---------------------------------------------------------------------------------------
// XADD / XTRIM
// ---------------------------------------------------------------------------------------

/// What `streamParseAddOrTrimArgsOrReply` finds.
struct AddTrimArgs {
    trim: Option<Trim>,
    nomkstream: bool,
    /// XADD's ID and where it is.
    id: Option<basalt_engine::types::stream::ParsedId>,
    id_pos: usize,
}

fn parse_add_trim(ctx: &Ctx<'_>, args: &[Bytes], xadd: bool) -> Result<AddTrimArgs, Error> {
    let mut strategy: Option<TrimStrategy> = None;
    let mut approx = false;
    let mut limit: i64 = 0;
    let mut limit_given = false;
    let mut nomkstream = false;
    let mut id = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i][..];
        if xadd && opt == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if strategy.is_some() {
                return Err(Error::msg(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && next == b"~" {
                approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if is(opt, "maxlen") {
                let n = int(&args[i + 1])?;
                if n < 0 {
                    return Err(Error::msg("ERR The MAXLEN argument must be >= 0."));
                }
                strategy = Some(TrimStrategy::MaxLen(n as u64));
            } else {
                strategy = Some(TrimStrategy::MinId(strict_id(&args[i + 1])?));
            }
            i += 1;
        } else if is(opt, "limit") && more > 0 {
            limit = int(&args[i + 1])?;
            if limit < 0 {
                return Err(Error::msg("ERR The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            nomkstream = true;
        } else if xadd {
            id = Some(parse_id(opt, 0, true, true).ok_or_else(|| Error::msg(INVALID_ID))?);
            break;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 1;
    }
    if limit > 0 && strategy.is_none() {
        return Err(Error::msg(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && strategy.is_none() {
        return Err(Error::msg(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !approx {
            return Err(Error::msg(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if approx {
        // At most 100 nodes' worth of entries per call, as Redis limits the work.
        limit = 100i64.saturating_mul(ctx.enc().stream_node_max_entries as i64);
        if limit <= 0 || limit > 1_000_000 {
            limit = 10_000;
        }
    } else {
        limit = 0;
    }
    Ok(AddTrimArgs {
        trim: strategy.map(|strategy| Trim {
            strategy,
            approx,
            limit: limit as u64,
        }),
        nomkstream,
        id,
        id_pos: i,
    })
}

fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_add_trim(ctx, args, true)?;
    let field_pos = a.id_pos + 1;
    let nfields = args.len().saturating_sub(field_pos);
    if nfields < 2 || !nfields.is_multiple_of(2) {
        return Err(Error::arity(ctx.fullname));
    }
    if let Some(p) = a.id
        && p.seq_given
        && p.id.is_zero()
    {
        return Err(Error::msg(XADD_ZERO));
    }
    let req = match a.id {
        None => IdRequest::Auto,
        Some(p) if p.seq_given => IdRequest::Exact(p.id),
        Some(p) => IdRequest::AutoSeq(p.id.ms),
    };
    let pairs: Vec<(&[u8], &[u8])> = args[field_pos..]
        .chunks_exact(2)
        .map(|p| (&p[0][..], &p[1][..]))
        .collect();
    let db = ctx.client.db;
    let key = &args[1];
    let enc = ctx.enc();
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    if stream_mut(&mut g, db, key)?.is_none() {
        if a.nomkstream {
            drop(g);
            ctx.propagate_nothing();
            return Ok(Frame::Null);
        }
        g.insert(db, key, Value::from(StreamValue::new()), 0);
    }
    let Some(s) = stream_mut(&mut g, db, key)? else {
        return Ok(Frame::Null);
    };
    if s.last_id() == StreamId::MAX {
        return Err(Error::msg(XADD_EXHAUSTED));
    }
    let id = match s.add(req, &pairs, ctx.now, &enc) {
        Ok(id) => id,
        Err(AddError::IdTooSmall) => return Err(Error::msg(XADD_SMALL)),
        Err(AddError::TooLarge) => return Err(Error::msg(XADD_TOO_LARGE)),
    };
    let mut trimmed = false;
    let trim_effect = a.trim.as_ref().map(|t| {
        trimmed = s.trim(t) > 0;
        exact_trim(t, s)
    });
    // Waiters are signalled before the key is released, so a reader that sees the new
    // entry also sees whose turn it is (`Registry::turn_ahead`).
    ctx.signal_ready(db, key);
    drop(g);
    // Redis replies, then publishes xadd (and xtrim when trimming removed entries).
    ctx.reply_here();
    ctx.notify(ev::STREAM, "xadd", key);
    if trimmed {
        ctx.notify(ev::STREAM, "xtrim", key);
    }
    if ctx.aof_on() {
        // Logged with the ID it got and an exact trim that removes what this one did.
        let mut effect = vec![Bytes::from_static(b"XADD"), key.clone()];
        if a.nomkstream {
            effect.push(Bytes::from_static(b"NOMKSTREAM"));
        }
        if let Some(t) = trim_effect {
            effect.extend(t);
        }
        effect.push(Bytes::from(id.to_string()));
        effect.extend(args[field_pos..].iter().cloned());
        ctx.propagate(effect);
    }
    Ok(id_frame(id))
}

/// The deterministic form of a trim that just ran on `s`: `MAXLEN = <length now>` or
/// `MINID = <first entry now>` (Redis rewrites `~` trims the same way, so a replay
/// removes exactly what this trim removed, node boundaries included).
fn exact_trim(t: &Trim, s: &StreamValue) -> [Bytes; 3] {
    let (name, value) = match t.strategy {
        TrimStrategy::MaxLen(n) => ("MAXLEN", if t.approx { s.len() } else { n }.to_string()),
        TrimStrategy::MinId(min) => {
            let first = match (t.approx, s.first_entry()) {
                (true, Some(e)) => e.id,
                _ => min,
            };
            ("MINID", first.to_string())
        }
    };
    [
        Bytes::from_static(name.as_bytes()),
        Bytes::from_static(b"="),
        Bytes::from(value),
    ]
}

fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_add_trim(ctx, args, false)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = stream_mut(&mut g, db, &args[1])? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    };
    let (n, effect) = match &a.trim {
        Some(t) => (s.trim(t), Some(exact_trim(t, s))),
        None => (0, None),
    };
    drop(g);
    if n > 0 {
        ctx.notify(ev::STREAM, "xtrim", &args[1]);
    }
    ctx.changed(n);
    if ctx.aof_on() {
        match effect {
            Some(e) if n > 0 => {
                let mut cmd = vec![Bytes::from_static(b"XTRIM"), args[1].clone()];
                cmd.extend(e);
                ctx.propagate(cmd);
            }
            _ => ctx.propagate_nothing(),
        }
    }
    Ok(Frame::Integer(n as i64))
}

fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(Frame::Integer(
        stream_read(&mut g, db, &args[1])?.map_or(0, |s| s.len() as i64),
    ))
}

// ---------------------------------------------------------------------------------------
// XRANGE / XREVRANGE / XDEL / XSETID
// ---------------------------------------------------------------------------------------

fn range_generic(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = interval_start(start_arg)?;
    let end = interval_end(end_arg)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if is(&args[j], "count") && j + 1 < args.len() {
            count = int(&args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = stream_read(&mut g, db, &args[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Frame::NullArray);
    }
    let it = s.range(start, end, rev);
    let out: Vec<Frame> = if count < 0 {
        it.map(|e| entry_frame(&e)).collect()
    } else {
        it.take(count as usize).map(|e| entry_frame(&e)).collect()
    };
    Ok(Frame::Array(out))
}

fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    range_generic(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    range_generic(ctx, args, true)
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = stream_mut(&mut g, db, &args[1])? else {
        return Ok(Frame::Integer(0));
    };
    // Every ID is checked before anything is deleted.
    let ids = args[2..]
        .iter()
        .map(|a| strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut deleted = 0;
    let mut first_removed = false;
    for id in ids {
        if s.delete(id) {
            if id == s.first_id() {
                first_removed = true;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        s.after_delete(first_removed);
        drop(g);
        ctx.notify(ev::STREAM, "xdel", &args[1]);
    }
    ctx.changed(deleted as u64);
    Ok(Frame::Integer(deleted))
}

fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let id = strict_id(&args[2])?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted: Option<StreamId> = None;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if is(&args[i], "entriesadded") && more > 0 {
            let n = int(&args[i + 1])?;
            if n < 0 {
                return Err(Error::msg("ERR entries_added must be positive"));
            }
            entries_added = Some(n as u64);
            i += 2;
        } else if is(&args[i], "maxdeletedid") && more > 0 {
            let m = strict_id(&args[i + 1])?;
            if id < m {
                return Err(Error::msg(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
            i += 2;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = stream_mut(&mut g, db, &args[1])? else {
        return Err(Error::msg(error::NO_SUCH_KEY));
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return Err(Error::msg(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if let Some(n) = entries_added
            && s.len() > n
        {
            return Err(Error::msg(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    s.set_meta(id, entries_added, max_deleted.filter(|m| !m.is_zero()));
    drop(g);
    // Redis publishes xsetid after replying and does not signal the key as modified
    // (a WATCH survives XSETID in 7.0).
    ctx.reply_here();
    ctx.notify_event_only(ev::STREAM, "xsetid", &args[1]);
    Ok(Frame::ok())
}

// ---------------------------------------------------------------------------------------
// XREAD / XREADGROUP
// ---------------------------------------------------------------------------------------

/// A resolved read position.
#[derive(Clone, Copy)]
enum ReadFrom {
    /// Entries after this ID.
    After(StreamId),
    /// XREADGROUP `>`.
    New,
}

pub(crate) fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_generic(ctx, args, false)
}

fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    read_generic(ctx, args, true)
}

fn read_generic(ctx: &mut Ctx<'_>, args: &[Bytes], group_mode: bool) -> CmdResult {
    let mut timeout: Option<i64> = None;
    let mut count: i64 = 0;
    let mut count_given = false;
    let mut streams_arg = 0;
    let mut group: Option<(&Bytes, &Bytes)> = None;
    let mut noack = false;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = &args[i][..];
        if is(o, "block") && more > 0 {
            i += 1;
            let t = basalt_engine::num::parse_i64(&args[i])
                .ok_or_else(|| Error::msg("ERR timeout is not an integer or out of range"))?;
            if t < 0 {
                return Err(Error::msg("ERR timeout is negative"));
            }
            timeout = Some(t);
        } else if is(o, "count") && more > 0 {
            i += 1;
            count = int(&args[i])?.max(0);
            count_given = true;
        } else if is(o, "streams") && more > 0 {
            streams_arg = i + 1;
            if !(args.len() - streams_arg).is_multiple_of(2) {
                // Redis 7.0 names XREAD and `$` here for XREADGROUP too.
                return Err(Error::msg(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            break;
        } else if is(o, "group") && more >= 2 {
            if !group_mode {
                return Err(Error::msg(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((&args[i + 1], &args[i + 2]));
            i += 2;
        } else if is(o, "noack") {
            if !group_mode {
                return Err(Error::msg(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 1;
    }
    if streams_arg == 0 {
        return Err(Error::msg(error::SYNTAX));
    }
    if group_mode && group.is_none() {
        return Err(Error::msg("ERR Missing GROUP option for XREADGROUP"));
    }
    let nstreams = (args.len() - streams_arg) / 2;
    let keys = &args[streams_arg..streams_arg + nstreams];
    let id_args = &args[streams_arg + nstreams..];
    let db = ctx.client.db;
    let retry = ctx.srv.blocking.is_blocked(ctx.client.id);
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);

    // Resolve every ID (and group) first, as Redis does before serving anything.
    let mut froms = Vec::with_capacity(nstreams);
    for (key, id_arg) in keys.iter().zip(id_args) {
        let exists = match g.lookup_read(db, key) {
            None => false,
            Some(e) => match e.into_value() {
                ValueRef::Other(Value::Stream(_)) => true,
                _ if retry && !group_mode => false,
                _ if retry => return Err(Error::msg(UNBLOCKED_DELETED)),
                _ => return Err(Error::msg(error::WRONGTYPE)),
            },
        };
        if let Some((gname, _)) = group {
            let has_group =
                exists && stream_mut(&mut g, db, key)?.is_some_and(|s| s.group(gname).is_some());
            if !has_group {
                if retry {
                    return Err(Error::msg(if exists {
                        NOGROUP_BLOCKED
                    } else {
                        UNBLOCKED_DELETED
                    }));
                }
                return Err(Error::msg(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(gname)
                )));
            }
        }
        let from = if &id_arg[..] == b"$" {
            if group_mode {
                return Err(Error::msg(
                    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ));
            }
            ReadFrom::After(match stream_mut(&mut g, db, key)? {
                Some(s) => s.last_id(),
                None => StreamId::MIN,
            })
        } else if &id_arg[..] == b">" {
            if !group_mode {
                return Err(Error::msg(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ));
            }
            ReadFrom::New
        } else {
            match strict_id(id_arg)? {
                // Redis marks `>` with the largest ID, so spelling that ID out reads
                // new entries too.
                StreamId::MAX if group_mode => ReadFrom::New,
                id => ReadFrom::After(id),
            }
        };
        froms.push(from);
    }

    let count = count as usize;
    let mut served: Vec<(Frame, Frame)> = Vec::new();
    let logging = ctx.aof_on();
    let mut effects: Vec<Vec<Bytes>> = Vec::new();
    for (key, from) in keys.iter().zip(&froms) {
        let Some(s) = stream_mut(&mut g, db, key).ok().flatten() else {
            continue;
        };
        // What XREADGROUP changed is logged as Redis logs it: the consumer's creation,
        // an XCLAIM per delivered entry (absolute time, delivery count) and the group's
        // new last ID with its entries-read counter.
        let before = match (logging, group) {
            (true, Some((gname, cname))) => s
                .group(gname)
                .map(|gr| (gr.consumer(cname).is_some(), gr.last_id, gr.entries_read)),
            _ => None,
        };
        let mut delivered: Vec<StreamId> = Vec::new();
        let mut entries = Vec::new();
        match (group, *from) {
            (None, ReadFrom::After(after)) => {
                if s.is_empty() || s.last_valid_id() <= after {
                    continue;
                }
                if let Some(start) = after.incr() {
                    let it = s.range(start, StreamId::MAX, false);
                    if count == 0 {
                        entries.extend(it.map(|e| entry_frame(&e)));
                    } else {
                        entries.extend(it.take(count).map(|e| entry_frame(&e)));
                    }
                }
            }
            (Some((gname, cname)), ReadFrom::New) => {
                let last = s.group(gname).map_or(StreamId::MAX, |gr| gr.last_id);
                if s.is_empty() || s.last_valid_id() <= last {
                    continue;
                }
                // A woken consumer leaves new entries to one queued before it that has
                // its turn (it passes the turn on when done): arrival order.
                if retry && ctx.turn_ahead(key) {
                    continue;
                }
                let had = has_consumer(s, gname, cname);
                s.read_group_new(gname, cname, count, noack, ctx.now, |e| {
                    if !noack {
                        delivered.push(e.id);
                    }
                    entries.push(entry_frame(&e))
                });
                consumer_created(ctx, s, key, had, gname, cname);
            }
            (Some((gname, cname)), ReadFrom::After(after)) => {
                let had = has_consumer(s, gname, cname);
                s.read_group_history(gname, cname, after, count, ctx.now, |id, e| {
                    entries.push(match e {
                        Some(e) => {
                            delivered.push(id);
                            entry_frame(&e)
                        }
                        None => Frame::Array(vec![id_frame(id), Frame::NullArray]),
                    })
                });
                consumer_created(ctx, s, key, had, gname, cname);
            }
            (None, ReadFrom::New) => continue,
        }
        // Redis counts one change per stream it propagated something for (a delivery,
        // the group's new last ID), besides the consumer's creation.
        let propagated = match from {
            ReadFrom::New => !entries.is_empty(),
            ReadFrom::After(_) => !delivered.is_empty(),
        };
        if group.is_some() && propagated {
            ctx.changed(1);
        }
        if let (Some((had_consumer, last_before, read_before)), Some((gname, cname))) =
            (before, group)
            && let Some(gr) = s.group(gname)
        {
            if !had_consumer && gr.consumer(cname).is_some() {
                effects.push(vec![
                    Bytes::from_static(b"XGROUP"),
                    Bytes::from_static(b"CREATECONSUMER"),
                    key.clone(),
                    gname.clone(),
                    cname.clone(),
                ]);
            }
            for id in &delivered {
                if let Some(nack) = gr.pel().get(id) {
                    effects.push(xclaim_effect(key, gname, cname, *id, nack, gr.last_id));
                }
            }
            if gr.last_id != last_before || gr.entries_read != read_before {
                effects.push(setid_effect(key, gname, gr));
            }
        }
        served.push((Frame::Bulk(key.clone()), Frame::Array(entries)));
    }
    if logging {
        if effects.is_empty() {
            ctx.propagate_nothing();
        }
        for e in effects {
            ctx.propagate(e);
        }
    }
    if !served.is_empty() {
        return Ok(read_reply(ctx, served));
    }
    let Some(timeout) = timeout else {
        return Ok(Frame::NullArray);
    };
    if !ctx.can_block() {
        return Ok(Frame::NullArray);
    }
    // Block: re-run later with `$` pinned to the IDs it meant now.
    let mut rerun: Vec<Bytes> = Vec::with_capacity(args.len() + 2);
    rerun.push(args[0].clone());
    if !count_given {
        rerun.push(Bytes::from_static(b"COUNT"));
        rerun.push(Bytes::from_static(BLOCKED_DEFAULT_COUNT));
    }
    rerun.extend(args[1..streams_arg + nstreams].iter().cloned());
    for (id_arg, from) in id_args.iter().zip(&froms) {
        rerun.push(match from {
            ReadFrom::After(id) if &id_arg[..] == b"$" => Bytes::from(id.to_string()),
            _ => id_arg.clone(),
        });
    }
    let mut watchers: Vec<Arc<Watcher>> = Vec::new();
    if group.is_some() {
        // A blocked XREADGROUP learns when its stream goes away.
        for key in keys {
            if let Some(s) = stream_mut(&mut g, db, key).ok().flatten() {
                let reg = ctx.srv.blocking.clone();
                let k = key.clone();
                let w: Arc<Watcher> = Arc::new(move || reg.signal(db, &k));
                s.watch(&w);
                watchers.push(w);
            }
        }
    }
    drop(g);
    let deadline = match timeout {
        0 => None,
        t if t > i64::MAX - ctx.now as i64 => None,
        t => Some(ctx.now + t as u64),
    };
    ctx.block_streams(keys.to_vec(), deadline, rerun, watchers)
}

/// `XCLAIM key group consumer 0 id TIME <ms> RETRYCOUNT <n> FORCE JUSTID LASTID <id>`:
/// how Redis logs a delivery or claim of a pending entry (Redis's
/// `streamPropagateXCLAIM`).
fn xclaim_effect(
    key: &Bytes,
    group: &Bytes,
    consumer: &[u8],
    id: StreamId,
    nack: &basalt_engine::types::stream::Nack,
    last_id: StreamId,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        Bytes::copy_from_slice(consumer),
        Bytes::from_static(b"0"),
        Bytes::from(id.to_string()),
        Bytes::from_static(b"TIME"),
        crate::aof::int_arg(nack.delivery_time),
        Bytes::from_static(b"RETRYCOUNT"),
        crate::aof::int_arg(nack.delivery_count),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        Bytes::from(last_id.to_string()),
    ]
}

/// `XGROUP SETID key group <last id> ENTRIESREAD <n>` (Redis's
/// `streamPropagateGroupID`).
fn setid_effect(
    key: &Bytes,
    group: &Bytes,
    gr: &basalt_engine::types::stream::Group,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        Bytes::from(gr.last_id.to_string()),
        Bytes::from_static(b"ENTRIESREAD"),
        crate::aof::int_arg(gr.entries_read),
    ]
}

/// XREAD's reply: a map from stream name to entries (an array of pairs in RESP2).
fn read_reply(ctx: &Ctx<'_>, served: Vec<(Frame, Frame)>) -> Frame {
    if ctx.client.proto == basalt_proto::Protocol::Resp3 {
        Frame::Map(served)
    } else {
        Frame::Array(
            served
                .into_iter()
                .map(|(k, v)| Frame::Array(vec![k, v]))
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// XGROUP
// ---------------------------------------------------------------------------------------

/// Parses `[MKSTREAM] [ENTRIESREAD n]` (CREATE) or `[ENTRIESREAD n]` (SETID).
fn parse_group_opts(args: &[Bytes], allow_mkstream: bool) -> Result<(bool, i64), Error> {
    let mut mkstream = false;
    let mut entries_read = -1;
    let mut i = 5;
    while i < args.len() {
        if allow_mkstream && is(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if is(&args[i], "entriesread") && i + 1 < args.len() {
            entries_read = int(&args[i + 1])?;
            if entries_read < 0 && entries_read != -1 {
                return Err(Error::msg(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(subcommand_syntax(args));
        }
    }
    Ok((mkstream, entries_read))
}

/// The common checks of XGROUP subcommands: WRONGTYPE, the key must exist (unless
/// `mkstream`), the group must exist (when `need_group`).
fn group_checks<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    args: &[Bytes],
    mkstream: bool,
    need_group: bool,
) -> Result<Option<&'g mut StreamValue>, Error> {
    let s = stream_mut(g, db, &args[2])?;
    if mkstream {
        return Ok(s);
    }
    let Some(s) = s else {
        return Err(Error::msg(XGROUP_NEEDS_KEY));
    };
    if need_group && s.group(&args[3]).is_none() {
        return Err(Error::msg(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(&args[3]),
            String::from_utf8_lossy(&args[2])
        )));
    }
    Ok(Some(s))
}

/// True if `group` of the stream has `consumer`.
fn has_consumer(s: &StreamValue, group: &[u8], consumer: &[u8]) -> bool {
    s.group(group)
        .is_some_and(|g| g.consumer(consumer).is_some())
}

/// Publishes `xgroup-createconsumer` if a read or claim just created the consumer (Redis
/// publishes it when the consumer is made, before the reply).
fn consumer_created(
    ctx: &Ctx<'_>,
    s: &StreamValue,
    key: &[u8],
    had: bool,
    group: &[u8],
    consumer: &[u8],
) {
    if !had && has_consumer(s, group, consumer) {
        ctx.notify_event_only(ev::STREAM, "xgroup-createconsumer", key);
        ctx.changed(1);
    }
}

fn xgroup_create(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mkstream, entries_read) = parse_group_opts(args, true)?;
    let db = ctx.client.db;
    let key = &args[2];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let exists = group_checks(&mut g, db, args, mkstream, false)?.is_some();
    if args.len() > 8 {
        return Err(subcommand_syntax(args));
    }
    let id = if &args[4][..] == b"$" {
        match stream_mut(&mut g, db, key)? {
            Some(s) => s.last_id(),
            None => StreamId::MIN,
        }
    } else {
        strict_id(&args[4])?
    };
    if !exists {
        g.insert(db, key, Value::from(StreamValue::new()), 0);
        // MKSTREAM made the key: that is a modification (WATCH).
        ctx.modified(key);
    }
    let Some(s) = stream_mut(&mut g, db, key)? else {
        return Err(Error::msg(XGROUP_NEEDS_KEY));
    };
    if s.create_group(&args[3], id, entries_read) {
        drop(g);
        ctx.reply_here();
        ctx.notify_event_only(ev::STREAM, "xgroup-create", key);
        Ok(Frame::ok())
    } else {
        Err(Error::msg(BUSYGROUP))
    }
}

fn xgroup_setid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (_, entries_read) = parse_group_opts(args, false)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    let Some(s) = group_checks(&mut g, db, args, false, true)? else {
        return Err(Error::msg(XGROUP_NEEDS_KEY));
    };
    if args.len() != 5 && args.len() != 7 {
        return Err(subcommand_syntax(args));
    }
    let id = if &args[4][..] == b"$" {
        s.last_id()
    } else {
        loose_id(&args[4], 0)?
    };
    if let Some(gr) = s.group_mut(&args[3]) {
        gr.last_id = id;
        gr.entries_read = entries_read;
    }
    drop(g);
    ctx.reply_here();
    ctx.notify_event_only(ev::STREAM, "xgroup-setid", &args[2]);
    Ok(Frame::ok())
}

fn xgroup_destroy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    let Some(s) = group_checks(&mut g, db, args, false, false)? else {
        return Err(Error::msg(XGROUP_NEEDS_KEY));
    };
    let destroyed = s.destroy_group(&args[3]);
    drop(g);
    if destroyed {
        ctx.reply_here();
        ctx.notify_event_only(ev::STREAM, "xgroup-destroy", &args[2]);
        // Clients blocked on the group get their error.
        ctx.signal_ready(db, &args[2]);
    }
    Ok(Frame::Integer(i64::from(destroyed)))
}

fn xgroup_createconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], now);
    let Some(s) = group_checks(&mut g, db, args, false, true)? else {
        return Err(Error::msg(XGROUP_NEEDS_KEY));
    };
    let created = s
        .group_mut(&args[3])
        .is_some_and(|gr| gr.create_consumer(&args[4], now));
    drop(g);
    if created {
        ctx.notify_event_only(ev::STREAM, "xgroup-createconsumer", &args[2]);
    }
    Ok(Frame::Integer(i64::from(created)))
}

fn xgroup_delconsumer(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    let Some(s) = group_checks(&mut g, db, args, false, true)? else {
        return Err(Error::msg(XGROUP_NEEDS_KEY));
    };
    let deleted = s
        .group_mut(&args[3])
        .and_then(|gr| gr.delete_consumer(&args[4]));
    drop(g);
    if deleted.is_some() {
        ctx.notify_event_only(ev::STREAM, "xgroup-delconsumer", &args[2]);
    }
    Ok(Frame::Integer(deleted.unwrap_or(0) as i64))
}

fn help_lines(container: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(Bytes::from(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .map(|l| Frame::Simple(Bytes::copy_from_slice(l.as_bytes()))),
    );
    out.push(Frame::simple("HELP"));
    out.push(Frame::simple("    Prints this help."));
    Frame::Array(out)
}

fn xgroup_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help_lines(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    ))
}

// ---------------------------------------------------------------------------------------
// XACK / XPENDING / XCLAIM / XAUTOCLAIM
// ---------------------------------------------------------------------------------------

fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = stream_mut(&mut g, db, &args[1])? else {
        return Ok(Frame::Integer(0));
    };
    if s.group(&args[2]).is_none() {
        return Ok(Frame::Integer(0));
    }
    let ids = args[3..]
        .iter()
        .map(|a| strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(gr) = s.group_mut(&args[2]) else {
        return Ok(Frame::Integer(0));
    };
    let acked = ids.into_iter().filter(|&id| gr.ack(id)).count();
    ctx.changed(acked as u64);
    Ok(Frame::Integer(acked as i64))
}

fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let justinfo = args.len() == 3;
    if args.len() != 3 && !(6..=9).contains(&args.len()) {
        return Err(Error::msg(error::SYNTAX));
    }
    let mut min_idle: i64 = 0;
    let mut count: i64 = 0;
    let mut start = StreamId::MIN;
    let mut end = StreamId::MAX;
    let mut consumer: Option<&Bytes> = None;
    if args.len() >= 6 {
        let mut at = 3;
        if is(&args[3], "idle") {
            min_idle = int(&args[4])?;
            if args.len() < 8 {
                return Err(Error::msg(error::SYNTAX));
            }
            at += 2;
        }
        count = int(&args[at + 2])?.max(0);
        start = interval_start(&args[at])?;
        end = interval_end(&args[at + 1])?;
        if at + 3 < args.len() {
            consumer = Some(&args[at + 3]);
        }
    }
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], now);
    let s = stream_read(&mut g, db, &args[1])?;
    let Some(gr) = s.and_then(|s| s.group(&args[2])) else {
        return Err(nogroup_key(&args[1], &args[2]));
    };
    if justinfo {
        let pel = gr.pel();
        let (Some((first, _)), Some((last, _))) = (pel.first_key_value(), pel.last_key_value())
        else {
            return Ok(Frame::Array(vec![
                Frame::Integer(0),
                Frame::Null,
                Frame::Null,
                Frame::NullArray,
            ]));
        };
        let consumers: Vec<Frame> = gr
            .consumers()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| {
                Frame::Array(vec![
                    Frame::Bulk(Bytes::copy_from_slice(name)),
                    Frame::Bulk(Bytes::from(c.pel.len().to_string())),
                ])
            })
            .collect();
        return Ok(Frame::Array(vec![
            Frame::Integer(pel.len() as i64),
            id_frame(*first),
            id_frame(*last),
            Frame::Array(consumers),
        ]));
    }
    let ids: Vec<StreamId> = match consumer {
        Some(name) => match gr.consumer(name) {
            Some(c) => c
                .pel
                .range(start..)
                .copied()
                .take_while(|&i| i <= end)
                .collect(),
            None => return Ok(Frame::Array(Vec::new())),
        },
        None => gr
            .pel()
            .range(start..)
            .map(|(k, _)| *k)
            .take_while(|&i| i <= end)
            .collect(),
    };
    let mut out = Vec::new();
    for id in ids {
        if count == 0 {
            break;
        }
        let Some(n) = gr.pel().get(&id) else {
            continue;
        };
        let idle = now as i64 - n.delivery_time as i64;
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        count -= 1;
        out.push(Frame::Array(vec![
            id_frame(id),
            Frame::Bulk(Bytes::copy_from_slice(&n.consumer)),
            Frame::Integer(idle.max(0)),
            Frame::Integer(n.delivery_count as i64),
        ]));
    }
    Ok(Frame::Array(out))
}

fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], now);
    let exists_group =
        stream_read(&mut g, db, &args[1])?.is_some_and(|s| s.group(&args[2]).is_some());
    if !exists_group {
        return Err(nogroup_key(&args[1], &args[2]));
    }
    let min_idle = int_msg(&args[4], "Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match parse_id(&args[j], 0, true, false) {
            Some(p) => ids.push(p.id),
            None => break,
        }
        j += 1;
    }
    let mut opts = ClaimOptions {
        min_idle,
        ..ClaimOptions::default()
    };
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j][..];
        if is(opt, "force") {
            opts.force = true;
        } else if is(opt, "justid") {
            opts.justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            let idle = int_msg(&args[j], "Invalid IDLE option argument for XCLAIM")?;
            opts.delivery_time = Some((now as i64).wrapping_sub(idle));
        } else if is(opt, "time") && more > 0 {
            j += 1;
            opts.delivery_time = Some(int_msg(
                &args[j],
                "Invalid TIME option argument for XCLAIM",
            )?);
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            let n = int_msg(&args[j], "Invalid RETRYCOUNT option argument for XCLAIM")?;
            opts.retry_count = u64::try_from(n).ok();
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            opts.last_id = Some(strict_id(&args[j])?);
        } else {
            return Err(Error::msg(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
        j += 1;
    }
    let Some(s) = stream_mut(&mut g, db, &args[1])? else {
        return Err(nogroup_key(&args[1], &args[2]));
    };
    let logging = ctx.aof_on();
    let before = s.group(&args[2]).map(|gr| {
        let pending: Vec<StreamId> = ids
            .iter()
            .copied()
            .filter(|id| gr.pel().contains_key(id))
            .collect();
        (pending, gr.last_id)
    });
    let mut out = Vec::new();
    let had = has_consumer(s, &args[2], &args[3]);
    let mut claimed = Vec::new();
    s.claim(&args[2], &args[3], &ids, &opts, now, |id, e| {
        claimed.push(id);
        out.push(match e {
            Some(e) => entry_frame(&e),
            None => id_frame(id),
        })
    });
    consumer_created(ctx, s, &args[1], had, &args[2], &args[3]);
    if let (Some((pending, last_before)), Some(gr)) = (&before, s.group(&args[2])) {
        ctx.changed(claim_changes(gr, &claimed, pending, *last_before));
    }
    let effects = match (before.filter(|_| logging), s.group(&args[2])) {
        (Some((pending, last_before)), Some(gr)) => claim_effects(
            &args[1],
            &args[2],
            &args[3],
            gr,
            &claimed,
            &pending,
            last_before,
        ),
        _ => Vec::new(),
    };
    drop(g);
    if logging {
        log_effects(ctx, effects);
    }
    Ok(Frame::Array(out))
}

/// What XCLAIM/XAUTOCLAIM changed, as Redis logs it: an XCLAIM (absolute time, count)
/// per claimed entry, one per pending entry dropped because its stream entry is gone
/// (replayed, it drops it too), and the group's last ID if it moved.
fn claim_effects(
    key: &Bytes,
    group: &Bytes,
    consumer: &Bytes,
    gr: &basalt_engine::types::stream::Group,
    claimed: &[StreamId],
    pending_before: &[StreamId],
    last_before: StreamId,
) -> Vec<Vec<Bytes>> {
    let mut effects = Vec::new();
    for id in claimed {
        if let Some(nack) = gr.pel().get(id) {
            effects.push(xclaim_effect(key, group, consumer, *id, nack, gr.last_id));
        }
    }
    for id in pending_before {
        if !gr.pel().contains_key(id) {
            let gone = basalt_engine::types::stream::Nack {
                consumer: std::sync::Arc::from(&consumer[..]),
                delivery_time: 0,
                delivery_count: 0,
            };
            effects.push(xclaim_effect(key, group, consumer, *id, &gone, gr.last_id));
        }
    }
    if gr.last_id != last_before {
        effects.push(setid_effect(key, group, gr));
    }
    effects
}

/// The changes XCLAIM/XAUTOCLAIM made, as Redis counts them: one per claimed entry and
/// per pending entry dropped because its stream entry is gone; without any, one if
/// LASTID moved the group's last ID.
fn claim_changes(
    gr: &basalt_engine::types::stream::Group,
    claimed: &[StreamId],
    pending_before: &[StreamId],
    last_before: StreamId,
) -> u64 {
    let claimed = claimed
        .iter()
        .filter(|id| gr.pel().contains_key(id))
        .count();
    let dropped = pending_before
        .iter()
        .filter(|id| !gr.pel().contains_key(id))
        .count();
    match (claimed + dropped) as u64 {
        0 => u64::from(gr.last_id != last_before),
        n => n,
    }
}

/// Logs `effects`, or nothing when there are none.
fn log_effects(ctx: &mut Ctx<'_>, effects: Vec<Vec<Bytes>>) {
    if effects.is_empty() {
        ctx.propagate_nothing();
    }
    for e in effects {
        ctx.propagate(e);
    }
}

fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let min_idle = int_msg(&args[4], "Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = interval_start(&args[5])?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "count") && more > 0 {
            // Redis caps COUNT at LONG_MAX / 16 (the size of an ID).
            count = basalt_engine::num::parse_i64(&args[j + 1])
                .filter(|&n| (1..=i64::MAX / 16).contains(&n))
                .ok_or_else(|| Error::msg("ERR COUNT must be > 0"))?;
            j += 1;
        } else if is(&args[j], "justid") {
            justid = true;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        j += 1;
    }
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], now);
    let s = stream_read(&mut g, db, &args[1])?;
    let Some(s) = s.filter(|s| s.group(&args[2]).is_some()) else {
        return Err(nogroup_key(&args[1], &args[2]));
    };
    let logging = ctx.aof_on();
    let last_before = s.group(&args[2]).map_or(StreamId::MIN, |gr| gr.last_id);
    if (count as u64).saturating_mul(16) >= AUTOCLAIM_MAX_BYTES {
        return Err(Error::msg(
            "ERR Insufficient memory, failed allocating transient memory, COUNT too high.",
        ));
    }
    let mut claimed = Vec::new();
    let had = has_consumer(s, &args[2], &args[3]);
    let mut claimed_ids = Vec::new();
    let Some((next, deleted)) = s.autoclaim(
        &args[2],
        &args[3],
        min_idle,
        start,
        count as u64,
        justid,
        now,
        |id, e| {
            claimed_ids.push(id);
            claimed.push(match e {
                Some(e) => entry_frame(&e),
                None => id_frame(id),
            })
        },
    ) else {
        return Err(nogroup_key(&args[1], &args[2]));
    };
    consumer_created(ctx, s, &args[1], had, &args[2], &args[3]);
    if let Some(gr) = s.group(&args[2]) {
        ctx.changed(claim_changes(gr, &claimed_ids, &deleted, last_before));
    }
    let effects = match s.group(&args[2]) {
        Some(gr) if logging => claim_effects(
            &args[1],
            &args[2],
            &args[3],
            gr,
            &claimed_ids,
            &deleted,
            last_before,
        ),
        _ => Vec::new(),
    };
    drop(g);
    if logging {
        log_effects(ctx, effects);
    }
    Ok(Frame::Array(vec![
        id_frame(next),
        Frame::Array(claimed),
        Frame::Array(deleted.into_iter().map(id_frame).collect()),
    ]))
}

// ---------------------------------------------------------------------------------------
// XINFO
// ---------------------------------------------------------------------------------------

fn bulk_str(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn pairs_frame(pairs: Vec<(&str, Frame)>) -> Frame {
    Frame::Map(pairs.into_iter().map(|(k, v)| (bulk_str(k), v)).collect())
}

fn lag_frame(s: &StreamValue, gr: &basalt_engine::types::stream::Group) -> Frame {
    match s.lag(gr) {
        Some(l) => Frame::Integer(l),
        None => Frame::Null,
    }
}

fn entries_read_frame(gr: &basalt_engine::types::stream::Group) -> Frame {
    if gr.entries_read >= 0 {
        Frame::Integer(gr.entries_read)
    } else {
        Frame::Null
    }
}

fn xinfo_stream(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut full = false;
    let mut count: i64 = 10;
    if args.len() > 3 {
        if !is(&args[3], "full") || !(args.len() == 4 || args.len() == 6) {
            return Err(subcommand_syntax(args));
        }
        full = true;
        if args.len() == 6 {
            if !is(&args[4], "count") {
                return Err(subcommand_syntax(args));
            }
            count = int(&args[5])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    let Some(s) = stream_read(&mut g, db, &args[2])? else {
        return Err(Error::msg(error::NO_SUCH_KEY));
    };
    let mut out = vec![
        ("length", Frame::Integer(s.len() as i64)),
        ("radix-tree-keys", Frame::Integer(s.node_count() as i64)),
        ("radix-tree-nodes", Frame::Integer(s.rax_nodes() as i64)),
        ("last-generated-id", id_frame(s.last_id())),
        ("max-deleted-entry-id", id_frame(s.max_deleted_id())),
        ("entries-added", Frame::Integer(s.entries_added() as i64)),
        ("recorded-first-entry-id", id_frame(s.first_id())),
    ];
    if !full {
        out.push(("groups", Frame::Integer(s.group_count() as i64)));
        out.push((
            "first-entry",
            s.first_entry().map_or(Frame::Null, |e| entry_frame(&e)),
        ));
        out.push((
            "last-entry",
            s.last_entry().map_or(Frame::Null, |e| entry_frame(&e)),
        ));
        return Ok(pairs_frame(out));
    }
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    let entries: Vec<Frame> = s
        .range(StreamId::MIN, StreamId::MAX, false)
        .take(limit)
        .map(|e| entry_frame(&e))
        .collect();
    out.push(("entries", Frame::Array(entries)));
    let mut groups = Vec::new();
    for (name, gr) in s.groups() {
        let pel: Vec<Frame> = gr
            .pel()
            .iter()
            .take(limit)
            .map(|(id, n)| {
                Frame::Array(vec![
                    id_frame(*id),
                    Frame::Bulk(Bytes::copy_from_slice(&n.consumer)),
                    Frame::Integer(n.delivery_time as i64),
                    Frame::Integer(n.delivery_count as i64),
                ])
            })
            .collect();
        let consumers: Vec<Frame> = gr
            .consumers()
            .map(|(cname, c)| {
                let pending: Vec<Frame> = c
                    .pel
                    .iter()
                    .take(limit)
                    .filter_map(|id| gr.pel().get(id).map(|n| (id, n)))
                    .map(|(id, n)| {
                        Frame::Array(vec![
                            id_frame(*id),
                            Frame::Integer(n.delivery_time as i64),
                            Frame::Integer(n.delivery_count as i64),
                        ])
                    })
                    .collect();
                pairs_frame(vec![
                    ("name", Frame::Bulk(Bytes::copy_from_slice(cname))),
                    ("seen-time", Frame::Integer(c.seen_time as i64)),
                    ("pel-count", Frame::Integer(c.pel.len() as i64)),
                    ("pending", Frame::Array(pending)),
                ])
            })
            .collect();
        groups.push(pairs_frame(vec![
            ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
            ("last-delivered-id", id_frame(gr.last_id)),
            ("entries-read", entries_read_frame(gr)),
            ("lag", lag_frame(s, gr)),
            ("pel-count", Frame::Integer(gr.pel().len() as i64)),
            ("pending", Frame::Array(pel)),
            ("consumers", Frame::Array(consumers)),
        ]));
    }
    out.push(("groups", Frame::Array(groups)));
    Ok(pairs_frame(out))
}

fn xinfo_groups(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    let Some(s) = stream_read(&mut g, db, &args[2])? else {
        return Err(Error::msg(error::NO_SUCH_KEY));
    };
    let groups: Vec<Frame> = s
        .groups()
        .map(|(name, gr)| {
            pairs_frame(vec![
                ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
                ("consumers", Frame::Integer(gr.consumer_count() as i64)),
                ("pending", Frame::Integer(gr.pel().len() as i64)),
                ("last-delivered-id", id_frame(gr.last_id)),
                ("entries-read", entries_read_frame(gr)),
                ("lag", lag_frame(s, gr)),
            ])
        })
        .collect();
    Ok(Frame::Array(groups))
}

fn xinfo_consumers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let now = ctx.now;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], now);
    let Some(s) = stream_read(&mut g, db, &args[2])? else {
        return Err(Error::msg(error::NO_SUCH_KEY));
    };
    let Some(gr) = s.group(&args[3]) else {
        return Err(Error::msg(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(&args[3]),
            String::from_utf8_lossy(&args[2])
        )));
    };
    let consumers: Vec<Frame> = gr
        .consumers()
        .map(|(name, c)| {
            pairs_frame(vec![
                ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
                ("pending", Frame::Integer(c.pel.len() as i64)),
                (
                    "idle",
                    Frame::Integer((now as i64 - c.seen_time as i64).max(0)),
                ),
            ])
        })
        .collect();
    Ok(Frame::Array(consumers))
}

fn xinfo_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help_lines(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    ))
}
