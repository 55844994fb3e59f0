//! The generic key family: DEL, EXISTS, TYPE, RENAME, COPY, MOVE, KEYS, SCAN,
//! RANDOMKEY, the EXPIRE family, OBJECT, and the database commands (DBSIZE, FLUSHDB,
//! FLUSHALL, SWAPDB, SELECT lives in `connection`).
//!
//! Semantics and errors follow Redis 7.0's db.c and expire.c.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use crate::transaction::Replaced;
use basalt_engine::glob::glob_match;
use basalt_engine::{Reason, StrRef, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;

macro_rules! key_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::KEYSPACE, "generic"; $($t)*)
    };
}

const RW_DELETE: &[&str] = &["RM", "delete"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];

const OBJECT_SUBCOMMANDS: &[Command] = &[
    Command {
        name: "encoding",
        arity: 3,
        flags: READONLY,
        acl: acl::KEYSPACE,
        keys: (2, 2, 1),
        key_specs: &[KeySpec::single(2, RO)],
        since: "2.2.3",
        summary: "Returns the internal encoding of a Redis object.",
        tips: &["nondeterministic_output"],
        handler: Some(object_encoding),
        ..Command::EMPTY
    },
    Command {
        name: "freq",
        arity: 3,
        flags: READONLY,
        acl: acl::KEYSPACE,
        keys: (2, 2, 1),
        key_specs: &[KeySpec::single(2, RO)],
        since: "4.0.0",
        summary: "Returns the logarithmic access frequency counter of a Redis object.",
        tips: &["nondeterministic_output"],
        handler: Some(object_freq),
        ..Command::EMPTY
    },
    Command {
        name: "idletime",
        arity: 3,
        flags: READONLY,
        acl: acl::KEYSPACE,
        keys: (2, 2, 1),
        key_specs: &[KeySpec::single(2, RO)],
        since: "2.2.3",
        summary: "Returns the time since the last access to a Redis object.",
        tips: &["nondeterministic_output"],
        handler: Some(object_idletime),
        ..Command::EMPTY
    },
    Command {
        name: "refcount",
        arity: 3,
        flags: READONLY,
        acl: acl::KEYSPACE,
        keys: (2, 2, 1),
        key_specs: &[KeySpec::single(2, RO)],
        since: "2.2.3",
        summary: "Returns the reference count of a value of a key.",
        tips: &["nondeterministic_output"],
        handler: Some(object_refcount),
        ..Command::EMPTY
    },
    Command {
        name: "help",
        arity: 2,
        flags: LOADING | STALE,
        acl: acl::KEYSPACE,
        since: "6.2.0",
        summary: "Returns helpful text about the different subcommands.",
        handler: Some(object_help),
        ..Command::EMPTY
    },
];

