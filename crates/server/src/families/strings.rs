//! The string family: GET, SET and its options, counters, ranges, LCS.
//!
//! Semantics, reply shapes and error strings follow Redis 7.0's t_string.c; every
//! handler parses its arguments fully before touching the keyspace, so a syntax error
//! never leaves a half-applied write.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{Command, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::{EntryMut, Guard, StrRef, StrValue, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;

const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];

macro_rules! string_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::STRING, "string"; $($t)*)
    };
}

/// The string family's commands.
pub const COMMANDS: &[Command] = &[
    string_cmd!(
        "get",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "1.0.0",
        "Returns the string value of a key.",
        "O(1)",
        get
    ),
    string_cmd!(
        "set",
        -3,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(
            1,
            &["RW", "access", "update", "variable_flags"]
        )],
        "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        "O(1)",
        set
    ),
    string_cmd!(
        "setnx",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["OW", "insert"])],
        "1.0.0",
        "Set the string value of a key only when the key doesn't exist.",
        "O(1)",
        setnx
    ),
    string_cmd!(
        "setex",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, &["OW", "update"])],
        "2.0.0",
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        "O(1)",
        setex
    ),
    string_cmd!(
        "psetex",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, &["OW", "update"])],
        "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        "O(1)",
        psetex
    ),
    string_cmd!(
        "mset",
        -3,
        WRITE | DENYOOM,
        (1, -1, 2),
        &[KeySpec::rest(1, 2, &["OW", "update"])],
        "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
        "O(N) where N is the number of keys to set.",
        mset
    ),
    string_cmd!(
        "msetnx",
        -3,
        WRITE | DENYOOM,
        (1, -1, 2),
        &[KeySpec::rest(1, 2, &["OW", "insert"])],
        "1.0.1",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        "O(N) where N is the number of keys to set.",
        msetnx
    ),
    string_cmd!(
        "mget",
        -2,
        READONLY | FAST,
        (1, -1, 1),
        &[KeySpec::rest(1, 1, RO_ACCESS)],
        "1.0.0",
        "Atomically returns the string values of one or more keys.",
        "O(N) where N is the number of keys to retrieve.",
        mget
    ),
    string_cmd!(
        "getset",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.",
        "O(1)",
        getset
    ),
    string_cmd!(
        "getdel",
        2,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "access", "delete"])],
        "6.2.0",
        "Returns the string value of a key after deleting the key.",
        "O(1)",
        getdel
    ),
    string_cmd!(
        "delifeq",
        3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RM", "delete"])],
        "9.0.0",
        "Deletes the key if it holds a string equal to the given value (Basalt, as Valkey 9.0).",
        "O(1)",
        delifeq
    ),
    string_cmd!(
        "getex",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "6.2.0",
        "Returns the string value of a key after setting its expiration time.",
        "O(1)",
        getex
    ),
    string_cmd!(
        "append",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "insert"])],
        "2.0.0",
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.",
        append
    ),
    string_cmd!(
        "strlen",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RO"])],
        "2.2.0",
        "Returns the length of a string value.",
        "O(1)",
        strlen
    ),
    string_cmd!(
        "incr",
        2,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "1.0.0",
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        "O(1)",
        incr
    ),
    string_cmd!(
        "decr",
        2,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "1.0.0",
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        "O(1)",
        decr
    ),
    string_cmd!(
        "incrby",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "1.0.0",
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "O(1)",
        incrby
    ),
    string_cmd!(
        "decrby",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "1.0.0",
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        "O(1)",
        decrby
    ),
    string_cmd!(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "2.6.0",
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "O(1)",
        incrbyfloat
    ),
    string_cmd!(
        "getrange",
        4,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "2.4.0",
        "Returns a substring of the string stored at a key.",
        "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
        getrange
    ),
    string_cmd!(
        "substr",
        4,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "1.0.0",
        "Returns a substring from a string value.",
        "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
        getrange
    ),
    string_cmd!(
        "setrange",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "update"])],
        "2.2.0",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
        setrange
    ),
    string_cmd!(
        "lcs",
        -3,
        READONLY,
        (1, 2, 1),
        &[KeySpec {
            notes: "",
            flags: RO_ACCESS,
            begin: crate::cmd::BeginSearch::Index(1),
            find: crate::cmd::FindKeys::Range {
                lastkey: 1,
                step: 1,
                limit: 0
            }
        }],
        "7.0.0",
        "Finds the longest common substring.",
        "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        lcs
    ),
];

