//! The sorted-set family: ZADD and its options, scores and ranks, the ZRANGE family
//! (by rank, score and lex, reversed, limited, stored), removals by range, pops (also
//! blocking: BZPOPMIN, BZPOPMAX, BZMPOP), ZRANDMEMBER, the set operations
//! (ZUNION/ZINTER/ZDIFF, their STORE forms and ZINTERCARD, which also read plain sets),
//! and ZSCAN.
//!
//! Semantics, reply shapes (RESP2 and RESP3), error strings and the order in which
//! arguments and keys are checked follow Redis 7.0's t_zset.c, verified against
//! redis-server 7.0.15 (`tests/golden/zsets.cmds` pins them). Every handler parses its
//! arguments before touching the keyspace, so a syntax error never half-applies a write;
//! an emptied sorted set is deleted; writes that add members signal the key so clients
//! blocked in BZPOP*/BZMPOP re-run their command (see `crate::blocking`).

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::glob::glob_match;
use basalt_engine::types::zset::{LexRange, ScoreRange, cmp_key};
use basalt_engine::types::{SetValue, ZSetValue};
use basalt_engine::{Guard, Value};
use basalt_proto::{BulkList, Frame, Protocol};
use bytes::Bytes;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];
const RW_DELETE: &[&str] = &["RW", "delete"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
const OW_UPDATE: &[&str] = &["OW", "update"];

const fn keynum(index: i32, flags: &'static [&'static str]) -> KeySpec {
    KeySpec {
        notes: "",
        flags,
        begin: BeginSearch::Index(index),
        find: FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
    }
}

const ONE_RO: &[KeySpec] = &[KeySpec::single(1, RO_ACCESS)];
const ONE_DELETE: &[KeySpec] = &[KeySpec::single(1, RW_DELETE)];
const ONE_POP: &[KeySpec] = &[KeySpec::single(1, RW_ACCESS_DELETE)];
const READ_KEYNUM: &[KeySpec] = &[keynum(1, RO_ACCESS)];
const STORE_KEYNUM: &[KeySpec] = &[KeySpec::single(1, OW_UPDATE), keynum(2, RO_ACCESS)];
const BPOP_KEYS: &[KeySpec] = &[KeySpec {
    notes: "",
    flags: RW_ACCESS_DELETE,
    begin: BeginSearch::Index(1),
    find: FindKeys::Range {
        lastkey: -2,
        step: 1,
        limit: 0,
    },
}];

const RANGE_CX: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.";
const RANGE_BY_CX: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).";
const REMRANGE_CX: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.";
const POP_CX: &str = "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.";
const MPOP_CX: &str = "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.";
const UNION_CX: &str = "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.";
const INTER_CX: &str = "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.";
const DIFF_CX: &str = "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.";

macro_rules! zset_cmd {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $specs:expr, $since:literal, $summary:literal, $cx:expr, $h:expr) => {
        zset_cmd!(
            $name,
            $arity,
            $flags,
            $keys,
            $specs,
            $since,
            $summary,
            $cx,
            $h,
            &[]
        )
    };
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $specs:expr, $since:literal, $summary:literal, $cx:expr, $h:expr, $tips:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            acl: acl::SORTEDSET,
            keys: $keys,
            key_specs: $specs,
            tips: $tips,
            group: "sorted-set",
            since: $since,
            summary: $summary,
            complexity: $cx,
            handler: Some($h),
            ..Command::EMPTY
        }
    };
}