/// The key family's commands.
pub const COMMANDS: &[Command] = &[
    key_cmd!(
        "del",
        -2,
        WRITE,
        (1, -1, 1),
        &[KeySpec::rest(1, 1, RW_DELETE)],
        "1.0.0",
        "Deletes one or more keys.",
        "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).",
        del
    ),
    key_cmd!(
        "unlink",
        -2,
        WRITE | FAST,
        (1, -1, 1),
        &[KeySpec::rest(1, 1, RW_DELETE)],
        "4.0.0",
        "Asynchronously deletes one or more keys.",
        "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.",
        unlink
    ),
    key_cmd!(
        "exists",
        -2,
        READONLY | FAST,
        (1, -1, 1),
        &[KeySpec::rest(1, 1, RO)],
        "1.0.0",
        "Determines whether one or more keys exist.",
        "O(N) where N is the number of keys to check.",
        exists
    ),
    key_cmd!(
        "type",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "1.0.0",
        "Determines the type of value stored at a key.",
        "O(1)",
        type_cmd
    ),
    key_cmd!(
        "rename",
        3,
        WRITE,
        (1, 2, 1),
        &[
            KeySpec::single(1, &["RW", "access", "delete"]),
            KeySpec::single(2, &["OW", "update"])
        ],
        "1.0.0",
        "Renames a key and overwrites the destination.",
        "O(1)",
        rename
    ),
    key_cmd!(
        "renamenx",
        3,
        WRITE | FAST,
        (1, 2, 1),
        &[
            KeySpec::single(1, &["RW", "access", "delete"]),
            KeySpec::single(2, &["OW", "insert"])
        ],
        "1.0.0",
        "Renames a key only when the target key name doesn't exist.",
        "O(1)",
        renamenx
    ),
    key_cmd!(
        "copy",
        -3,
        WRITE | DENYOOM,
        (1, 2, 1),
        &[
            KeySpec::single(1, RO_ACCESS),
            KeySpec::single(2, &["OW", "update"])
        ],
        "6.2.0",
        "Copies the value of a key to a new key.",
        "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
        copy
    ),
    key_cmd!(
        "move",
        3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "1.0.0",
        "Moves a key to another database.",
        "O(1)",
        move_cmd
    ),
    Command {
        acl: acl::KEYSPACE | acl::DANGEROUS,
        tips: &["request_policy:all_shards", "nondeterministic_output_order"],
        ..key_cmd!(
            "keys",
            2,
            READONLY,
            (0, 0, 0),
            &[],
            "1.0.0",
            "Returns all key names that match a pattern.",
            "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
            keys
        )
    },
    Command {
        tips: &["nondeterministic_output", "request_policy:special"],
        ..key_cmd!(
            "scan",
            -2,
            READONLY,
            (0, 0, 0),
            &[],
            "2.8.0",
            "Iterates over the key names in the database.",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
            scan
        )
    },
    Command {
        tips: &["request_policy:all_shards", "nondeterministic_output"],
        ..key_cmd!(
            "randomkey",
            1,
            READONLY,
            (0, 0, 0),
            &[],
            "1.0.0",
            "Returns a random key name from the database.",
            "O(1)",
            randomkey
        )
    },
    key_cmd!(
        "expire",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "1.0.0",
        "Sets the expiration time of a key in seconds.",
        "O(1)",
        expire
    ),
    key_cmd!(
        "pexpire",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
        "O(1)",
        pexpire
    ),
    key_cmd!(
        "expireat",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
        "O(1)",
        expireat
    ),
    key_cmd!(
        "pexpireat",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "O(1)",
        pexpireat
    ),
    key_cmd!(
        "ttl",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "1.0.0",
        "Returns the expiration time in seconds of a key.",
        "O(1)",
        ttl
    ),
    key_cmd!(
        "pttl",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "2.6.0",
        "Returns the expiration time in milliseconds of a key.",
        "O(1)",
        pttl
    ),
    key_cmd!(
        "expiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.",
        "O(1)",
        expiretime
    ),
    key_cmd!(
        "pexpiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        "O(1)",
        pexpiretime
    ),
    key_cmd!(
        "persist",
        2,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "2.2.0",
        "Removes the expiration time of a key.",
        "O(1)",
        persist
    ),
    key_cmd!(
        "touch",
        -2,
        READONLY | FAST,
        (1, -1, 1),
        &[KeySpec::rest(1, 1, RO)],
        "3.2.1",
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        "O(N) where N is the number of keys that will be touched.",
        touch
    ),
    Command {
        name: "object",
        arity: -2,
        group: "generic",
        since: "2.2.3",
        summary: "A container for object introspection commands.",
        complexity: "Depends on subcommand.",
        subcommands: OBJECT_SUBCOMMANDS,
        ..Command::EMPTY
    },
    Command {
        name: "dbsize",
        arity: 1,
        flags: READONLY | FAST,
        acl: acl::KEYSPACE,
        group: "server",
        since: "1.0.0",
        summary: "Returns the number of keys in the database.",
        tips: &["request_policy:all_shards", "response_policy:agg_sum"],
        handler: Some(dbsize),
        ..Command::EMPTY
    },
    Command {
        name: "flushdb",
        arity: -1,
        flags: WRITE,
        acl: acl::KEYSPACE | acl::DANGEROUS,
        group: "server",
        since: "1.0.0",
        summary: "Remove all keys from the current database.",
        complexity: "O(N) where N is the number of keys in the selected database",
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        handler: Some(flushdb),
        ..Command::EMPTY
    },
    Command {
        name: "flushall",
        arity: -1,
        flags: WRITE,
        acl: acl::KEYSPACE | acl::DANGEROUS,
        group: "server",
        since: "1.0.0",
        summary: "Removes all keys from all databases.",
        complexity: "O(N) where N is the total number of keys in all databases",
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        handler: Some(flushall),
        ..Command::EMPTY
    },
    Command {
        name: "swapdb",
        arity: 3,
        flags: WRITE | FAST,
        acl: acl::KEYSPACE | acl::DANGEROUS,
        group: "server",
        since: "4.0.0",
        summary: "Swaps two Redis databases.",
        complexity: "O(N) where N is the count of clients watching or blocking on keys from both databases.",
        handler: Some(swapdb),
        ..Command::EMPTY
    },
];

fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Lazy only under `lazyfree-lazy-user-del yes`.
    delete_keys(ctx, args, Reason::UserDel)
}

/// UNLINK: removes the keys now, frees big values on the lazy-free thread.
fn unlink(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    delete_keys(ctx, args, Reason::Always)
}

fn delete_keys(ctx: &mut Ctx<'_>, args: &[Bytes], reason: Reason) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    let mut n = 0;
    // Deleting a lease limiter frees every place, deleting a lock, semaphore or election
    // frees it: their waiters (RL.LEASE, LOCK.ACQUIRE, ELECT.CAMPAIGN...) must learn of
    // it (looked up only while someone is blocked at all).
    let anyone_blocked = ctx.srv.blocking.blocked_clients() > 0;
    for k in &args[1..] {
        let value = g.peek(db, k).and_then(|e| e.value().as_other());
        let leases = anyone_blocked && matches!(value, Some(Value::RateLimit(_) | Value::Lock(_)));
        // The sessions holding a deleted lock's grants hold nothing here any more.
        let sessions = match value {
            Some(Value::Lock(l)) => crate::families::coord::session_ids(l),
            _ => Vec::new(),
        };
        if let Some(v @ Value::Queue(_)) = value {
            crate::families::jobs::removed(ctx.srv, v, db, k);
        }
        if g.delete(db, k, reason) {
            ctx.srv.coord.drop_held(&sessions, db, k);
            ctx.notify(ev::GENERIC, "del", k);
            if leases {
                ctx.signal_ready(db, k);
            }
            n += 1;
        }
    }
    ctx.changed(n as u64);
    Ok(Frame::Integer(n))
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    // A read lookup, as Redis's EXISTS: counts hits/misses and notifies `keymiss`.
    let n = args[1..]
        .iter()
        .filter(|k| g.lookup_read(db, k).is_some())
        .count();
    Ok(Frame::Integer(n as i64))
}

fn touch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    let n = args[1..].iter().filter(|k| g.get(db, k).is_some()).count();
    Ok(Frame::Integer(n as i64))
}

fn type_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let name = match g.get(db, &args[1]) {
        None => "none",
        Some(e) => e.value().type_name(),
    };
    Ok(Frame::simple(name))
}