/// Reads a string value: `Ok(None)` if missing, WRONGTYPE if not a string.
pub fn read_string(g: &mut Guard<'_>, db: usize, key: &[u8]) -> Result<Option<Bytes>, Error> {
    match g.lookup_read(db, key) {
        None => Ok(None),
        Some(e) => Ok(Some(str_ref(e.value())?.with_bytes(Bytes::copy_from_slice))),
    }
}

/// The string of a value, or WRONGTYPE.
pub fn str_ref(v: ValueRef<'_>) -> Result<StrRef<'_>, Error> {
    v.as_str().ok_or_else(|| Error::msg(error::WRONGTYPE))
}

/// A string's buffer for in-place edits (the string becomes `raw`), or WRONGTYPE.
pub fn raw_mut<'a>(e: &'a mut EntryMut<'_>) -> Result<&'a mut Vec<u8>, Error> {
    e.raw_mut().ok_or_else(|| Error::msg(error::WRONGTYPE))
}

fn bulk_or_null(v: Option<Bytes>) -> Frame {
    match v {
        Some(b) => Frame::Bulk(b),
        None => Frame::Null,
    }
}

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(bulk_or_null(read_string(&mut g, ctx.client.db, &args[1])?))
}

/// Expiry options shared by SET and GETEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireOpt {
    None,
    Ex,
    Px,
    ExAt,
    PxAt,
    KeepTtl,
    Persist,
}

struct SetArgs {
    nx: bool,
    xx: bool,
    get: bool,
    /// `IFEQ old`: write only over a string equal to `old` (Valkey 8.1's option).
    ifeq: Option<Bytes>,
    /// `IFFENCE lockkey fence`: write only if the fence may still write under the lock at
    /// `lockkey` (Basalt's fencing check, see `docs/coordination.md`).
    iffence: Option<(Bytes, u64)>,
    expire: ExpireOpt,
    /// Absolute deadline in Unix ms (when `expire` is Ex/Px/ExAt/PxAt).
    when: i64,
}