/// The sorted-set family's commands.
pub const COMMANDS: &[Command] = &[
    zset_cmd!(
        "zadd",
        -4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "1.2.0",
        "Add one or more members to a sorted set, or update its score if it already exists",
        "O(log(N)) for each item added, where N is the number of elements in the sorted set.",
        zadd
    ),
    zset_cmd!(
        "zincrby",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RW_ACCESS_UPDATE)],
        "1.2.0",
        "Increment the score of a member in a sorted set",
        "O(log(N)) where N is the number of elements in the sorted set.",
        zincrby
    ),
    zset_cmd!(
        "zrem",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        ONE_DELETE,
        "1.2.0",
        "Remove one or more members from a sorted set",
        "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed.",
        zrem
    ),
    zset_cmd!(
        "zcard",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "1.2.0",
        "Get the number of members in a sorted set",
        "O(1)",
        zcard
    ),
    zset_cmd!(
        "zcount",
        4,
        READONLY | FAST,
        (1, 1, 1),
        ONE_RO,
        "2.0.0",
        "Count the members in a sorted set with scores within the given values",
        "O(log(N)) with N being the number of elements in the sorted set.",
        zcount
    ),
    zset_cmd!(
        "zlexcount",
        4,
        READONLY | FAST,
        (1, 1, 1),
        ONE_RO,
        "2.8.9",
        "Count the number of members in a sorted set between a given lexicographical range",
        "O(log(N)) with N being the number of elements in the sorted set.",
        zlexcount
    ),
    zset_cmd!(
        "zscore",
        3,
        READONLY | FAST,
        (1, 1, 1),
        ONE_RO,
        "1.2.0",
        "Get the score associated with the given member in a sorted set",
        "O(1)",
        zscore
    ),
    zset_cmd!(
        "zmscore",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        ONE_RO,
        "6.2.0",
        "Get the score associated with the given members in a sorted set",
        "O(N) where N is the number of members being requested.",
        zmscore
    ),
    zset_cmd!(
        "zrank",
        3,
        READONLY | FAST,
        (1, 1, 1),
        ONE_RO,
        "2.0.0",
        "Determine the index of a member in a sorted set",
        "O(log(N))",
        zrank
    ),
    zset_cmd!(
        "zrevrank",
        3,
        READONLY | FAST,
        (1, 1, 1),
        ONE_RO,
        "2.0.0",
        "Determine the index of a member in a sorted set, with scores ordered from high to low",
        "O(log(N))",
        zrevrank
    ),
    zset_cmd!(
        "zrange",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "1.2.0",
        "Return a range of members in a sorted set",
        RANGE_CX,
        zrange
    ),
    zset_cmd!(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        (1, 2, 1),
        &[KeySpec::single(1, OW_UPDATE), KeySpec::single(2, RO_ACCESS)],
        "6.2.0",
        "Store a range of members from sorted set into another key",
        "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key.",
        zrangestore
    ),
    zset_cmd!(
        "zrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "1.0.5",
        "Return a range of members in a sorted set, by score",
        RANGE_BY_CX,
        zrangebyscore
    ),
    zset_cmd!(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "2.2.0",
        "Return a range of members in a sorted set, by score, with scores ordered from high to low",
        RANGE_BY_CX,
        zrevrangebyscore
    ),
    zset_cmd!(
        "zrangebylex",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "2.8.9",
        "Return a range of members in a sorted set, by lexicographical range",
        RANGE_BY_CX,
        zrangebylex
    ),
    zset_cmd!(
        "zrevrangebylex",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "2.8.9",
        "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.",
        RANGE_BY_CX,
        zrevrangebylex
    ),
    zset_cmd!(
        "zrevrange",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "1.2.0",
        "Return a range of members in a sorted set, by index, with scores ordered from high to low",
        RANGE_CX,
        zrevrange
    ),
    zset_cmd!(
        "zremrangebyrank",
        4,
        WRITE,
        (1, 1, 1),
        ONE_DELETE,
        "2.0.0",
        "Remove all members in a sorted set within the given indexes",
        REMRANGE_CX,
        zremrangebyrank
    ),
    zset_cmd!(
        "zremrangebyscore",
        4,
        WRITE,
        (1, 1, 1),
        ONE_DELETE,
        "1.2.0",
        "Remove all members in a sorted set within the given scores",
        REMRANGE_CX,
        zremrangebyscore
    ),
    zset_cmd!(
        "zremrangebylex",
        4,
        WRITE,
        (1, 1, 1),
        ONE_DELETE,
        "2.8.9",
        "Remove all members in a sorted set between the given lexicographical range",
        REMRANGE_CX,
        zremrangebylex
    ),
    zset_cmd!(
        "zpopmin",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        ONE_POP,
        "5.0.0",
        "Remove and return members with the lowest scores in a sorted set",
        POP_CX,
        zpopmin
    ),
    zset_cmd!(
        "zpopmax",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        ONE_POP,
        "5.0.0",
        "Remove and return members with the highest scores in a sorted set",
        POP_CX,
        zpopmax
    ),
    zset_cmd!(
        "zmpop",
        -4,
        WRITE | MOVABLE_KEYS,
        (0, 0, 0),
        &[keynum(1, RW_ACCESS_DELETE)],
        "7.0.0",
        "Remove and return members with scores in a sorted set",
        MPOP_CX,
        zmpop
    ),
    zset_cmd!(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        BPOP_KEYS,
        "5.0.0",
        "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available",
        "O(log(N)) with N being the number of elements in the sorted set.",
        bzpopmin
    ),
    zset_cmd!(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        BPOP_KEYS,
        "5.0.0",
        "Remove and return the member with the highest score from one or more sorted sets, or block until one is available",
        "O(log(N)) with N being the number of elements in the sorted set.",
        bzpopmax
    ),
    zset_cmd!(
        "bzmpop",
        -5,
        WRITE | BLOCKING | MOVABLE_KEYS,
        (0, 0, 0),
        &[keynum(2, RW_ACCESS_DELETE)],
        "7.0.0",
        "Remove and return members with scores in a sorted set or block until one is available",
        MPOP_CX,
        bzmpop
    ),
    zset_cmd!(
        "zrandmember",
        -2,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "6.2.0",
        "Get one or multiple random elements from a sorted set",
        "O(N) where N is the number of elements returned",
        zrandmember,
        &["nondeterministic_output"]
    ),
    zset_cmd!(
        "zunion",
        -3,
        READONLY | MOVABLE_KEYS,
        (0, 0, 0),
        READ_KEYNUM,
        "6.2.0",
        "Add multiple sorted sets",
        UNION_CX,
        zunion
    ),
    zset_cmd!(
        "zinter",
        -3,
        READONLY | MOVABLE_KEYS,
        (0, 0, 0),
        READ_KEYNUM,
        "6.2.0",
        "Intersect multiple sorted sets",
        INTER_CX,
        zinter
    ),
    zset_cmd!(
        "zdiff",
        -3,
        READONLY | MOVABLE_KEYS,
        (0, 0, 0),
        READ_KEYNUM,
        "6.2.0",
        "Subtract multiple sorted sets",
        DIFF_CX,
        zdiff
    ),
    zset_cmd!(
        "zunionstore",
        -4,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        STORE_KEYNUM,
        "2.0.0",
        "Add multiple sorted sets and store the resulting sorted set in a new key",
        "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.",
        zunionstore
    ),
    zset_cmd!(
        "zinterstore",
        -4,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        STORE_KEYNUM,
        "2.0.0",
        "Intersect multiple sorted sets and store the resulting sorted set in a new key",
        INTER_CX,
        zinterstore
    ),
    zset_cmd!(
        "zdiffstore",
        -4,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        STORE_KEYNUM,
        "6.2.0",
        "Subtract multiple sorted sets and store the resulting sorted set in a new key",
        DIFF_CX,
        zdiffstore
    ),
    zset_cmd!(
        "zintercard",
        -3,
        READONLY | MOVABLE_KEYS,
        (0, 0, 0),
        READ_KEYNUM,
        "7.0.0",
        "Intersect multiple sorted sets and return the cardinality of the result",
        "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets.",
        zintercard
    ),
    zset_cmd!(
        "zscan",
        -3,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "2.8.0",
        "Incrementally iterate sorted sets elements and associated scores",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..",
        zscan,
        &["nondeterministic_output"]
    ),
];

// ---------------------------------------------------------------------------------------
// Shared helpers

fn wrongtype() -> Error {
    Error::msg(error::WRONGTYPE)
}

fn syntax() -> Error {
    Error::msg(error::SYNTAX)
}

fn not_float_range() -> Error {
    Error::msg("ERR min or max is not a float")
}

fn not_lex_range() -> Error {
    Error::msg("ERR min or max not valid string range item")
}

fn zset_mut(v: Option<&mut Value>) -> Result<&mut ZSetValue, Error> {
    match v {
        Some(Value::ZSet(z)) => Ok(z),
        _ => Err(wrongtype()),
    }
}

/// A read lookup (counts a keyspace hit or miss): `None` for a missing key, WRONGTYPE for
/// another type.
fn read<'g>(g: &'g mut Guard<'_>, db: usize, key: &[u8]) -> Result<Option<&'g ZSetValue>, Error> {
    match g.lookup_read(db, key).map(|e| e.into_value().as_other()) {
        None => Ok(None),
        Some(Some(Value::ZSet(z))) => Ok(Some(z)),
        Some(_) => Err(wrongtype()),
    }
}

/// A write lookup (no hit/miss accounting), otherwise like [`read`].
fn write<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g mut ZSetValue>, Error> {
    match g.get(db, key) {
        None => Ok(None),
        Some(e) => zset_mut(e.into_value_mut()).map(Some),
    }
}

/// Deletes `key` if its sorted set became empty (Redis never keeps empty collections),
/// notifying `del`.
fn delete_if_empty(ctx: &Ctx<'_>, g: &mut Guard<'_>, db: usize, key: &[u8]) {
    if let Some(e) = g.get(db, key)
        && let Some(Value::ZSet(z)) = e.value().as_other()
        && z.is_empty()
    {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    }
}

fn resp3(ctx: &Ctx<'_>) -> bool {
    ctx.client.proto == Protocol::Resp3
}

