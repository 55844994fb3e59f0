//! The sets family: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER,
//! SMOVE, SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE, SSCAN.
//!
//! Semantics, reply shapes (RESP3 sets where Redis sends them) and error strings follow
//! Redis 7.0's t_set.c, including which algorithm builds a result, because that decides
//! the result's encoding (`OBJECT ENCODING` after SDIFFSTORE) and, for intsets, the reply
//! order. Arguments are checked in Redis's order, so the same bad request gets the same
//! error.
//!
//! Randomness (SPOP, SRANDMEMBER) comes from a small per-process generator seeded from
//! the clock at first use; the engine itself draws none.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::glob::glob_match;
use basalt_engine::types::set::{Member, SetValue};
use basalt_engine::{EncodingLimits, EntryMut, Guard, Value};
use basalt_proto::Frame;
use bytes::Bytes;
use std::collections::HashMap;

// Key-spec flags spelled as Redis prints them (COMMAND INFO): the access kind in upper
// case, the operation in lower case.
const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_INSERT: &[&str] = &["RW", "insert"];

macro_rules! set_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::SET, "set"; $($t)*)
    };
}

const STORE_SPECS: &[KeySpec] = &[
    KeySpec::single(1, &["OW", "update"]),
    KeySpec::rest(2, 1, RO_ACCESS),
];

/// The sets family's commands.
pub const COMMANDS: &[Command] = &[
    set_cmd!(
        "sadd",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_INSERT)],
        "1.0.0",
        "Add one or more members to a set",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        sadd
    ),
    set_cmd!(
        "srem",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "delete"])],
        "1.0.0",
        "Remove one or more members from a set",
        "O(N) where N is the number of members to be removed.",
        srem
    ),
    Command {
        tips: &["nondeterministic_output_order"],
        ..set_cmd!(
            "smembers",
            2,
            READONLY,
            (1, 1, 1),
            &[KeySpec::single(1, RO_ACCESS)],
            "1.0.0",
            "Get all the members in a set",
            "O(N) where N is the set cardinality.",
            smembers
        )
    },
    set_cmd!(
        "sismember",
        3,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "1.0.0",
        "Determine if a given value is a member of a set",
        "O(1)",
        sismember
    ),
    set_cmd!(
        "smismember",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "6.2.0",
        "Returns the membership associated with the given elements for a set",
        "O(N) where N is the number of elements being checked for membership",
        smismember
    ),
    set_cmd!(
        "scard",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "1.0.0",
        "Get the number of members in a set",
        "O(1)",
        scard
    ),
    Command {
        tips: &["nondeterministic_output"],
        ..set_cmd!(
            "spop",
            -2,
            WRITE | FAST,
            (1, 1, 1),
            &[KeySpec::single(1, &["RW", "access", "delete"])],
            "1.0.0",
            "Remove and return one or multiple random members from a set",
            "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
            spop
        )
    },
    Command {
        tips: &["nondeterministic_output"],
        ..set_cmd!(
            "srandmember",
            -2,
            READONLY,
            (1, 1, 1),
            &[KeySpec::single(1, RO_ACCESS)],
            "1.0.0",
            "Get one or multiple random members from a set",
            "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.",
            srandmember
        )
    },
    set_cmd!(
        "smove",
        4,
        WRITE | FAST,
        (1, 2, 1),
        &[
            KeySpec::single(1, &["RW", "access", "delete"]),
            KeySpec::single(2, RW_INSERT)
        ],
        "1.0.0",
        "Move a member from one set to another",
        "O(1)",
        smove
    ),
    Command {
        tips: &["nondeterministic_output_order"],
        ..set_cmd!(
            "sinter",
            -2,
            READONLY,
            (1, -1, 1),
            &[KeySpec::rest(1, 1, RO_ACCESS)],
            "1.0.0",
            "Intersect multiple sets",
            "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
            sinter
        )
    },
    set_cmd!(
        "sintercard",
        -3,
        READONLY | MOVABLE_KEYS,
        (0, 0, 0),
        &[KeySpec {
            notes: "",
            flags: RO_ACCESS,
            begin: BeginSearch::Index(1),
            find: FindKeys::Keynum {
                keynumidx: 0,
                firstkey: 1,
                step: 1,
            },
        }],
        "7.0.0",
        "Intersect multiple sets and return the cardinality of the result",
        "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        sintercard
    ),
    set_cmd!(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        &[
            KeySpec::single(1, &["RW", "update"]),
            KeySpec::rest(2, 1, RO_ACCESS)
        ],
        "1.0.0",
        "Intersect multiple sets and store the resulting set in a key",
        "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        sinterstore
    ),
    Command {
        tips: &["nondeterministic_output_order"],
        ..set_cmd!(
            "sunion",
            -2,
            READONLY,
            (1, -1, 1),
            &[KeySpec::rest(1, 1, RO_ACCESS)],
            "1.0.0",
            "Add multiple sets",
            "O(N) where N is the total number of elements in all given sets.",
            sunion
        )
    },
    set_cmd!(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        STORE_SPECS,
        "1.0.0",
        "Add multiple sets and store the resulting set in a key",
        "O(N) where N is the total number of elements in all given sets.",
        sunionstore
    ),
    Command {
        tips: &["nondeterministic_output_order"],
        ..set_cmd!(
            "sdiff",
            -2,
            READONLY,
            (1, -1, 1),
            &[KeySpec::rest(1, 1, RO_ACCESS)],
            "1.0.0",
            "Subtract multiple sets",
            "O(N) where N is the total number of elements in all given sets.",
            sdiff
        )
    },
    set_cmd!(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        STORE_SPECS,
        "1.0.0",
        "Subtract multiple sets and store the resulting set in a key",
        "O(N) where N is the total number of elements in all given sets.",
        sdiffstore
    ),
    Command {
        tips: &["nondeterministic_output"],
        ..set_cmd!(
            "sscan",
            -3,
            READONLY,
            (1, 1, 1),
            &[KeySpec::single(1, RO_ACCESS)],
            "2.8.0",
            "Incrementally iterate Set elements",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..",
            sscan
        )
    },
];