fn rename_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> CmdResult {
    let db = ctx.client.db;
    let (src, dst) = (&args[1], &args[2]);
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..3], ctx.now);
    if !g.exists(db, src) {
        return Err(Error::msg(error::NO_SUCH_KEY));
    }
    if src == dst {
        return Ok(if nx { Frame::Integer(0) } else { Frame::ok() });
    }
    if nx && g.exists(db, dst) {
        return Ok(Frame::Integer(0));
    }
    let Some(mut entry) = g.remove(db, src) else {
        return Err(Error::msg(error::NO_SUCH_KEY));
    };
    let expire_at = entry.expire_at();
    if let Value::Stream(s) = &mut entry.value {
        // Clients blocked in XREADGROUP on `src` learn that it is gone.
        s.fire_watchers();
    }
    // Redis deletes an existing destination, then adds the key anew (a `new` event).
    if let Some(old) = g.remove(db, dst) {
        crate::families::coord::removed(ctx.srv, &old.value, db, dst);
        crate::families::jobs::removed(ctx.srv, &old.value, db, dst);
    }
    // A lock's sessions follow it to its new name.
    crate::families::coord::moved(ctx.srv, &entry.value, (db, src), (db, dst));
    crate::families::jobs::moved(ctx.srv, &entry.value, (db, src), (db, dst));
    g.insert(db, dst, entry.value, expire_at);
    ctx.notify(ev::GENERIC, "rename_from", src);
    ctx.notify(ev::GENERIC, "rename_to", dst);
    drop(g);
    ctx.signal_ready(db, dst);
    Ok(if nx { Frame::Integer(1) } else { Frame::ok() })
}

fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, true)
}

/// Parses a database index argument (`SELECT`, `MOVE`, `COPY DB`).
pub fn db_index(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, Error> {
    let v = args::int(arg)?;
    if v < i64::from(i32::MIN) || v > i64::from(i32::MAX) {
        return Err(Error::msg(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if v < 0 || v >= ctx.srv.keyspace.databases() as i64 {
        return Err(Error::msg(error::DB_OUT_OF_RANGE));
    }
    Ok(v as usize)
}

fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            dst_db = db_index(ctx, &args[i + 1])?;
            i += 1;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 1;
    }
    let (src, dst) = (&args[1], &args[2]);
    if src == dst && src_db == dst_db {
        return Err(Error::msg(
            "ERR source and destination objects are the same",
        ));
    }
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..3], ctx.now);
    let Some(entry) = g.get(src_db, src) else {
        return Ok(Frame::Integer(0));
    };
    let (value, expire_at) = (entry.value().to_value(), entry.expire_at());
    let exists = g.exists(dst_db, dst);
    if exists && !replace {
        return Ok(Frame::Integer(0));
    }
    // A held lock, semaphore or election is not copied (a grant belongs to one key);
    // judged, as Redis calls a module type's copy, after the destination check.
    let value = crate::families::coord::copy_of(value, ctx.now)?;
    if exists && let Some(old) = g.remove(dst_db, dst) {
        crate::families::coord::removed(ctx.srv, &old.value, dst_db, dst);
        crate::families::jobs::removed(ctx.srv, &old.value, dst_db, dst);
    }
    g.insert(dst_db, dst, value, expire_at);
    ctx.notify_db(ev::GENERIC, "copy_to", dst, dst_db);
    drop(g);
    ctx.signal_ready(dst_db, dst);
    Ok(Frame::Integer(1))
}

fn move_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let src_db = ctx.client.db;
    let dst_db = db_index(ctx, &args[2])?;
    if src_db == dst_db {
        return Err(Error::msg(
            "ERR source and destination objects are the same",
        ));
    }
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    if !g.exists(src_db, key) || g.exists(dst_db, key) {
        return Ok(Frame::Integer(0));
    }
    let Some(mut entry) = g.remove(src_db, key) else {
        return Ok(Frame::Integer(0));
    };
    let expire_at = entry.expire_at();
    if let Value::Stream(s) = &mut entry.value {
        s.fire_watchers();
    }
    crate::families::coord::moved(ctx.srv, &entry.value, (src_db, key), (dst_db, key));
    crate::families::jobs::moved(ctx.srv, &entry.value, (src_db, key), (dst_db, key));
    g.insert(dst_db, key, entry.value, expire_at);
    ctx.notify_db(ev::GENERIC, "move_from", key, src_db);
    ctx.notify_db(ev::GENERIC, "move_to", key, dst_db);
    drop(g);
    ctx.signal_ready(dst_db, key);
    Ok(Frame::Integer(1))
}

fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let mut out = Vec::new();
    let g = ctx.srv.keyspace.lock_all(ctx.now);
    g.for_each_key(db, |k, _| {
        if all || glob_match(pattern, k, false) {
            out.push(Frame::bulk(k));
        }
    });
    Ok(Frame::Array(out))
}

fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[1])?;
    let args::ScanOptions {
        count,
        pattern,
        type_filter,
    } = args::scan_options(args, 2, true)?;
    let db = ctx.client.db;
    let mut out = Vec::new();
    let next = ctx.srv.keyspace.scan(db, cursor, count, ctx.now, |k, e| {
        if let Some(p) = pattern
            && !glob_match(p, k, false)
        {
            return;
        }
        if let Some(t) = &type_filter
            && e.value().type_name() != t
        {
            return;
        }
        out.push(Frame::bulk(k));
    });
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(out),
    ]))
}

/// Parses a SCAN cursor as Redis does with `strtoul`: optional sign (a negative value
/// wraps around), decimal digits, nothing after them, no leading space, no overflow. The
/// empty string is cursor 0.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, Error> {
    let invalid = || Error::msg("ERR invalid cursor");
    let (neg, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() {
        // strtoul consumed nothing: only the empty string leaves nothing after it.
        return if arg.is_empty() {
            Ok(0)
        } else {
            Err(invalid())
        };
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

fn randomkey(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_all(ctx.now);
    Ok(match g.random_key(db) {
        Some(k) => Frame::Bulk(k),
        None => Frame::Null,
    })
}

const EXPIRE_NX: u8 = 1;
const EXPIRE_XX: u8 = 2;
const EXPIRE_GT: u8 = 4;
const EXPIRE_LT: u8 = 8;

fn expire_generic(ctx: &mut Ctx<'_>, args: &[Bytes], basetime: i64, unit_ms: i64) -> CmdResult {
    let mut flag = 0u8;
    for opt in &args[3..] {
        flag |= if is(opt, "nx") {
            EXPIRE_NX
        } else if is(opt, "xx") {
            EXPIRE_XX
        } else if is(opt, "gt") {
            EXPIRE_GT
        } else if is(opt, "lt") {
            EXPIRE_LT
        } else {
            return Err(Error::msg(format!(
                "ERR Unsupported option {}",
                args::text(opt)
            )));
        };
    }
    if flag & EXPIRE_NX != 0 && flag & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT) != 0 {
        return Err(Error::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if flag & EXPIRE_GT != 0 && flag & EXPIRE_LT != 0 {
        return Err(Error::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let mut when = args::int(&args[2])?;
    if unit_ms == 1000 {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return Err(Error::expire_time(ctx.fullname));
        }
        when *= 1000;
    }
    if when > i64::MAX - basetime {
        return Err(Error::expire_time(ctx.fullname));
    }
    when += basetime;
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(current) = g.get(db, key).map(|e| e.expire_at()) else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    };
    let current: i64 = if current == 0 { -1 } else { current as i64 };
    if (flag & EXPIRE_NX != 0 && current != -1)
        || (flag & EXPIRE_XX != 0 && current == -1)
        || (flag & EXPIRE_GT != 0 && (when <= current || current == -1))
        || (flag & EXPIRE_LT != 0 && current != -1 && when >= current)
    {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    }
    // Logged with the absolute deadline (PEXPIREAT), or as DEL when it already passed.
    let deleted = when <= ctx.now as i64;
    if deleted {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    } else {
        g.set_expire(db, key, when as u64);
        ctx.reply_here();
        ctx.notify(ev::GENERIC, "expire", key);
    }
    drop(g);
    if ctx.aof_on() {
        let key = key.clone();
        ctx.propagate(if deleted {
            vec![Bytes::from_static(b"DEL"), key]
        } else {
            vec![
                Bytes::from_static(b"PEXPIREAT"),
                key,
                crate::aof::int_arg(when),
            ]
        });
    }
    Ok(Frame::Integer(1))
}

fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now as i64;
    expire_generic(ctx, args, now, 1000)
}

fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now as i64;
    expire_generic(ctx, args, now, 1)
}

fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 0, 1000)
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 0, 1)
}