/// Members with optional scores: a flat array in RESP2 (`m1 s1 m2 s2`), an array of
/// `[member, score]` pairs in RESP3, as Redis 7.0's zrange result handler emits them.
fn members_reply(ctx: &Ctx<'_>, items: Vec<(Bytes, f64)>, withscores: bool) -> Frame {
    if !withscores {
        return Frame::Array(items.into_iter().map(|(m, _)| Frame::Bulk(m)).collect());
    }
    if resp3(ctx) {
        Frame::Array(
            items
                .into_iter()
                .map(|(m, s)| Frame::Array(vec![Frame::Bulk(m), Frame::Double(s)]))
                .collect(),
        )
    } else {
        let mut out = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            out.push(Frame::Bulk(m));
            out.push(Frame::Double(s));
        }
        Frame::Array(out)
    }
}

/// `n` elements walking from ascending rank `start`, up or down, handed to `out`.
fn collect(z: &ZSetValue, start: usize, rev: bool, n: usize, out: &mut impl Sink) {
    if n == 0 {
        return;
    }
    out.announce(n);
    let mut left = n;
    z.walk(start, rev, |m, s| {
        out.put(m, s);
        left -= 1;
        left > 0
    });
}

/// Most members an announced count reserves room for up front (a huge range grows as it
/// goes, so a count alone never reserves much memory).
const ANNOUNCED_MAX: usize = 1 << 12;

/// Where a range read puts the members it walks (in reply order).
trait Sink {
    fn put(&mut self, member: &[u8], score: f64);

    /// Told before the walk how many members follow.
    fn announce(&mut self, _n: usize) {}
}

/// Members copied out, for a command that works on them after the walk (ZRANGESTORE).
impl Sink for Vec<(Bytes, f64)> {
    fn put(&mut self, member: &[u8], score: f64) {
        self.push((Bytes::copy_from_slice(member), score));
    }

    fn announce(&mut self, n: usize) {
        self.reserve(n.min(ANNOUNCED_MAX));
    }
}

/// A range read's reply, built during the walk: members (and scores) are written into
/// one buffer in their wire form (`Frame::Bulks`) instead of one allocation each; only
/// RESP3's WITHSCORES pairs (nested arrays with doubles) are frames.
enum ReplyBuilder {
    Bulks {
        list: BulkList,
        withscores: bool,
        /// Members announced by `announce`: the first one sizes the buffer for all.
        expected: usize,
    },
    Pairs(Vec<Frame>),
}

impl ReplyBuilder {
    fn new(ctx: &Ctx<'_>, withscores: bool) -> ReplyBuilder {
        if withscores && resp3(ctx) {
            ReplyBuilder::Pairs(Vec::new())
        } else {
            ReplyBuilder::Bulks {
                list: BulkList::default(),
                withscores,
                expected: 0,
            }
        }
    }

    fn finish(self) -> Frame {
        match self {
            ReplyBuilder::Bulks { list, .. } => Frame::Bulks(list),
            ReplyBuilder::Pairs(v) => Frame::Array(v),
        }
    }
}

impl Sink for ReplyBuilder {
    fn put(&mut self, member: &[u8], score: f64) {
        match self {
            ReplyBuilder::Bulks {
                list,
                withscores,
                expected,
            } => {
                // A score is at most 24 characters (`%.17g`) plus its own header.
                let score_room = if *withscores { 32 } else { 0 };
                list.presize(*expected, member.len() + score_room);
                list.push(member);
                if *withscores {
                    list.push_double(score);
                }
            }
            ReplyBuilder::Pairs(v) => v.push(Frame::Array(vec![
                Frame::bulk(member),
                Frame::Double(score),
            ])),
        }
    }

    fn announce(&mut self, n: usize) {
        match self {
            ReplyBuilder::Bulks { expected, .. } => *expected = n,
            ReplyBuilder::Pairs(v) => v.reserve(n.min(ANNOUNCED_MAX)),
        }
    }
}

/// Redis's rank-range normalisation (`ZRANGE`, `ZREMRANGEBYRANK`): negative indexes count
/// from the end, the start is clamped at 0 and the end at the last element. Returns the
/// inclusive ascending ranks, or `None` for an empty range.
fn rank_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let llen = len as i128;
    let (mut s, mut e) = (i128::from(start), i128::from(end));
    if s < 0 {
        s += llen;
    }
    if e < 0 {
        e += llen;
    }
    if s < 0 {
        s = 0;
    }
    if s > e || s >= llen {
        return None;
    }
    if e >= llen {
        e = llen - 1;
    }
    Some((s as usize, e as usize))
}

/// The elements of ascending ranks `[lo, hi)` after skipping `offset` and keeping at most
/// `limit` (negative: all), walked from the low end or (`rev`) the high end, with
/// Redis's LIMIT semantics: a negative offset skips everything.
fn collect_limited(
    z: &ZSetValue,
    (lo, hi): (usize, usize),
    rev: bool,
    offset: i64,
    limit: i64,
    out: &mut impl Sink,
) {
    if offset < 0 || hi <= lo {
        return;
    }
    let avail = (hi - lo) as u64;
    let off = offset as u64;
    if off >= avail {
        return;
    }
    let mut n = avail - off;
    if limit >= 0 {
        n = n.min(limit as u64);
    }
    let n = n as usize;
    let off = off as usize;
    if rev {
        collect(z, hi - 1 - off, true, n, out)
    } else {
        collect(z, lo + off, false, n, out)
    }
}

use crate::rand::command_rng;

// ---------------------------------------------------------------------------------------
// ZADD / ZINCRBY

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

/// What one ZADD pair did.
enum AddOutcome {
    Added(f64),
    Updated(f64),
    /// Unchanged (same score) but processed: its score counts as the reply of INCR.
    Same(f64),
    /// Skipped by NX/XX/GT/LT.
    Nop,
    Nan,
}

/// Redis's zsetAdd decision for one member.
fn add_one(
    z: &mut ZSetValue,
    member: &[u8],
    score: f64,
    f: AddFlags,
    enc: &basalt_engine::EncodingLimits,
) -> AddOutcome {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return AddOutcome::Nop;
            }
            let mut score = score;
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return AddOutcome::Nan;
                }
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return AddOutcome::Nop;
            }
            // `!=` as Redis compares: -0 and 0 are the same score, nothing moves.
            if score != cur {
                z.insert(member, score, enc);
                AddOutcome::Updated(score)
            } else {
                AddOutcome::Same(score)
            }
        }
        None => {
            if f.xx {
                return AddOutcome::Nop;
            }
            z.insert(member, score, enc);
            AddOutcome::Added(score)
        }
    }
}

fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, AddFlags::default(), false)
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zadd_generic(
        ctx,
        args,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
        true,
    )
}