/// Parses SET/GETEX options as Redis's parseExtendedStringArgumentsOrReply, then the
/// expire value as getExpireMillisecondsOrReply.
fn parse_set_args(
    ctx: &Ctx<'_>,
    args: &[Bytes],
    from: usize,
    is_set: bool,
) -> Result<SetArgs, Error> {
    let mut a = SetArgs {
        nx: false,
        xx: false,
        get: false,
        ifeq: None,
        iffence: None,
        expire: ExpireOpt::None,
        when: 0,
    };
    let mut expire_arg: Option<&Bytes> = None;
    let mut i = from;
    while i < args.len() {
        let opt = &args[i];
        let next = args.get(i + 1);
        // As in Redis, an expire option conflicts with the other kinds but may repeat
        // itself (the last value wins).
        let kind = if is(opt, "ex") {
            Some(ExpireOpt::Ex)
        } else if is(opt, "px") {
            Some(ExpireOpt::Px)
        } else if is(opt, "exat") {
            Some(ExpireOpt::ExAt)
        } else if is(opt, "pxat") {
            Some(ExpireOpt::PxAt)
        } else if is_set && is(opt, "keepttl") {
            Some(ExpireOpt::KeepTtl)
        } else if !is_set && is(opt, "persist") {
            Some(ExpireOpt::Persist)
        } else {
            None
        };
        let compatible = |k: ExpireOpt| a.expire == ExpireOpt::None || a.expire == k;
        if is_set && is(opt, "nx") && !a.xx && a.ifeq.is_none() {
            a.nx = true;
        } else if is_set && is(opt, "xx") && !a.nx && a.ifeq.is_none() {
            a.xx = true;
        } else if is_set
            && is(opt, "ifeq")
            && !a.nx
            && !a.xx
            && let Some(old) = next
        {
            // IFEQ conflicts with NX and XX (a syntax error, as in Valkey).
            a.ifeq = Some(old.clone());
            i += 1;
        } else if is_set
            && is(opt, "iffence")
            && a.iffence.is_none()
            && let (Some(lock), Some(fence)) = (next, args.get(i + 2))
        {
            a.iffence = Some((lock.clone(), crate::families::coord::parse_fence(fence)?));
            i += 2;
        } else if is_set && is(opt, "get") {
            a.get = true;
        } else if let Some(k @ (ExpireOpt::KeepTtl | ExpireOpt::Persist)) = kind
            && compatible(k)
        {
            a.expire = k;
        } else if let Some(k) = kind
            && compatible(k)
            && next.is_some()
        {
            a.expire = k;
            expire_arg = next;
            i += 1;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 1;
    }
    if let Some(raw) = expire_arg {
        let v = args::int(raw)?;
        let seconds = matches!(a.expire, ExpireOpt::Ex | ExpireOpt::ExAt);
        if v <= 0 || (seconds && v > i64::MAX / 1000) {
            return Err(Error::expire_time(ctx.fullname));
        }
        let mut ms = if seconds { v * 1000 } else { v };
        if matches!(a.expire, ExpireOpt::Ex | ExpireOpt::Px) {
            ms = ms
                .checked_add(ctx.now as i64)
                .ok_or_else(|| Error::expire_time(ctx.fullname))?;
        }
        a.when = ms;
    }
    Ok(a)
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_set_args(ctx, args, 3, true)?;
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = match &a.iffence {
        Some((lock, _)) => ctx
            .srv
            .keyspace
            .lock_keys(&[key.as_ref(), lock.as_ref()], ctx.now),
        None => ctx.srv.keyspace.lock_key(key, ctx.now),
    };
    // IFFENCE: a stale fence (or a lock key that is missing or not a lock) writes nothing.
    let fence_fails = match &a.iffence {
        Some((lock, fence)) => !crate::families::coord::check_fence(&mut g, db, lock, *fence)?,
        None => false,
    };
    let old = if a.get {
        // SET ... GET replies with the old value before it writes (and notifies).
        let v = read_string(&mut g, db, key)?;
        ctx.reply_here();
        Some(v)
    } else {
        None
    };
    // IFEQ compares with the current string; any other type is an error, as in Valkey.
    let ifeq_fails = match &a.ifeq {
        Some(want) => match &old {
            Some(v) => v.as_deref() != Some(want.as_ref()),
            None => read_string(&mut g, db, key)?.as_deref() != Some(want.as_ref()),
        },
        None => false,
    };
    // A plain SET needs no lookup before the insert, which replaces whatever is there.
    let existing = if a.nx || a.xx || a.expire == ExpireOpt::KeepTtl {
        g.get(db, key).map(|e| e.expire_at())
    } else {
        None
    };
    if fence_fails || ifeq_fails || (a.nx && existing.is_some()) || (a.xx && existing.is_none()) {
        drop(g);
        ctx.propagate_nothing();
        return Ok(match old {
            Some(v) => bulk_or_null(v),
            None => Frame::Null,
        });
    }
    let expire_at = match a.expire {
        ExpireOpt::KeepTtl => existing.unwrap_or(0),
        ExpireOpt::None | ExpireOpt::Persist => 0,
        _ => a.when as u64,
    };
    store(ctx, &mut g, db, key, &args[2], expire_at, a.expire);
    drop(g);
    if ctx.aof_on() && a.iffence.is_some() {
        // The fence check may pass on a live holder's lease, which a replay on another
        // clock could judge differently: logged as the plain write it made.
        let mut effect = vec![Bytes::from_static(b"SET"), key.clone(), args[2].clone()];
        if expire_at != 0 {
            effect.push(Bytes::from_static(b"PXAT"));
            effect.push(crate::aof::int_arg(expire_at));
        }
        ctx.propagate(effect);
    } else if ctx.aof_on()
        && !matches!(
            a.expire,
            ExpireOpt::None | ExpireOpt::KeepTtl | ExpireOpt::Persist
        )
    {
        propagate_set_at(ctx, key, &args[2], expire_at);
    }
    Ok(match old {
        Some(v) => bulk_or_null(v),
        None => Frame::ok(),
    })
}

/// Logs a SET with a deadline as Redis does: `SET key value PXAT <ms>`, or `DEL key`
/// when the deadline had already passed (the key was deleted).
fn propagate_set_at(ctx: &mut Ctx<'_>, key: &Bytes, value: &Bytes, expire_at: u64) {
    if expire_at <= ctx.now {
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
    } else {
        ctx.propagate(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            value.clone(),
            Bytes::from_static(b"PXAT"),
            crate::aof::int_arg(expire_at),
        ]);
    }
}