// ---------------------------------------------------------------------------------------
// Randomness

pub use crate::rand::MAX_RANDOM_PICKS;
use crate::rand::command_rng;

// ---------------------------------------------------------------------------------------
// Helpers

fn wrongtype() -> Error {
    Error::msg(error::WRONGTYPE)
}

/// The set in a looked-up entry: `Ok(None)` when the key is missing, WRONGTYPE when it
/// holds another type.
fn set_ref(e: Option<basalt_engine::EntryRef<'_>>) -> Result<Option<&SetValue>, Error> {
    match e.map(|e| e.into_value().as_other()) {
        None => Ok(None),
        Some(Some(Value::Set(s))) => Ok(Some(&**s)),
        Some(_) => Err(wrongtype()),
    }
}

/// [`set_ref`] for a looked-up entry that may be changed.
fn set_of(e: Option<EntryMut<'_>>) -> Result<Option<&mut SetValue>, Error> {
    match e {
        None => Ok(None),
        Some(e) => match e.into_value_mut() {
            Some(Value::Set(s)) => Ok(Some(s)),
            _ => Err(wrongtype()),
        },
    }
}

fn bulk(m: Member<'_>) -> Frame {
    Frame::Bulk(m.to_bytes())
}

fn all_members(s: &SetValue) -> Vec<Frame> {
    let mut out = Vec::with_capacity(s.len());
    s.for_each(|m| out.push(bulk(m)));
    out
}

/// Source sets of a multi-key command, moved out of their entries for the duration of
/// the command (each key's value is swapped with an empty set and put back by
/// [`Sources::restore`]), so several sets can be read at once through one guard without
/// copying them.
struct Sources {
    /// Distinct keys whose sets were taken, with the sets.
    taken: Vec<(Bytes, SetValue)>,
    /// Per argument: the index in `taken`, or `None` for a missing key.
    slots: Vec<Option<usize>>,
}