fn zadd_generic(ctx: &mut Ctx<'_>, args: &[Bytes], mut f: AddFlags, zincrby: bool) -> CmdResult {
    let mut ch = false;
    let mut scoreidx = 2;
    if !zincrby {
        while scoreidx < args.len() {
            let opt = &args[scoreidx];
            if is(opt, "nx") {
                f.nx = true;
            } else if is(opt, "xx") {
                f.xx = true;
            } else if is(opt, "ch") {
                ch = true;
            } else if is(opt, "incr") {
                f.incr = true;
            } else if is(opt, "gt") {
                f.gt = true;
            } else if is(opt, "lt") {
                f.lt = true;
            } else {
                break;
            }
            scoreidx += 1;
        }
    }
    let elements = args.len() - scoreidx;
    if !elements.is_multiple_of(2) || elements == 0 {
        return Err(syntax());
    }
    let elements = elements / 2;
    if f.nx && f.xx {
        return Err(Error::msg(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(Error::msg(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && elements > 1 {
        return Err(Error::msg(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    // Every score is checked before anything changes.
    let mut scores = Vec::with_capacity(elements);
    for j in 0..elements {
        scores.push(args::float(&args[scoreidx + j * 2])?);
    }
    let db = ctx.client.db;
    let key = &args[1];
    let enc = ctx.enc();
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let mut created = None;
    let z = match write(&mut g, db, key)? {
        Some(z) => z,
        None => {
            if f.xx {
                return Ok(if f.incr {
                    Frame::Null
                } else {
                    Frame::Integer(0)
                });
            }
            created.insert(ZSetValue::for_first_member(&enc, args[scoreidx + 1].len()))
        }
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    for (j, &score) in scores.iter().enumerate() {
        let member = &args[scoreidx + 1 + j * 2];
        match add_one(z, member, score, f, &enc) {
            AddOutcome::Added(s) => {
                added += 1;
                processed += 1;
                last = s;
            }
            AddOutcome::Updated(s) => {
                updated += 1;
                processed += 1;
                last = s;
            }
            AddOutcome::Same(s) => {
                processed += 1;
                last = s;
            }
            AddOutcome::Nop => {}
            AddOutcome::Nan => {
                nan = true;
                break;
            }
        }
    }
    if let Some(z) = created.take()
        && !z.is_empty()
    {
        g.insert(db, key, Value::from(z), 0);
    }
    if added > 0 || updated > 0 {
        // Redis replies first, then notifies (after the key's `new`).
        ctx.reply_here();
        ctx.notify(ev::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    ctx.changed((added + updated) as u64);
    // Signalled before the key is released (see `Registry::turn_ahead`).
    if added > 0 {
        ctx.signal_ready(db, key);
    }
    drop(g);
    if nan {
        return Err(Error::msg("ERR resulting score is not a number (NaN)"));
    }
    Ok(if f.incr {
        if processed > 0 {
            Frame::Double(last)
        } else {
            Frame::Null
        }
    } else if ch {
        Frame::Integer(added + updated)
    } else {
        Frame::Integer(added)
    })
}

// ---------------------------------------------------------------------------------------
// Simple reads and removals

fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(z) = write(&mut g, db, key)? else {
        return Ok(Frame::Integer(0));
    };
    let mut removed = 0;
    for m in &args[2..] {
        if z.remove(m).is_some() {
            removed += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    if removed > 0 {
        ctx.notify(ev::ZSET, "zrem", key);
        delete_if_empty(ctx, &mut g, db, key);
    }
    ctx.changed(removed as u64);
    Ok(Frame::Integer(removed))
}

fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(Frame::Integer(
        read(&mut g, ctx.client.db, &args[1])?.map_or(0, |z| z.len() as i64),
    ))
}

fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(
        match read(&mut g, ctx.client.db, &args[1])?.and_then(|z| z.score(&args[2])) {
            Some(s) => Frame::Double(s),
            None => Frame::Null,
        },
    )
}

fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let z = read(&mut g, ctx.client.db, &args[1])?;
    Ok(Frame::Array(
        args[2..]
            .iter()
            .map(|m| match z.as_ref().and_then(|z| z.score(m)) {
                Some(s) => Frame::Double(s),
                None => Frame::Null,
            })
            .collect(),
    ))
}

fn rank_generic(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(z) = read(&mut g, ctx.client.db, &args[1])? else {
        return Ok(Frame::Null);
    };
    Ok(match z.rank(&args[2]) {
        Some(r) if rev => Frame::Integer((z.len() - 1 - r) as i64),
        Some(r) => Frame::Integer(r as i64),
        None => Frame::Null,
    })
}

fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, args, true)
}

fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&args[2], &args[3]).ok_or_else(not_float_range)?;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(z) = read(&mut g, ctx.client.db, &args[1])? else {
        return Ok(Frame::Integer(0));
    };
    let (lo, hi) = z.score_ranks(&range);
    Ok(Frame::Integer((hi - lo) as i64))
}

fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&args[2], &args[3]).ok_or_else(not_lex_range)?;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(z) = read(&mut g, ctx.client.db, &args[1])? else {
        return Ok(Frame::Integer(0));
    };
    let (lo, hi) = z.lex_ranks(&range, false);
    Ok(Frame::Integer((hi - lo) as i64))
}

// ---------------------------------------------------------------------------------------
// The ZRANGE family

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// A parsed range request.
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// The elements a range request selects, in reply order.
fn select(z: &ZSetValue, range: &Range, rev: bool, offset: i64, limit: i64, out: &mut impl Sink) {
    match range {
        Range::Rank(start, end) => {
            if let Some((s, e)) = rank_range(*start, *end, z.len()) {
                let n = e - s + 1;
                if rev {
                    // Reverse ranks count from the top.
                    collect(z, z.len() - 1 - s, true, n, out)
                } else {
                    collect(z, s, false, n, out)
                }
            }
        }
        Range::Score(r) => collect_limited(z, z.score_ranks(r), rev, offset, limit, out),
        Range::Lex(r) => collect_limited(z, z.lex_ranks(r, rev), rev, offset, limit, out),
    }
}

/// Redis's zrangeGenericCommand: `src` is the source key's index; options follow the
/// two bounds. `store` is ZRANGESTORE (destination at index 1).
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    src: usize,
    store: bool,
    mut rangetype: RangeType,
    mut direction: Direction,
) -> CmdResult {
    let (mut minidx, mut maxidx) = (src + 1, src + 2);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = src + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && is(a, "withscores") {
            withscores = true;
        } else if is(a, "limit") && left >= 2 {
            offset = args::int(&args[j + 1])?;
            limit = args::int(&args[j + 2])?;
            j += 2;
        } else if direction == Direction::Auto && is(a, "rev") {
            direction = Direction::Reverse;
        } else if rangetype == RangeType::Auto && is(a, "bylex") {
            rangetype = RangeType::Lex;
        } else if rangetype == RangeType::Auto && is(a, "byscore") {
            rangetype = RangeType::Score;
        } else {
            return Err(syntax());
        }
        j += 1;
    }
    let rev = direction == Direction::Reverse;
    if rangetype == RangeType::Auto {
        rangetype = RangeType::Rank;
    }
    if limit != -1 && rangetype == RangeType::Rank {
        return Err(Error::msg(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rangetype == RangeType::Lex {
        return Err(Error::msg(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    if rev && rangetype != RangeType::Rank {
        // Reversed score and lex ranges are given as max, min.
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let range = match rangetype {
        RangeType::Score => Range::Score(
            ScoreRange::parse(&args[minidx], &args[maxidx]).ok_or_else(not_float_range)?,
        ),
        RangeType::Lex => {
            Range::Lex(LexRange::parse(&args[minidx], &args[maxidx]).ok_or_else(not_lex_range)?)
        }
        _ => Range::Rank(args::int(&args[minidx])?, args::int(&args[maxidx])?),
    };
    let db = ctx.client.db;
    let key = &args[src];
    if !store {
        let mut reply = ReplyBuilder::new(ctx, withscores);
        let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
        if let Some(z) = read(&mut g, db, key)? {
            select(z, &range, rev, offset, limit, &mut reply);
        }
        drop(g);
        return Ok(reply.finish());
    }
    let dst = &args[1];
    let enc = ctx.enc();
    let mut g = ctx.srv.keyspace.lock_keys(&args[1..3], ctx.now);
    let mut items = Vec::new();
    if let Some(z) = read(&mut g, db, key)? {
        select(z, &range, rev, offset, limit, &mut items);
    }
    let n = items.len();
    ctx.reply_here();
    if n == 0 {
        if g.remove(db, dst).is_some() {
            ctx.notify(ev::GENERIC, "del", dst);
        }
        return Ok(Frame::Integer(0));
    }
    // Built as Redis builds it: a skiplist from the start when a rank range is known to
    // be too long, otherwise a listpack fed in reply order that converts at the first
    // member that does not fit (scores added while it was a listpack lose the sign of a
    // zero, as Redis's do).
    let mut z = if matches!(range, Range::Rank(..)) && n > enc.zset_max_listpack_entries {
        ZSetValue::new_skiplist()
    } else {
        ZSetValue::new()
    };
    for (m, s) in &items {
        z.insert(m, *s, &enc);
    }
    g.insert(db, dst, Value::from(z), 0);
    ctx.reply_here();
    ctx.notify(ev::ZSET, "zrangestore", dst);
    drop(g);
    ctx.signal_ready(db, dst);
    Ok(Frame::Integer(n as i64))
}

fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, false, RangeType::Auto, Direction::Auto)
}

fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 2, true, RangeType::Auto, Direction::Auto)
}

fn zrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, false, RangeType::Rank, Direction::Reverse)
}

fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, false, RangeType::Score, Direction::Forward)
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, false, RangeType::Score, Direction::Reverse)
}