/// Stores a string and notifies `set` (plus `expire` when an expiry option was given).
/// A deadline already passed reclaims the key at once, which reports it `expired` as
/// Redis's next expiry cycle would.
fn store(
    ctx: &Ctx<'_>,
    g: &mut Guard<'_>,
    db: usize,
    key: &[u8],
    v: &[u8],
    expire_at: u64,
    opt: ExpireOpt,
) {
    g.insert_str(db, key, v, expire_at);
    ctx.notify(ev::STRING, "set", key);
    if !matches!(
        opt,
        ExpireOpt::None | ExpireOpt::KeepTtl | ExpireOpt::Persist
    ) {
        ctx.notify(ev::GENERIC, "expire", key);
    }
    if expire_at != 0 && expire_at <= g.now() {
        g.remove(db, key);
    }
}

/// DELIFEQ key value: 1 if the key held a string equal to `value` and was deleted,
/// 0 if it was missing or different; WRONGTYPE for other types.
fn delifeq(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    if read_string(&mut g, db, key)?.as_deref() != Some(args[2].as_ref()) {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Integer(0));
    }
    g.remove(db, key);
    ctx.notify(ev::GENERIC, "del", key);
    Ok(Frame::Integer(1))
}

fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    if g.exists(db, &args[1]) {
        return Ok(Frame::Integer(0));
    }
    g.insert_str(db, &args[1], &args[2], 0);
    ctx.notify(ev::STRING, "set", &args[1]);
    Ok(Frame::Integer(1))
}

fn setex_generic(ctx: &mut Ctx<'_>, args: &[Bytes], unit_ms: i64) -> CmdResult {
    let v = args::int(&args[2])?;
    if v <= 0 || (unit_ms == 1000 && v > i64::MAX / 1000) {
        return Err(Error::expire_time(ctx.fullname));
    }
    let when = (v * unit_ms)
        .checked_add(ctx.now as i64)
        .ok_or_else(|| Error::expire_time(ctx.fullname))?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    store(
        ctx,
        &mut g,
        db,
        &args[1],
        &args[3],
        when as u64,
        ExpireOpt::Px,
    );
    drop(g);
    if ctx.aof_on() {
        propagate_set_at(ctx, &args[1], &args[3], when as u64);
    }
    Ok(Frame::ok())
}

fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, 1000)
}

fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, 1)
}