impl Sources {
    /// Takes the sets at `keys` (missing keys are empty sets). On a non-set key, puts
    /// back what was taken and fails with WRONGTYPE, as Redis checks every key first.
    fn take(g: &mut Guard<'_>, db: usize, keys: &[Bytes]) -> Result<Sources, Error> {
        let mut src = Sources {
            taken: Vec::new(),
            slots: Vec::with_capacity(keys.len()),
        };
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for key in keys {
            let entry = g.lookup_read_mut(db, key);
            if let Some(&i) = seen.get(key.as_ref()) {
                // Already taken: the entry now holds the empty placeholder.
                src.slots.push(Some(i));
                continue;
            }
            match entry {
                None => src.slots.push(None),
                Some(e) => match e.into_value_mut() {
                    Some(Value::Set(s)) => {
                        let i = src.taken.len();
                        src.taken.push((key.clone(), std::mem::take(s)));
                        seen.insert(key.as_ref(), i);
                        src.slots.push(Some(i));
                    }
                    _ => {
                        src.restore(g, db);
                        return Err(wrongtype());
                    }
                },
            }
        }
        Ok(src)
    }

    /// The sets in argument order (`None` for missing keys).
    fn views(&self) -> Vec<Option<&SetValue>> {
        self.slots
            .iter()
            .map(|s| s.map(|i| &self.taken[i].1))
            .collect()
    }

    /// Puts every taken set back into its entry.
    fn restore(self, g: &mut Guard<'_>, db: usize) {
        for (key, set) in self.taken {
            if let Some(e) = g.get(db, &key)
                && let Some(Value::Set(slot)) = e.into_value_mut()
            {
                **slot = set;
            }
        }
    }
}

/// Visits the intersection of `sets` in the iteration order of the smallest one (ties:
/// the first named, as Redis's sort keeps them), stopping when `f` returns false. A
/// missing key makes the intersection empty.
fn intersect(sets: &[Option<&SetValue>], mut f: impl FnMut(Member<'_>) -> bool) {
    let mut order: Vec<&SetValue> = Vec::with_capacity(sets.len());
    for s in sets {
        match s {
            Some(s) if !s.is_empty() => order.push(s),
            _ => return,
        }
    }
    order.sort_by_key(|s| s.len());
    let Some((first, rest)) = order.split_first() else {
        return;
    };
    first.for_each_while(|m| {
        let everywhere = rest
            .iter()
            .all(|o| std::ptr::eq(*o, *first) || o.contains_member(m));
        if everywhere { f(m) } else { true }
    });
}

/// SUNION / SDIFF into a fresh set, with Redis's choice of difference algorithm (it
/// decides the result's encoding when a large intermediate set crosses a threshold).
fn union_or_diff(sets: &[Option<&SetValue>], diff: bool, lim: &EncodingLimits) -> SetValue {
    let mut dst = SetValue::new();
    if !diff {
        for s in sets.iter().flatten() {
            s.for_each(|m| {
                dst.add_member(m, lim);
            });
        }
        return dst;
    }
    let Some(Some(first)) = sets.first() else {
        return dst;
    };
    if first.is_empty() {
        return dst;
    }
    // Algorithm 1 costs about |first| * (number of sets) / 2 membership tests, algorithm
    // 2 the sum of all sizes; Redis picks the cheaper estimate.
    let mut one: u128 = 0;
    let mut two: u128 = 0;
    for s in sets.iter().flatten() {
        one += first.len() as u128;
        two += s.len() as u128;
    }
    one /= 2;
    if one <= two {
        let mut others: Vec<&SetValue> = sets[1..].iter().flatten().copied().collect();
        // Largest first: an excluded member is likely found sooner.
        others.sort_by_key(|s| std::cmp::Reverse(s.len()));
        first.for_each(|m| {
            let excluded = others
                .iter()
                .any(|o| std::ptr::eq(*o, *first) || o.contains_member(m));
            if !excluded {
                dst.add_member(m, lim);
            }
        });
    } else {
        first.for_each(|m| {
            dst.add_member(m, lim);
        });
        for s in sets[1..].iter().flatten() {
            if dst.is_empty() {
                break;
            }
            s.for_each_while(|m| {
                dst.remove_member(m);
                !dst.is_empty()
            });
        }
    }
    dst
}

// ---------------------------------------------------------------------------------------
// Single-key commands

fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let lim = ctx.enc();
    let (key, members) = (&args[1], &args[2..]);
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let mut added = 0i64;
    match set_of(g.get(db, key))? {
        Some(s) => {
            s.reserve(members.len(), &lim);
            for m in members {
                added += i64::from(s.add(m, &lim));
            }
        }
        None => {
            let mut s = SetValue::with_first(&members[0], members.len(), &lim);
            for m in members {
                added += i64::from(s.add(m, &lim));
            }
            g.insert(db, key, Value::from(s), 0);
        }
    }
    if added > 0 {
        ctx.notify(ev::SET, "sadd", key);
    }
    ctx.changed(added as u64);
    Ok(Frame::Integer(added))
}

fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(s) = set_of(g.get(db, key))? else {
        return Ok(Frame::Integer(0));
    };
    let mut removed = 0i64;
    for m in &args[2..] {
        removed += i64::from(s.remove(m));
        if s.is_empty() {
            break;
        }
    }
    let empty = s.is_empty();
    if removed > 0 {
        ctx.notify(ev::SET, "srem", key);
    }
    if empty {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    }
    ctx.changed(removed as u64);
    Ok(Frame::Integer(removed))
}

fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(Frame::Set(match set_ref(g.lookup_read(db, &args[1]))? {
        Some(s) => all_members(s),
        None => Vec::new(),
    }))
}

fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let found = set_ref(g.lookup_read(db, &args[1]))?.is_some_and(|s| s.contains(&args[2]));
    Ok(Frame::Integer(i64::from(found)))
}

fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let s = set_ref(g.lookup_read(db, &args[1]))?;
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|m| Frame::Integer(i64::from(s.as_ref().is_some_and(|s| s.contains(m)))))
            .collect(),
    ))
}

fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let n = set_ref(g.lookup_read(db, &args[1]))?.map_or(0, |s| s.len());
    Ok(Frame::Integer(n as i64))
}

fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => {}
        3 => return spop_count(ctx, args),
        _ => return Err(Error::msg(error::SYNTAX)),
    }
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(s) = set_of(g.get(db, key))? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Null);
    };
    let popped = s.pop_random(&mut command_rng());
    let empty = s.is_empty();
    ctx.notify(ev::SET, "spop", key);
    ctx.reply_here();
    if empty {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    }
    drop(g);
    // The random pick is logged as what it removed.
    if ctx.aof_on() {
        match &popped {
            Some(m) => ctx.propagate(vec![Bytes::from_static(b"SREM"), key.clone(), m.clone()]),
            None => ctx.propagate_nothing(),
        }
    }
    Ok(popped.map_or(Frame::Null, Frame::Bulk))
}

/// Logs what SPOP with a count removed: `SREM key m...` (in batches of 1024, as Redis),
/// or `DEL key` when the whole set went.
fn propagate_spop(ctx: &mut Ctx<'_>, key: &Bytes, members: &[Frame], whole: bool) {
    if whole {
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        return;
    }
    if members.is_empty() {
        ctx.propagate_nothing();
        return;
    }
    for chunk in members.chunks(1024) {
        let mut effect = vec![Bytes::from_static(b"SREM"), key.clone()];
        effect.extend(chunk.iter().filter_map(|m| match m {
            Frame::Bulk(b) => Some(b.clone()),
            _ => None,
        }));
        ctx.propagate(effect);
    }
}