fn zrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, false, RangeType::Lex, Direction::Forward)
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, false, RangeType::Lex, Direction::Reverse)
}

// ---------------------------------------------------------------------------------------
// ZREMRANGEBY*

fn zremrange_generic(ctx: &mut Ctx<'_>, args: &[Bytes], rangetype: RangeType) -> CmdResult {
    let range = match rangetype {
        RangeType::Score => {
            Range::Score(ScoreRange::parse(&args[2], &args[3]).ok_or_else(not_float_range)?)
        }
        RangeType::Lex => {
            Range::Lex(LexRange::parse(&args[2], &args[3]).ok_or_else(not_lex_range)?)
        }
        _ => Range::Rank(args::int(&args[2])?, args::int(&args[3])?),
    };
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(z) = write(&mut g, db, key)? else {
        return Ok(Frame::Integer(0));
    };
    let (lo, hi) = match &range {
        Range::Rank(s, e) => match rank_range(*s, *e, z.len()) {
            None => (0, 0),
            Some((s, e)) => (s, e + 1),
        },
        Range::Score(r) => z.score_ranks(r),
        Range::Lex(r) => z.lex_ranks(r, false),
    };
    let removed = z.remove_ranks(lo, hi);
    if removed > 0 {
        let event = match rangetype {
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        ctx.notify(ev::ZSET, event, key);
        delete_if_empty(ctx, &mut g, db, key);
    }
    ctx.changed(removed as u64);
    Ok(Frame::Integer(removed as i64))
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeType::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeType::Score)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeType::Lex)
}

// ---------------------------------------------------------------------------------------
// Pops

/// Where the pop happens and how many; the result of the search over `keys`.
struct Popped {
    key: Bytes,
    items: Vec<(Bytes, f64)>,
}

/// Redis's genericZpopCommand search: the first existing key among `keys` (WRONGTYPE if
/// it is not a sorted set, unless `skip_wrong` — a blocked client being re-run, which
/// Redis would simply not serve from such a key) gives up to `count` elements.
fn pop_first(
    ctx: &mut Ctx<'_>,
    g: &mut Guard<'_>,
    db: usize,
    keys: &[Bytes],
    max: bool,
    count: usize,
    skip_wrong: bool,
) -> Result<Option<Popped>, Error> {
    for key in keys {
        // A woken client leaves a key to a waiter ahead of it that has its turn (as the
        // list pops do).
        if skip_wrong && ctx.turn_ahead(key) {
            continue;
        }
        let z = match write(g, db, key) {
            Ok(Some(z)) => z,
            Ok(None) => continue,
            Err(_) if skip_wrong => {
                ctx.skipped_wrong_type();
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut items = Vec::with_capacity(count.min(z.len()));
        while items.len() < count {
            match z.pop(max) {
                Some(p) => items.push(p),
                None => break,
            }
        }
        // Redis replies with the popped elements, then notifies.
        ctx.reply_here();
        ctx.notify(ev::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        ctx.changed(items.len() as u64);
        delete_if_empty(ctx, g, db, key);
        return Ok(Some(Popped {
            key: key.clone(),
            items,
        }));
    }
    Ok(None)
}

fn pair(m: Bytes, s: f64) -> Frame {
    Frame::Array(vec![Frame::Bulk(m), Frame::Double(s)])
}

fn zpop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(syntax());
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => Some(
            args::int(a)
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| Error::msg(error::NOT_POSITIVE))?,
        ),
    };
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let want = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    // A count of 0 still checks the key's type first, as Redis does.
    if count == Some(0) {
        write(&mut g, db, &args[1])?;
        return Ok(Frame::Array(Vec::new()));
    }
    let popped = pop_first(ctx, &mut g, db, &args[1..2], max, want, false)?;
    drop(g);
    let items = popped.map(|p| p.items).unwrap_or_default();
    let nested = resp3(ctx) && count.is_some();
    Ok(Frame::Array(if nested {
        items.into_iter().map(|(m, s)| pair(m, s)).collect()
    } else {
        let mut out = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            out.push(Frame::Bulk(m));
            out.push(Frame::Double(s));
        }
        out
    }))
}