fn mset_keys(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Vec<Bytes>, Error> {
    if args.len().is_multiple_of(2) {
        return Err(Error::arity(ctx.fullname));
    }
    Ok(args[1..].iter().step_by(2).cloned().collect())
}

fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = mset_keys(ctx, args)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&keys, ctx.now);
    for pair in args[1..].chunks_exact(2) {
        g.insert_str(db, &pair[0], &pair[1], 0);
        ctx.notify(ev::STRING, "set", &pair[0]);
    }
    ctx.changed(keys.len() as u64);
    Ok(Frame::ok())
}

fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = mset_keys(ctx, args)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&keys, ctx.now);
    if keys.iter().any(|k| g.exists(db, k)) {
        return Ok(Frame::Integer(0));
    }
    for pair in args[1..].chunks_exact(2) {
        g.insert_str(db, &pair[0], &pair[1], 0);
        ctx.notify(ev::STRING, "set", &pair[0]);
    }
    ctx.changed(keys.len() as u64);
    Ok(Frame::Integer(1))
}

fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    let out = args[1..]
        .iter()
        .map(|k| match read_string(&mut g, db, k) {
            Ok(Some(v)) => Frame::Bulk(v),
            _ => Frame::Null,
        })
        .collect();
    Ok(Frame::Array(out))
}

fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let old = read_string(&mut g, db, &args[1])?;
    ctx.reply_here();
    g.insert_str(db, &args[1], &args[2], 0);
    ctx.notify(ev::STRING, "set", &args[1]);
    Ok(bulk_or_null(old))
}

fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let old = read_string(&mut g, db, &args[1])?;
    ctx.reply_here();
    if old.is_some() {
        g.remove(db, &args[1]);
        ctx.notify(ev::GENERIC, "del", &args[1]);
    }
    drop(g);
    if ctx.aof_on() {
        if old.is_some() {
            ctx.propagate(vec![Bytes::from_static(b"DEL"), args[1].clone()]);
        } else {
            ctx.propagate_nothing();
        }
    }
    Ok(bulk_or_null(old))
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_set_args(ctx, args, 2, false)?;
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(v) = read_string(&mut g, db, key)? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Null);
    };
    ctx.reply_here();
    // Logged as its effect: PERSIST, PEXPIREAT, or DEL for a deadline already past.
    let effect = match a.expire {
        ExpireOpt::Persist => {
            let had = g.get(db, key).is_some_and(|e| e.expire_at() != 0);
            g.set_expire(db, key, 0);
            if had {
                ctx.notify(ev::GENERIC, "persist", key);
            }
            Some(vec![Bytes::from_static(b"PERSIST"), key.clone()])
        }
        ExpireOpt::Ex | ExpireOpt::Px | ExpireOpt::ExAt | ExpireOpt::PxAt => {
            if a.when as u64 <= ctx.now {
                g.remove(db, key);
                ctx.notify(ev::GENERIC, "del", key);
                Some(vec![Bytes::from_static(b"DEL"), key.clone()])
            } else {
                g.set_expire(db, key, a.when as u64);
                ctx.notify(ev::GENERIC, "expire", key);
                Some(vec![
                    Bytes::from_static(b"PEXPIREAT"),
                    key.clone(),
                    crate::aof::int_arg(a.when),
                ])
            }
        }
        ExpireOpt::None | ExpireOpt::KeepTtl => None,
    };
    drop(g);
    if ctx.aof_on() {
        match effect {
            Some(e) => ctx.propagate(e),
            None => ctx.propagate_nothing(),
        }
    }
    Ok(Frame::Bulk(v))
}

fn max_len(ctx: &Ctx<'_>) -> u64 {
    ctx.srv
        .live
        .max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let limit = max_len(ctx);
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    match g.get(db, &args[1]) {
        None => {
            g.insert_str(db, &args[1], &args[2], 0);
            ctx.notify(ev::STRING, "append", &args[1]);
            Ok(Frame::Integer(args[2].len() as i64))
        }
        Some(mut e) => {
            let total = str_ref(e.value())?.len() as u64 + args[2].len() as u64;
            if total > limit {
                return Err(Error::msg(error::STRING_TOO_LONG));
            }
            let raw = raw_mut(&mut e)?;
            raw.extend_from_slice(&args[2]);
            let len = raw.len();
            ctx.notify(ev::STRING, "append", &args[1]);
            Ok(Frame::Integer(len as i64))
        }
    }
}

fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(Frame::Integer(match g.lookup_read(db, &args[1]) {
        None => 0,
        Some(e) => str_ref(e.value())?.len() as i64,
    }))
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    match g.get(db, key) {
        None => {
            g.insert(db, key, Value::Str(StrValue::Int(delta)), 0);
            ctx.notify(ev::STRING, "incrby", key);
            Ok(Frame::Integer(delta))
        }
        Some(mut e) => {
            let cur = str_ref(e.value())?
                .as_i64()
                .ok_or_else(|| Error::msg(error::NOT_INTEGER))?;
            let v = cur
                .checked_add(delta)
                .ok_or_else(|| Error::msg(error::OVERFLOW))?;
            e.set_int(v);
            ctx.notify(ev::STRING, "incrby", key);
            Ok(Frame::Integer(v))
        }
    }
}

fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, &args[1], 1)
}

fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, &args[1], -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let d = args::int(&args[2])?;
    incr_by(ctx, &args[1], d)
}

fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let d = args::int(&args[2])?;
    if d == i64::MIN {
        return Err(Error::msg("ERR decrement would overflow"));
    }
    incr_by(ctx, &args[1], -d)
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let (current, expire_at) = match g.get(db, key) {
        None => (Bytes::from_static(b"0"), 0),
        Some(e) => {
            let s = str_ref(e.value())?;
            (s.with_bytes(Bytes::copy_from_slice), e.expire_at())
        }
    };
    let result =
        basalt_engine::ldouble::incr_by_float(&current, &args[2]).map_err(|e| match e {
            basalt_engine::ldouble::IncrFloatError::NotFloat => Error::msg(error::NOT_FLOAT),
            basalt_engine::ldouble::IncrFloatError::NanOrInfinity => {
                Error::msg("ERR increment would produce NaN or Infinity")
            }
        })?;
    g.insert(
        db,
        key,
        Value::Str(StrValue::from_bytes_no_int(&result)),
        expire_at,
    );
    ctx.notify(ev::STRING, "incrbyfloat", key);
    drop(g);
    let result = Bytes::from(result);
    if ctx.aof_on() {
        // The float text is the effect; KEEPTTL keeps the deadline as it is.
        ctx.propagate(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            result.clone(),
            Bytes::from_static(b"KEEPTTL"),
        ]);
    }
    Ok(Frame::Bulk(result))
}

/// Redis's GETRANGE index normalisation; `None` means the empty string.
fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = args::int(&args[2])?;
    let end = args::int(&args[3])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(v) = read_string(&mut g, db, &args[1])? else {
        return Ok(Frame::Bulk(Bytes::new()));
    };
    Ok(Frame::Bulk(match range(start, end, v.len()) {
        None => Bytes::new(),
        Some((s, e)) => v.slice(s..=e),
    }))
}

fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = args::int(&args[2])?;
    if offset < 0 {
        return Err(Error::msg("ERR offset is out of range"));
    }
    let value = &args[3];
    let db = ctx.client.db;
    let limit = max_len(ctx);
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let offset = offset as u64;
    let check = || -> Result<(), Error> {
        if offset + value.len() as u64 > limit {
            return Err(Error::msg(error::STRING_TOO_LONG));
        }
        Ok(())
    };
    match g.get(db, &args[1]) {
        None => {
            if value.is_empty() {
                return Ok(Frame::Integer(0));
            }
            check()?;
            let mut buf = vec![0u8; offset as usize];
            buf.extend_from_slice(value);
            let len = buf.len();
            g.insert(db, &args[1], Value::Str(StrValue::Raw(buf)), 0);
            ctx.notify(ev::STRING, "setrange", &args[1]);
            Ok(Frame::Integer(len as i64))
        }
        Some(mut e) => {
            let len = str_ref(e.value())?.len();
            if value.is_empty() {
                return Ok(Frame::Integer(len as i64));
            }
            check()?;
            let raw = raw_mut(&mut e)?;
            let end = offset as usize + value.len();
            if raw.len() < end {
                raw.resize(end, 0);
            }
            raw[offset as usize..end].copy_from_slice(value);
            let len = raw.len();
            ctx.notify(ev::STRING, "setrange", &args[1]);
            Ok(Frame::Integer(len as i64))
        }
    }
}

fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: u64 = 0;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        if is(opt, "idx") {
            getidx = true;
        } else if is(opt, "len") {
            getlen = true;
        } else if is(opt, "withmatchlen") {
            withmatchlen = true;
        } else if is(opt, "minmatchlen") && i + 1 < args.len() {
            let v = args::int(&args[i + 1])?;
            minmatchlen = v.max(0) as u64;
            i += 1;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        i += 1;
    }
    let db = ctx.client.db;
    let (a, b) = {
        let mut g = ctx.srv.keyspace.lock_keys(&args[1..3], ctx.now);
        let a = read_string(&mut g, db, &args[1]);
        let b = read_string(&mut g, db, &args[2]);
        match (a, b) {
            (Ok(a), Ok(b)) => (a.unwrap_or_default(), b.unwrap_or_default()),
            _ => {
                return Err(Error::msg(
                    "ERR The specified keys must contain string values",
                ));
            }
        }
    };
    if getidx && getlen {
        return Err(Error::msg(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells.saturating_mul(4) > max_len(ctx) {
        return Err(Error::msg(
            "ERR Insufficient memory, transient memory for LCS exceeds available memory",
        ));
    }
    // dp[i][j] = LCS length of a[..i] and b[..j], row-major with blen+1 columns.
    let w = blen + 1;
    let mut dp = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            dp[i * w + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[alen * w + blen] as usize;
    if getlen && !getidx {
        return Ok(Frame::Integer(total as i64));
    }
    // Walk back from the end, collecting the LCS bytes and the matching ranges in the
    // order Redis emits them (last match first).
    let mut result = vec![0u8; total];
    let mut matches = Vec::new();
    let mut idx = total;
    let (mut i, mut j) = (alen, blen);
    let unset = alen;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == unset {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != unset {
                emit = true;
            }
        }
        if emit {
            let match_len = a_end - a_start + 1;
            if minmatchlen == 0 || match_len as u64 >= minmatchlen {
                let mut m = vec![
                    Frame::Array(vec![
                        Frame::Integer(a_start as i64),
                        Frame::Integer(a_end as i64),
                    ]),
                    Frame::Array(vec![
                        Frame::Integer(b_start as i64),
                        Frame::Integer(b_end as i64),
                    ]),
                ];
                if withmatchlen {
                    m.push(Frame::Integer(match_len as i64));
                }
                matches.push(Frame::Array(m));
            }
            a_start = unset;
        }
    }
    if getidx {
        return Ok(Frame::Map(vec![
            (Frame::bulk(b"matches"), Frame::Array(matches)),
            (Frame::bulk(b"len"), Frame::Integer(total as i64)),
        ]));
    }
    Ok(Frame::Bulk(Bytes::from(result)))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn getrange_normalisation() {
        assert_eq!(range(0, -1, 5), Some((0, 4)));
        assert_eq!(range(-3, -1, 5), Some((2, 4)));
        assert_eq!(range(3, 1, 5), None);
        assert_eq!(range(-1, -3, 5), None);
        assert_eq!(range(0, 100, 5), Some((0, 4)));
        assert_eq!(range(0, 0, 0), None);
        assert_eq!(range(-100, -50, 5), Some((0, 0)));
    }
}