/// Reads a key's deadline: `Err(-2)` if missing, `Err(-1)` if persistent.
fn deadline(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<u64, i64> {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    match g.lookup_read(db, key).map(|e| e.expire_at()) {
        None => Err(-2),
        Some(0) => Err(-1),
        Some(t) => Ok(t),
    }
}

fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], ms: bool) -> CmdResult {
    Ok(Frame::Integer(match deadline(ctx, key) {
        Err(code) => code,
        Ok(t) => {
            let left = t.saturating_sub(ctx.now) as i64;
            if ms { left } else { (left + 500) / 1000 }
        }
    }))
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, &args[1], false)
}

fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, &args[1], true)
}

fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(match deadline(ctx, &args[1]) {
        Err(code) => code,
        Ok(t) => (t.saturating_add(500) / 1000) as i64,
    }))
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(match deadline(ctx, &args[1]) {
        Err(code) => code,
        Ok(t) => t as i64,
    }))
}

fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    match g.get(db, &args[1]).map(|e| e.expire_at()) {
        Some(t) if t != 0 => {
            g.set_expire(db, &args[1], 0);
            ctx.notify(ev::GENERIC, "persist", &args[1]);
            Ok(Frame::Integer(1))
        }
        _ => Ok(Frame::Integer(0)),
    }
}

fn object_encoding(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    Ok(match g.get(db, &args[2]) {
        None => Frame::Null,
        Some(e) => Frame::bulk(e.value().encoding().as_bytes()),
    })
}

fn lfu_policy(ctx: &Ctx<'_>) -> bool {
    ctx.srv.keyspace.policy().is_lfu()
}