fn zpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, args, true)
}

/// True while this client's blocking command is being re-run after a wake-up.
fn rerun(ctx: &Ctx<'_>) -> bool {
    ctx.srv.blocking.is_blocked(ctx.client.id)
}

fn bzpop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CmdResult {
    let deadline = args::timeout_deadline(&args[args.len() - 1], ctx.now)?;
    let keys = &args[1..args.len() - 1];
    let db = ctx.client.db;
    let skip_wrong = rerun(ctx);
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    let popped = pop_first(ctx, &mut g, db, keys, max, 1, skip_wrong)?;
    drop(g);
    propagate_zpop(ctx, popped.as_ref(), max, false);
    if let Some(Popped { key, mut items }) = popped
        && let Some((m, s)) = items.pop()
    {
        return Ok(Frame::Array(vec![
            Frame::Bulk(key),
            Frame::Bulk(m),
            Frame::Double(s),
        ]));
    }
    if !ctx.can_block() {
        return Ok(Frame::NullArray);
    }
    ctx.block(keys.to_vec(), deadline)
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, args, true)
}

/// ZMPOP/BZMPOP arguments from `numkeys_idx` on: the keys, MIN|MAX, and the count.
fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<(&[Bytes], bool, usize), Error> {
    let numkeys = args::int(&args[numkeys_idx])
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::msg("ERR numkeys should be greater than 0"))?;
    let where_idx = (numkeys_idx as u64).saturating_add(numkeys as u64) + 1;
    if where_idx >= args.len() as u64 {
        return Err(syntax());
    }
    let where_idx = where_idx as usize;
    let max = if is(&args[where_idx], "min") {
        false
    } else if is(&args[where_idx], "max") {
        true
    } else {
        return Err(syntax());
    };
    let mut count: Option<usize> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if count.is_none() && is(&args[j], "count") && more > 0 {
            j += 1;
            let c = args::int(&args[j])
                .ok()
                .filter(|c| *c >= 1)
                .ok_or_else(|| Error::msg("ERR count should be greater than 0"))?;
            count = Some(usize::try_from(c).unwrap_or(usize::MAX));
        } else {
            return Err(syntax());
        }
        j += 1;
    }
    Ok((&args[numkeys_idx + 1..where_idx], max, count.unwrap_or(1)))
}

/// Logs a blocking or multi-key pop as the ZPOPMIN/ZPOPMAX it did (`with_count`: with
/// the number popped), or nothing when nothing was popped.
fn propagate_zpop(ctx: &mut Ctx<'_>, popped: Option<&Popped>, max: bool, with_count: bool) {
    if !ctx.aof_on() {
        return;
    }
    let Some(p) = popped.filter(|p| !p.items.is_empty()) else {
        ctx.propagate_nothing();
        return;
    };
    let name = Bytes::from_static(if max { b"ZPOPMAX" } else { b"ZPOPMIN" });
    let mut effect = vec![name, p.key.clone()];
    if with_count {
        effect.push(crate::aof::int_arg(p.items.len()));
    }
    ctx.propagate(effect);
}

fn mpop_reply(popped: Option<Popped>) -> Frame {
    match popped {
        None => Frame::NullArray,
        Some(p) => Frame::Array(vec![
            Frame::Bulk(p.key),
            Frame::Array(p.items.into_iter().map(|(m, s)| pair(m, s)).collect()),
        ]),
    }
}

fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 1)?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    let popped = pop_first(ctx, &mut g, db, keys, max, count, false)?;
    drop(g);
    propagate_zpop(ctx, popped.as_ref(), max, true);
    Ok(mpop_reply(popped))
}

fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let deadline = args::timeout_deadline(&args[1], ctx.now)?;
    let (keys, max, count) = parse_mpop(args, 2)?;
    let db = ctx.client.db;
    let skip_wrong = rerun(ctx);
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    let popped = pop_first(ctx, &mut g, db, keys, max, count, skip_wrong)?;
    drop(g);
    propagate_zpop(ctx, popped.as_ref(), max, true);
    if popped.is_some() {
        return Ok(mpop_reply(popped));
    }
    if !ctx.can_block() {
        return Ok(Frame::NullArray);
    }
    ctx.block(keys.to_vec(), deadline)
}

// ---------------------------------------------------------------------------------------
// ZRANDMEMBER

/// Largest number of picks ZRANDMEMBER serves with a negative count. Redis 7.0 has no
/// bound and builds the whole reply in memory (`ZRANDMEMBER z -4611686018427387903
/// WITHSCORES` exhausts the machine); Basalt answers `ERR value is out of range` instead,
/// as HRANDFIELD does.
use crate::rand::MAX_RANDOM_PICKS;

fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    if args.len() < 3 {
        let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
        let Some(z) = read(&mut g, db, &args[1])? else {
            return Ok(Frame::Null);
        };
        let mut rng = command_rng();
        let r = (rng() % z.len() as u64) as usize;
        return Ok(match z.get(r) {
            Some((m, _)) => Frame::bulk(m),
            None => Frame::Null,
        });
    }
    let count = args::int(&args[2])?;
    if count == i64::MIN {
        return Err(Error::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if args.len() > 4 || (args.len() == 4 && !is(&args[3], "withscores")) {
        return Err(syntax());
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(Error::msg("ERR value is out of range"));
    }
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(z) = read(&mut g, db, &args[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Frame::Array(Vec::new()));
    }
    let size = z.len();
    let mut rng = command_rng();
    let items: Vec<(Bytes, f64)> = if count < 0 {
        // Repetitions allowed: independent uniform picks, bounded (Redis 7.0 is not).
        if count.unsigned_abs() > MAX_RANDOM_PICKS {
            return Err(Error::msg("ERR value is out of range"));
        }
        let n = count.unsigned_abs() as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let r = (rng() % size as u64) as usize;
            if let Some((m, s)) = z.get(r) {
                out.push((Bytes::copy_from_slice(m), s));
            }
        }
        out
    } else if count as u64 >= size as u64 {
        // The whole set, highest rank first (what Redis 7.0 returns here).
        let mut all = Vec::with_capacity(size);
        collect(z, size - 1, true, size, &mut all);
        all
    } else {
        let n = count as usize;
        let mut ranks: Vec<usize> = if n * 3 > size {
            // Most of the set: a partial shuffle of every rank.
            let mut all: Vec<usize> = (0..size).collect();
            for i in 0..n {
                let j = i + (rng() % (size - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(n);
            all
        } else {
            let mut seen = std::collections::HashSet::with_capacity(n);
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let r = (rng() % size as u64) as usize;
                if seen.insert(r) {
                    out.push(r);
                }
            }
            out
        };
        ranks.truncate(n);
        ranks
            .into_iter()
            .filter_map(|r| z.get(r).map(|(m, s)| (Bytes::copy_from_slice(m), s)))
            .collect()
    };
    drop(g);
    Ok(members_reply(ctx, items, withscores))
}

// ---------------------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF and their STORE forms, ZINTERCARD

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// A value moved out of its entry for the duration of a set operation.
enum Taken {
    Z(ZSetValue),
    S(SetValue),
}

/// One input of a set operation, read without copying.
#[derive(Clone, Copy)]
enum Input<'a> {
    Missing,
    Z(&'a ZSetValue),
    S(&'a SetValue),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Missing => 0,
            Input::Z(z) => z.len(),
            Input::S(s) => s.len(),
        }
    }

    /// The member's score (plain set members score 1).
    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Input::Missing => None,
            Input::Z(z) => z.score(m),
            Input::S(s) => s.contains(m).then_some(1.0),
        }
    }

    /// Visits every element until `f` returns false.
    fn for_each(&self, mut f: impl FnMut(&[u8], f64) -> bool) {
        match self {
            Input::Missing => {}
            Input::Z(z) => z.walk(0, false, f),
            Input::S(s) => s.for_each_while(|m| m.with_bytes(|b| f(b, 1.0))),
        }
    }
}