fn spop_count(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis answers a non-integer count with the range message too.
    let count = basalt_engine::num::parse_i64(&args[2])
        .filter(|c| *c >= 0)
        .ok_or_else(|| Error::msg(error::NOT_POSITIVE))? as u64;
    let db = ctx.client.db;
    let lim = ctx.enc();
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(s) = set_of(g.get(db, key))? else {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Set(Vec::new()));
    };
    if count == 0 {
        drop(g);
        ctx.propagate_nothing();
        return Ok(Frame::Set(Vec::new()));
    }
    let size = s.len() as u64;
    ctx.notify(ev::SET, "spop", key);
    ctx.changed(count.min(size));
    ctx.reply_here();
    if count >= size {
        // The whole set, replied through a fresh union as Redis does: an all-integer
        // hash table comes back sorted, because the copy is an intset.
        let copy = union_or_diff(&[Some(&*s)], false, &lim);
        drop(g.remove(db, key));
        ctx.notify(ev::GENERIC, "del", key);
        drop(g);
        if ctx.aof_on() {
            propagate_spop(ctx, key, &[], true);
        }
        return Ok(Frame::Set(all_members(&copy)));
    }
    let mut rng = command_rng();
    let remaining = size - count;
    let mut out = Vec::new();
    if remaining.saturating_mul(5) > count {
        // Few to pop compared with the set: pop them one by one.
        for _ in 0..count {
            match s.pop_random(&mut rng) {
                Some(m) => out.push(Frame::Bulk(m)),
                None => break,
            }
        }
    } else {
        // Most of the set goes: move the few survivors to a new set (whose encoding is
        // chosen afresh, as Redis does) and reply with what is left of the old one.
        let mut kept: Option<SetValue> = None;
        for _ in 0..remaining {
            let Some(m) = s.pop_random(&mut rng) else {
                break;
            };
            kept.get_or_insert_with(|| SetValue::with_first(&m, 1, &lim))
                .add(&m, &lim);
        }
        out = all_members(s);
        if let Some(kept) = kept {
            *s = kept;
        }
    }
    if s.is_empty() {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    }
    drop(g);
    if ctx.aof_on() {
        propagate_spop(ctx, key, &out, false);
    }
    Ok(Frame::Set(out))
}

fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => {}
        3 => return srandmember_count(ctx, args),
        _ => return Err(Error::msg(error::SYNTAX)),
    }
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = set_ref(g.lookup_read(db, &args[1]))? else {
        return Ok(Frame::Null);
    };
    Ok(s.random_member(&mut command_rng())
        .map_or(Frame::Null, bulk))
}

fn srandmember_count(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let l = args::int(&args[2])?;
    if l == i64::MIN {
        return Err(Error::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = set_ref(g.lookup_read(db, &args[1]))? else {
        return Ok(Frame::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Frame::Array(Vec::new()));
    }
    if !uniq && count > MAX_RANDOM_PICKS {
        return Err(Error::msg("ERR value is out of range"));
    }
    let mut rng = command_rng();
    let size = s.len() as u64;
    // Never pre-allocate from a client-supplied count.
    let mut out = Vec::with_capacity(count.min(size).min(1024) as usize);
    if !uniq || count == 1 {
        // Repetitions allowed: independent picks.
        for _ in 0..count {
            match s.random_member(&mut rng) {
                Some(m) => out.push(bulk(m)),
                None => break,
            }
        }
    } else if count >= size {
        out = all_members(s);
    } else if count.saturating_mul(3) > size {
        // Most of the set: copy it and drop random members until `count` remain.
        let mut all = s.members();
        while all.len() as u64 > count {
            let i = (rng() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        out.extend(all.into_iter().map(Frame::Bulk));
    } else {
        // Few of a large set: draw until `count` distinct members were seen.
        let mut picked: std::collections::HashSet<Bytes> = std::collections::HashSet::new();
        while (picked.len() as u64) < count {
            let Some(m) = s.random_member(&mut rng).map(|m| m.to_bytes()) else {
                break;
            };
            if picked.insert(m.clone()) {
                out.push(Frame::Bulk(m));
            }
        }
    }
    Ok(Frame::Array(out))
}

fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let lim = ctx.enc();
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..3], ctx.now);
    // Redis's order: a missing source answers 0 before any type check.
    if set_of(g.get(db, src))?.is_none() {
        return Ok(Frame::Integer(0));
    }
    set_of(g.get(db, dst))?;
    if src == dst {
        let found = set_of(g.get(db, src))?.is_some_and(|s| s.contains(member));
        return Ok(Frame::Integer(i64::from(found)));
    }
    let Some(s) = set_of(g.get(db, src))? else {
        return Ok(Frame::Integer(0));
    };
    if !s.remove(member) {
        return Ok(Frame::Integer(0));
    }
    let empty = s.is_empty();
    ctx.notify(ev::SET, "srem", src);
    if empty {
        g.remove(db, src);
        ctx.notify(ev::GENERIC, "del", src);
    }
    let added = match set_of(g.get(db, dst))? {
        Some(d) => d.add(member, &lim),
        None => {
            let mut d = SetValue::with_first(member, 1, &lim);
            d.add(member, &lim);
            g.insert(db, dst, Value::from(d), 0);
            true
        }
    };
    if added {
        ctx.notify(ev::SET, "sadd", dst);
    }
    // The removal and the addition count apart.
    ctx.changed(1 + u64::from(added));
    Ok(Frame::Integer(1))
}

// ---------------------------------------------------------------------------------------
// Multi-key commands

fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let keys = &args[1..];
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    let src = Sources::take(&mut g, db, keys)?;
    let mut out = Vec::new();
    intersect(&src.views(), |m| {
        out.push(bulk(m));
        true
    });
    src.restore(&mut g, db);
    Ok(Frame::Set(out))
}

fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let numkeys = basalt_engine::num::parse_i64(&args[1])
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::msg("ERR numkeys should be greater than 0"))?;
    if numkeys > (args.len() - 2) as i64 {
        return Err(Error::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0u64;
    let mut i = end;
    while i < args.len() {
        if is(&args[i], "limit") && i + 1 < args.len() {
            limit = basalt_engine::num::parse_i64(&args[i + 1])
                .filter(|l| *l >= 0)
                .ok_or_else(|| Error::msg("ERR LIMIT can't be negative"))?
                as u64;
            i += 2;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    let db = ctx.client.db;
    let keys = &args[2..end];
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    let src = Sources::take(&mut g, db, keys)?;
    let mut n = 0u64;
    intersect(&src.views(), |_| {
        n += 1;
        limit == 0 || n < limit
    });
    src.restore(&mut g, db);
    Ok(Frame::Integer(n as i64))
}

/// Stores `result` at `dst` (deleting `dst` when empty) and replies with its size.
/// `event` is the store's notification; Redis replies before notifying, except for
/// SINTERSTORE with a missing source (`reply_late`), which deletes and notifies first.
fn store(
    ctx: &mut Ctx<'_>,
    mut g: Guard<'_>,
    db: usize,
    dst: &Bytes,
    result: SetValue,
    event: &'static str,
    reply_late: bool,
) -> CmdResult {
    let n = result.len();
    if !reply_late {
        ctx.reply_here();
    }
    if n == 0 {
        if g.remove(db, dst).is_some() {
            ctx.notify(ev::GENERIC, "del", dst);
        }
        return Ok(Frame::Integer(0));
    }
    g.insert(db, dst, Value::from(result), 0);
    // The new key's `new` event precedes the reply; the store's event follows it.
    ctx.reply_here();
    ctx.notify(ev::SET, event, dst);
    drop(g);
    ctx.signal_ready(db, dst);
    Ok(Frame::Integer(n as i64))
}

fn sinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let lim = ctx.enc();
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    let src = Sources::take(&mut g, db, &args[2..])?;
    let mut result = SetValue::new();
    let missing = src.views().iter().any(Option::is_none);
    intersect(&src.views(), |m| {
        result.add_member(m, &lim);
        true
    });
    src.restore(&mut g, db);
    store(ctx, g, db, &args[1], result, "sinterstore", missing)
}

fn union_diff_reply(ctx: &mut Ctx<'_>, args: &[Bytes], diff: bool) -> CmdResult {
    let db = ctx.client.db;
    let lim = ctx.enc();
    let keys = &args[1..];
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    let src = Sources::take(&mut g, db, keys)?;
    let result = union_or_diff(&src.views(), diff, &lim);
    src.restore(&mut g, db);
    drop(g);
    Ok(Frame::Set(all_members(&result)))
}

fn union_diff_store(ctx: &mut Ctx<'_>, args: &[Bytes], diff: bool) -> CmdResult {
    let db = ctx.client.db;
    let lim = ctx.enc();
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..], ctx.now);
    let src = Sources::take(&mut g, db, &args[2..])?;
    let result = union_or_diff(&src.views(), diff, &lim);
    src.restore(&mut g, db);
    let event = if diff { "sdiffstore" } else { "sunionstore" };
    store(ctx, g, db, &args[1], result, event, false)
}

fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_reply(ctx, args, false)
}

fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_reply(ctx, args, true)
}

fn sunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_store(ctx, args, false)
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    union_diff_store(ctx, args, true)
}

fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = crate::families::keys::parse_cursor(&args[2])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(s) = set_ref(g.lookup_read(db, &args[1]))? else {
        return Ok(Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"0")),
            Frame::Array(Vec::new()),
        ]));
    };
    // Redis parses the options only once the key is known to be a set.
    let o = args::scan_options(args, 3, false)?;
    let (count, pattern) = (o.count, o.pattern);
    let mut out = Vec::new();
    let next = s.scan(cursor, count, |m| {
        m.with_bytes(|b| {
            if pattern.is_none_or(|p| glob_match(p, b, false)) {
                out.push(Frame::bulk(b));
            }
        })
    });
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(out),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> SetValue {
        SetValue::from_members(
            members.iter().map(|m| m.as_bytes()),
            &EncodingLimits::default(),
        )
    }

    fn strs(s: &SetValue) -> Vec<String> {
        s.members()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn intersection_skips_missing_and_uses_smallest() {
        let a = set(&["5", "1", "3", "9"]);
        let b = set(&["x", "1", "9", "3"]);
        let mut got = Vec::new();
        intersect(&[Some(&b), Some(&a)], |m| {
            got.push(m.to_bytes());
            true
        });
        // Both have four members: the first named (b, a hash table) is iterated; compare
        // as a set.
        got.sort();
        assert_eq!(
            got,
            vec![Bytes::from("1"), Bytes::from("3"), Bytes::from("9")]
        );
        let mut n = 0;
        intersect(&[Some(&a), None], |_| {
            n += 1;
            true
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn diff_algorithms_agree_on_members_and_encode_like_redis() {
        let lim = EncodingLimits::default();
        let big: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let big = SetValue::from_members(big.iter().map(|m| m.as_bytes()), &lim);
        let a: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let a = SetValue::from_members(a.iter().map(|m| m.as_bytes()), &lim);
        let b: Vec<String> = (100..200).map(|i| i.to_string()).collect();
        let b = SetValue::from_members(b.iter().map(|m| m.as_bytes()), &lim);
        // Algorithm 2 (all of `big`, then removals): the intermediate set passed 512
        // members, so the 400-member result stays a hash table.
        let d = union_or_diff(&[Some(&big), Some(&a), Some(&b)], true, &lim);
        assert_eq!(d.len(), 400);
        assert_eq!(d.encoding(), "hashtable");
        // Algorithm 1 (survivors only) yields an intset.
        let c: Vec<String> = (0..595).map(|i| i.to_string()).collect();
        let c = SetValue::from_members(c.iter().map(|m| m.as_bytes()), &lim);
        let d = union_or_diff(&[Some(&big), Some(&c)], true, &lim);
        assert_eq!(strs(&d), vec!["595", "596", "597", "598", "599"]);
        assert_eq!(d.encoding(), "intset");
        let u = union_or_diff(&[Some(&a), None, Some(&b)], false, &lim);
        assert_eq!(u.len(), 200);
    }
}