fn object_freq(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lfu = lfu_policy(ctx);
    let decay = ctx.srv.keyspace.lfu_decay_time();
    let (db, now) = (ctx.client.db, ctx.now);
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    // Reading the counter is not an access (Redis looks the key up with NOTOUCH).
    let Some(freq) = g.peek(db, &args[2]).map(|e| e.lfu_freq(now, decay)) else {
        return Ok(Frame::Null);
    };
    if !lfu {
        return Err(Error::msg(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    Ok(Frame::Integer(i64::from(freq)))
}

fn object_idletime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lfu = lfu_policy(ctx);
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    // Reading the idle time must not count as an access.
    let Some(secs) = peek_idle(&mut g, db, &args[2]) else {
        return Ok(Frame::Null);
    };
    if lfu {
        return Err(Error::msg(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    Ok(Frame::Integer(secs as i64))
}

/// Seconds since the key's last access (Redis's `estimateObjectIdleTime`, with its
/// 24-bit clock's wrap-around), without counting this look-up as one.
fn peek_idle(g: &mut basalt_engine::Guard<'_>, db: usize, key: &[u8]) -> Option<u64> {
    let now = g.now();
    g.peek(db, key).map(|e| e.idle_secs(now))
}

fn object_refcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[2], ctx.now);
    Ok(match g.get(db, &args[2]) {
        None => Frame::Null,
        // Redis shares the objects of small integers (0..10000) and reports them with
        // the "shared" refcount INT_MAX.
        Some(e) => Frame::Integer(match e.into_value() {
            ValueRef::Str(StrRef::Int(i)) if (0..10_000).contains(&i) => i64::from(i32::MAX),
            _ => 1,
        }),
    })
}

fn object_help(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    ))
}

/// The reply of a `HELP` subcommand, as Redis's addReplyHelp builds it.
pub fn help_reply(container: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(Bytes::from(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .map(|l| Frame::Simple(Bytes::copy_from_slice(l.as_bytes()))),
    );
    out.push(Frame::simple("HELP"));
    out.push(Frame::simple("    Print this help."));
    Frame::Array(out)
}

fn dbsize(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let n: usize = ctx.srv.keyspace.db_sizes()[db].0;
    Ok(Frame::Integer(n as i64))
}

/// True for ASYNC, false for SYNC; without a mode, `lazyfree-lazy-user-flush` decides.
fn flush_mode(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<bool, Error> {
    match args.len() {
        1 => Ok(ctx.srv.keyspace.lazyfree().is_lazy(Reason::UserFlush)),
        2 if is(&args[1], "async") => Ok(true),
        2 if is(&args[1], "sync") => Ok(false),
        _ => Err(Error::msg(error::SYNTAX)),
    }
}

/// Touches the keys watched in `db` that a flush deletes.
fn touch_flushed(srv: &crate::server::Server, g: &mut basalt_engine::Guard<'_>, db: usize) {
    srv.watches.touch_db(db, |k| Replaced {
        existed: g.stored(db, k).is_some(),
        replacement: None,
    });
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(ctx, args)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_all(ctx.now);
    touch_flushed(ctx.srv, &mut g, db);
    // Redis counts the keys removed (expired ones not yet reclaimed included).
    ctx.changed(g.db_len(db) as u64);
    g.flush_db_with(db, lazy);
    // The sessions' grants there went with the values.
    ctx.srv.coord.flush_db(Some(db));
    ctx.srv.jobs.flush_db(Some(db));
    Ok(Frame::ok())
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(ctx, args)?;
    let mut g = ctx.srv.keyspace.lock_all(ctx.now);
    let mut removed = 0;
    for db in 0..ctx.srv.keyspace.databases() {
        touch_flushed(ctx.srv, &mut g, db);
        removed += g.db_len(db) as u64;
        g.flush_db_with(db, lazy);
    }
    ctx.srv.coord.flush_db(None);
    ctx.srv.jobs.flush_db(None);
    drop(g);
    // The keys removed count as changes before the save below, which takes them (as
    // Redis's flushAllDataAndResetRDB): with save points the count is 0 afterwards.
    ctx.srv.persist.note_changes(removed);
    ctx.changed(0);
    // As Redis: a running background save is stopped, and with save points the (now
    // empty) dataset is saved at once, so a restart does not bring the data back.
    crate::persist::after_flushall(ctx.srv);
    Ok(Frame::ok())
}

fn swapdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = basalt_engine::num::parse_i64(&args[1])
        .ok_or_else(|| Error::msg("ERR invalid first DB index"))?;
    let b = basalt_engine::num::parse_i64(&args[2])
        .ok_or_else(|| Error::msg("ERR invalid second DB index"))?;
    let n = ctx.srv.keyspace.databases() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(Error::msg(error::DB_OUT_OF_RANGE));
    }
    if a != b {
        let (a, b) = (a as usize, b as usize);
        let mut g = ctx.srv.keyspace.lock_all(ctx.now);
        // Watched keys are judged against both databases before the swap.
        for (from, to) in [(a, b), (b, a)] {
            ctx.srv.watches.touch_db(from, |k| Replaced {
                existed: g.stored(from, k).is_some(),
                replacement: g.stored(to, k),
            });
        }
        g.swap_db(a, b);
        // Sessions hold their locks wherever the swap put them.
        ctx.srv.coord.swap_db(a, b);
        ctx.srv.jobs.swap_db(a, b);
        drop(g);
        ctx.srv.blocking.signal_db(a);
        ctx.srv.blocking.signal_db(b);
    }
    // One change, even for a database swapped with itself (Redis).
    ctx.changed(1);
    Ok(Frame::ok())
}