/// The inputs of a set operation: values moved out of their entries (so several can be
/// read at once through one guard, without copying) and put back by [`Sources::restore`].
struct Sources {
    taken: Vec<(Bytes, Taken)>,
    /// Per input key: the index in `taken`, or `None` for a missing key.
    slots: Vec<Option<usize>>,
}

impl Sources {
    /// Takes the values at `keys`; on a key of another type puts back what was taken and
    /// fails with WRONGTYPE (Redis checks every key before the options).
    fn take(
        g: &mut Guard<'_>,
        db: usize,
        keys: &[Bytes],
        for_write: bool,
    ) -> Result<Sources, Error> {
        let mut src = Sources {
            taken: Vec::new(),
            slots: Vec::with_capacity(keys.len()),
        };
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for key in keys {
            let entry = if for_write {
                g.get(db, key)
            } else {
                g.lookup_read_mut(db, key)
            };
            if let Some(&i) = seen.get(key.as_ref()) {
                src.slots.push(Some(i));
                continue;
            }
            let taken = match entry {
                None => {
                    src.slots.push(None);
                    continue;
                }
                Some(e) => match e.into_value_mut() {
                    Some(Value::ZSet(z)) => Taken::Z(std::mem::take(z)),
                    Some(Value::Set(s)) => Taken::S(std::mem::take(s)),
                    _ => {
                        src.restore(g, db);
                        return Err(wrongtype());
                    }
                },
            };
            let i = src.taken.len();
            src.taken.push((key.clone(), taken));
            seen.insert(key.as_ref(), i);
            src.slots.push(Some(i));
        }
        Ok(src)
    }

    fn inputs(&self) -> Vec<(Input<'_>, Option<usize>)> {
        self.slots
            .iter()
            .map(|s| match s {
                None => (Input::Missing, None),
                Some(i) => (
                    match &self.taken[*i].1 {
                        Taken::Z(z) => Input::Z(z),
                        Taken::S(s) => Input::S(s),
                    },
                    Some(*i),
                ),
            })
            .collect()
    }

    fn restore(self, g: &mut Guard<'_>, db: usize) {
        for (key, value) in self.taken {
            if let Some(e) = g.get(db, &key) {
                match (e.into_value_mut(), value) {
                    (Some(Value::ZSet(slot)), Taken::Z(z)) => **slot = z,
                    (Some(Value::Set(slot)), Taken::S(s)) => **slot = s,
                    _ => {}
                }
            }
        }
    }
}

/// Redis's zunionInterAggregate: a sum that is NaN (inf + -inf) becomes 0; MIN/MAX keep
/// the current value when the new one is NaN.
fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// What a set operation produces.
enum OpResult {
    Elements(Vec<(Bytes, f64)>),
    Cardinality(usize),
}

/// Computes a set operation over `inputs` (each with its identity, to recognise a key
/// named twice) with per-input `weights`.
fn compute(
    op: SetOp,
    inputs: &[(Input<'_>, Option<usize>)],
    weights: &[f64],
    agg: Aggregate,
    card_limit: Option<usize>,
) -> OpResult {
    match op {
        SetOp::Union => {
            // Smallest inputs first (a stable sort, like glibc's qsort here), which also
            // fixes the order floating-point sums are taken in.
            let mut order: Vec<usize> = (0..inputs.len()).collect();
            order.sort_by_key(|&i| inputs[i].0.len());
            let mut acc: HashMap<Bytes, f64> = HashMap::new();
            for i in order {
                let w = weights[i];
                inputs[i].0.for_each(|m, s| {
                    let mut v = w * s;
                    if v.is_nan() {
                        v = 0.0;
                    }
                    match acc.entry(Bytes::copy_from_slice(m)) {
                        MapEntry::Occupied(mut o) => aggregate(o.get_mut(), v, agg),
                        MapEntry::Vacant(e) => {
                            e.insert(v);
                        }
                    }
                    true
                });
            }
            OpResult::Elements(acc.into_iter().collect())
        }
        SetOp::Inter => {
            let mut order: Vec<usize> = (0..inputs.len()).collect();
            order.sort_by_key(|&i| inputs[i].0.len());
            let mut out = Vec::new();
            let mut card = 0usize;
            let first = order[0];
            if inputs[first].0.len() == 0 {
                return match card_limit {
                    Some(_) => OpResult::Cardinality(0),
                    None => OpResult::Elements(out),
                };
            }
            inputs[first].0.for_each(|m, s| {
                let mut score = weights[first] * s;
                if score.is_nan() {
                    score = 0.0;
                }
                for &j in &order[1..] {
                    let v = if inputs[j].1.is_some() && inputs[j].1 == inputs[first].1 {
                        Some(s)
                    } else {
                        inputs[j].0.score(m)
                    };
                    match v {
                        Some(v) => aggregate(&mut score, v * weights[j], agg),
                        None => return true,
                    }
                }
                match card_limit {
                    Some(limit) => {
                        card += 1;
                        limit == 0 || card < limit
                    }
                    None => {
                        out.push((Bytes::copy_from_slice(m), score));
                        true
                    }
                }
            });
            match card_limit {
                Some(_) => OpResult::Cardinality(card),
                None => OpResult::Elements(out),
            }
        }
        SetOp::Diff => {
            let mut out = Vec::new();
            let (first, rest) = match inputs.split_first() {
                Some(x) => x,
                None => return OpResult::Elements(out),
            };
            first.0.for_each(|m, s| {
                let elsewhere = rest.iter().any(|(inp, _)| inp.score(m).is_some());
                if !elsewhere {
                    out.push((Bytes::copy_from_slice(m), s));
                }
                true
            });
            OpResult::Elements(out)
        }
    }
}

/// Redis's zunionInterDiffGenericCommand. `dst` is the destination's index for the STORE
/// forms; `numkeys_idx` the index of numkeys.
fn zsetop(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    dst: Option<usize>,
    numkeys_idx: usize,
    op: SetOp,
    cardinality_only: bool,
) -> CmdResult {
    let setnum = args::int(&args[numkeys_idx])?;
    if setnum < 1 {
        return Err(Error::msg(format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.fullname
        )));
    }
    if setnum as u64 > (args.len() - (numkeys_idx + 1)) as u64 {
        return Err(syntax());
    }
    let setnum = setnum as usize;
    let keys = &args[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    let db = ctx.client.db;
    let enc = ctx.enc();
    let mut lock: Vec<&Bytes> = keys.iter().collect();
    if let Some(d) = dst {
        lock.push(&args[d]);
    }
    let mut g = ctx.srv.keyspace.lock_keys(&lock, ctx.now);
    let sources = Sources::take(&mut g, db, keys, dst.is_some())?;
    // Options come after the type checks, as in Redis.
    let parsed = parse_setop_options(
        args,
        numkeys_idx + 1 + setnum,
        setnum,
        op,
        dst.is_some(),
        cardinality_only,
    );
    let (weights, agg, withscores, limit) = match parsed {
        Ok(p) => p,
        Err(e) => {
            sources.restore(&mut g, db);
            return Err(e);
        }
    };
    let result = {
        let inputs = sources.inputs();
        compute(
            op,
            &inputs,
            &weights,
            agg,
            cardinality_only.then_some(limit),
        )
    };
    sources.restore(&mut g, db);
    let mut items = match result {
        OpResult::Cardinality(n) => return Ok(Frame::Integer(n as i64)),
        OpResult::Elements(v) => v,
    };
    items.sort_by(|a, b| cmp_key(a.1, &a.0, b.1, &b.0));
    match dst {
        None => {
            drop(g);
            Ok(members_reply(ctx, items, withscores))
        }
        Some(d) => {
            let dkey = &args[d];
            let n = items.len();
            ctx.reply_here();
            if n == 0 {
                if g.remove(db, dkey).is_some() {
                    ctx.notify(ev::GENERIC, "del", dkey);
                }
                return Ok(Frame::Integer(0));
            }
            g.insert(
                db,
                dkey,
                Value::from(ZSetValue::from_entries(items, &enc)),
                0,
            );
            ctx.reply_here();
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            ctx.notify(ev::ZSET, event, dkey);
            drop(g);
            ctx.signal_ready(db, dkey);
            Ok(Frame::Integer(n as i64))
        }
    }
}

/// WEIGHTS, AGGREGATE, WITHSCORES and LIMIT as each form accepts them.
fn parse_setop_options(
    args: &[Bytes],
    from: usize,
    setnum: usize,
    op: SetOp,
    store: bool,
    cardinality_only: bool,
) -> Result<(Vec<f64>, Aggregate, bool, usize), Error> {
    let mut weights = vec![1.0; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = from;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !cardinality_only && remaining > setnum && is(a, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                *w = basalt_engine::num::parse_f64(&args[j])
                    .ok_or_else(|| Error::msg("ERR weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !cardinality_only && remaining >= 2 && is(a, "aggregate") {
            let v = &args[j + 1];
            agg = if is(v, "sum") {
                Aggregate::Sum
            } else if is(v, "min") {
                Aggregate::Min
            } else if is(v, "max") {
                Aggregate::Max
            } else {
                return Err(syntax());
            };
            j += 2;
        } else if !store && !cardinality_only && is(a, "withscores") {
            withscores = true;
            j += 1;
        } else if cardinality_only && remaining >= 2 && is(a, "limit") {
            let v = args::int(&args[j + 1])
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| Error::msg("ERR LIMIT can't be negative"))?;
            limit = v as usize;
            j += 2;
        } else {
            return Err(syntax());
        }
    }
    Ok((weights, agg, withscores, limit))
}

fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, None, 1, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, None, 1, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, None, 1, SetOp::Diff, false)
}

fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, Some(1), 2, SetOp::Union, false)
}

fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, Some(1), 2, SetOp::Inter, false)
}

fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, Some(1), 2, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zsetop(ctx, args, None, 1, SetOp::Inter, true)
}

// ---------------------------------------------------------------------------------------
// ZSCAN

fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = super::keys::parse_cursor(&args[2])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let empty = || {
        Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"0")),
            Frame::Array(Vec::new()),
        ])
    };
    let Some(z) = read(&mut g, db, &args[1])? else {
        return Ok(empty());
    };
    let mut count = 10usize;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 3;
    while i < args.len() {
        let has_value = args.len() - i >= 2;
        if is(&args[i], "count") && has_value {
            let v = args::int(&args[i + 1])?;
            if v < 1 {
                return Err(syntax());
            }
            count = usize::try_from(v).unwrap_or(usize::MAX);
        } else if is(&args[i], "match") && has_value {
            pattern = Some(&args[i + 1]).filter(|p| p.as_ref() != b"*");
        } else {
            return Err(syntax());
        }
        i += 2;
    }
    let mut out = Vec::new();
    let next = z.scan(cursor, count, |m, s| {
        if let Some(p) = pattern
            && !glob_match(p, m, false)
        {
            return;
        }
        out.push(Frame::bulk(m));
        out.push(Frame::Bulk(Bytes::from(
            basalt_proto::format_double_human(s).into_bytes(),
        )));
    });
    Ok(Frame::Array(vec![
        Frame::Bulk(Bytes::from(next.to_string())),
        Frame::Array(out),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_ranges_follow_redis() {
        assert_eq!(rank_range(0, -1, 5), Some((0, 4)));
        assert_eq!(rank_range(-2, -1, 5), Some((3, 4)));
        assert_eq!(rank_range(3, 1, 5), None);
        assert_eq!(rank_range(5, 10, 5), None);
        assert_eq!(rank_range(-100, 1, 5), Some((0, 1)));
        assert_eq!(rank_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(rank_range(i64::MAX, i64::MIN, 3), None);
        assert_eq!(rank_range(0, 0, 0), None);
    }

    #[test]
    fn aggregate_handles_nan_like_redis() {
        let mut t = f64::INFINITY;
        aggregate(&mut t, f64::NEG_INFINITY, Aggregate::Sum);
        assert_eq!(t, 0.0);
        let mut t = 1.0;
        aggregate(&mut t, f64::NAN, Aggregate::Min);
        assert_eq!(t, 1.0);
        aggregate(&mut t, 0.5, Aggregate::Min);
        assert_eq!(t, 0.5);
        aggregate(&mut t, 2.0, Aggregate::Max);
        assert_eq!(t, 2.0);
    }
}
