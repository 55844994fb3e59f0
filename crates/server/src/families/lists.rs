//! The lists family: pushes and pops at both ends, ranges, indexes, LINSERT/LREM/LTRIM,
//! LPOS, LMOVE/LMPOP and the blocking BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP.
//!
//! Semantics, reply shapes, error strings and the order in which arguments and keys are
//! checked follow Redis 7.0's t_list.c (verified against redis-server 7.0.15; the golden
//! file `tests/golden/lists.cmds` pins them). Every write that adds elements signals the
//! key so clients blocked on it re-run their command (see `crate::blocking`); an emptied
//! list is deleted.

use crate::cmd::args::{self, is};
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::types::ListValue;
use basalt_engine::types::list::End;
use basalt_engine::{Guard, Value};
use basalt_proto::{BulkList, Frame};
use bytes::Bytes;

const RO: &[&str] = &["RO"];
const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_INSERT: &[&str] = &["RW", "insert"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const RW_DELETE: &[&str] = &["RW", "delete"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];

const ONE_KEY_INSERT: &[KeySpec] = &[KeySpec::single(1, RW_INSERT)];
const ONE_KEY_POP: &[KeySpec] = &[KeySpec::single(1, RW_ACCESS_DELETE)];
const MOVE_KEYS: &[KeySpec] = &[
    KeySpec::single(1, RW_ACCESS_DELETE),
    KeySpec::single(2, RW_INSERT),
];
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

const fn mpop_keys(index: i32) -> KeySpec {
    KeySpec {
        notes: "",
        flags: RW_ACCESS_DELETE,
        begin: BeginSearch::Index(index),
        find: FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
    }
}

const PUSH_CX: &str = "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.";

macro_rules! list_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::LIST, "list"; $($t)*)
    };
}

/// The lists family's commands.
pub const COMMANDS: &[Command] = &[
    list_cmd!(
        "lpush",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        ONE_KEY_INSERT,
        "1.0.0",
        "Prepend one or multiple elements to a list",
        PUSH_CX,
        lpush
    ),
    list_cmd!(
        "rpush",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        ONE_KEY_INSERT,
        "1.0.0",
        "Append one or multiple elements to a list",
        PUSH_CX,
        rpush
    ),
    list_cmd!(
        "lpushx",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        ONE_KEY_INSERT,
        "2.2.0",
        "Prepend an element to a list, only if the list exists",
        PUSH_CX,
        lpushx
    ),
    list_cmd!(
        "rpushx",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        ONE_KEY_INSERT,
        "2.2.0",
        "Append an element to a list, only if the list exists",
        PUSH_CX,
        rpushx
    ),
    list_cmd!(
        "lpop",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        ONE_KEY_POP,
        "1.0.0",
        "Remove and get the first elements in a list",
        "O(N) where N is the number of elements returned",
        lpop
    ),
    list_cmd!(
        "rpop",
        -2,
        WRITE | FAST,
        (1, 1, 1),
        ONE_KEY_POP,
        "1.0.0",
        "Remove and get the last elements in a list",
        "O(N) where N is the number of elements returned",
        rpop
    ),
    list_cmd!(
        "llen",
        2,
        READONLY | FAST,
        (1, 1, 1),
        &[KeySpec::single(1, RO)],
        "1.0.0",
        "Get the length of a list",
        "O(1)",
        llen
    ),
    list_cmd!(
        "lrange",
        4,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "1.0.0",
        "Get a range of elements from a list",
        "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        lrange
    ),
    list_cmd!(
        "lindex",
        3,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "1.0.0",
        "Get an element from a list by its index",
        "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        lindex
    ),
    list_cmd!(
        "lset",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, RW_UPDATE)],
        "1.0.0",
        "Set the value of an element in a list by its index",
        "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        lset
    ),
    list_cmd!(
        "linsert",
        5,
        WRITE | DENYOOM,
        (1, 1, 1),
        ONE_KEY_INSERT,
        "2.2.0",
        "Insert an element before or after another element in a list",
        "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        linsert
    ),
    list_cmd!(
        "lrem",
        4,
        WRITE,
        (1, 1, 1),
        &[KeySpec::single(1, RW_DELETE)],
        "1.0.0",
        "Remove elements from a list",
        "O(N+M) where N is the length of the list and M is the number of elements removed.",
        lrem
    ),
    list_cmd!(
        "ltrim",
        4,
        WRITE,
        (1, 1, 1),
        &[KeySpec::single(1, RW_DELETE)],
        "1.0.0",
        "Trim a list to the specified range",
        "O(N) where N is the number of elements to be removed by the operation.",
        ltrim
    ),
    list_cmd!(
        "lpos",
        -3,
        READONLY,
        (1, 1, 1),
        &[KeySpec::single(1, RO_ACCESS)],
        "6.0.6",
        "Return the index of matching elements on a list",
        "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        lpos
    ),
    list_cmd!(
        "lmove",
        5,
        WRITE | DENYOOM,
        (1, 2, 1),
        MOVE_KEYS,
        "6.2.0",
        "Pop an element from a list, push it to another list and return it",
        "O(1)",
        lmove
    ),
    list_cmd!(
        "rpoplpush",
        3,
        WRITE | DENYOOM,
        (1, 2, 1),
        MOVE_KEYS,
        "1.2.0",
        "Remove the last element in a list, prepend it to another list and return it",
        "O(1)",
        rpoplpush
    ),
    list_cmd!(
        "lmpop",
        -4,
        WRITE,
        (0, 0, 0),
        &[mpop_keys(1)],
        "7.0.0",
        "Pop elements from a list",
        "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        lmpop
    ),
    list_cmd!(
        "blpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        (1, -2, 1),
        BPOP_KEYS,
        "2.0.0",
        "Remove and get the first element in a list, or block until one is available",
        "O(N) where N is the number of provided keys.",
        blpop
    ),
    list_cmd!(
        "brpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        (1, -2, 1),
        BPOP_KEYS,
        "2.0.0",
        "Remove and get the last element in a list, or block until one is available",
        "O(N) where N is the number of provided keys.",
        brpop
    ),
    list_cmd!(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        MOVE_KEYS,
        "6.2.0",
        "Pop an element from a list, push it to another list and return it; or block until one is available",
        "O(1)",
        blmove
    ),
    list_cmd!(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        MOVE_KEYS,
        "2.2.0",
        "Pop an element from a list, push it to another list and return it; or block until one is available",
        "O(1)",
        brpoplpush
    ),
    list_cmd!(
        "blmpop",
        -5,
        WRITE | BLOCKING,
        (0, 0, 0),
        &[mpop_keys(2)],
        "7.0.0",
        "Pop elements from a list, or block until one is available",
        "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        blmpop
    ),
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The list inside a read-only view's value, or WRONGTYPE.
pub fn list_ref(v: Option<&Value>) -> Result<&ListValue, Error> {
    match v {
        Some(Value::List(l)) => Ok(l),
        _ => Err(Error::msg(error::WRONGTYPE)),
    }
}

/// The list inside a value, or WRONGTYPE.
#[allow(unreachable_patterns)]
pub fn list_mut(v: Option<&mut Value>) -> Result<&mut ListValue, Error> {
    match v {
        Some(Value::List(l)) => Ok(l),
        _ => Err(Error::msg(error::WRONGTYPE)),
    }
}

/// `LEFT` / `RIGHT` (any case), else a syntax error.
fn side(arg: &[u8]) -> Result<End, Error> {
    if is(arg, "left") {
        Ok(End::Head)
    } else if is(arg, "right") {
        Ok(End::Tail)
    } else {
        Err(Error::msg(error::SYNTAX))
    }
}

/// An integer in `min..` whose parse and range failures both answer `msg` (Redis's
/// getRangeLongFromObjectOrReply with a message).
fn at_least(arg: &[u8], min: i64, msg: &str) -> Result<i64, Error> {
    match basalt_engine::num::parse_i64(arg) {
        Some(v) if v >= min => Ok(v),
        _ => Err(Error::msg(msg)),
    }
}

/// Normalises a Redis LRANGE-style `start..=end` into `(first, count)`.
fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, (end - start + 1) as usize))
}

/// Removes `key` if its list became empty (notifying `del`).
fn drop_if_empty(ctx: &Ctx<'_>, g: &mut Guard<'_>, db: usize, key: &[u8]) {
    let empty = matches!(g.get(db, key).and_then(|e| e.into_value().as_other()), Some(Value::List(l)) if l.is_empty());
    if empty {
        g.remove(db, key);
        ctx.notify(ev::GENERIC, "del", key);
    }
}

/// Redis's listElementsRemoved: `lpop`/`rpop`, then `del` if the list became empty.
fn popped(ctx: &Ctx<'_>, g: &mut Guard<'_>, db: usize, key: &[u8], end: End) {
    ctx.notify(ev::LIST, pop_event(end), key);
    drop_if_empty(ctx, g, db, key);
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Head => "lpop",
        End::Tail => "rpop",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Head => "lpush",
        End::Tail => "rpush",
    }
}

fn bulks(items: Vec<Bytes>) -> Frame {
    Frame::Array(items.into_iter().map(Frame::Bulk).collect())
}

// ---------------------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------------------

fn push_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let len = match g.get(db, key) {
        Some(e) => {
            let l = list_mut(e.into_value_mut())?;
            for v in &args[2..] {
                l.push(end, v);
            }
            l.len()
        }
        None if only_existing => return Ok(Frame::Integer(0)),
        None => {
            let mut l = ListValue::new(&ctx.enc());
            for v in &args[2..] {
                l.push(end, v);
            }
            let n = l.len();
            g.insert(db, key, Value::from(l), 0);
            n
        }
    };
    // Redis replies, then notifies (a new key's `new` came first).
    ctx.reply_here();
    ctx.notify(ev::LIST, push_event(end), key);
    ctx.changed(args.len() as u64 - 2);
    // Signalled before the key is released: a woken waiter that sees the new elements
    // also sees whose turn they are (`Registry::turn_ahead`).
    ctx.signal_ready(db, key);
    drop(g);
    Ok(Frame::Integer(len as i64))
}

fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Head, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Tail, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Head, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Tail, true)
}

fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return Err(Error::msg(error::SYNTAX));
    };
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(e) = g.get(db, key) else {
        return Ok(Frame::Integer(0));
    };
    let l = list_mut(e.into_value_mut())?;
    let Some(pos) = l.position(&args[3]) else {
        return Ok(Frame::Integer(-1));
    };
    l.insert(if after { pos + 1 } else { pos }, &args[4]);
    let len = l.len();
    ctx.notify(ev::LIST, "linsert", key);
    ctx.signal_ready(db, key);
    drop(g);
    Ok(Frame::Integer(len as i64))
}

// ---------------------------------------------------------------------------------------
// Pops and reads
// ---------------------------------------------------------------------------------------

fn pop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(Error::arity(ctx.fullname));
    }
    let count = match args.get(2) {
        Some(a) => Some(at_least(a, 0, error::NOT_POSITIVE)? as usize),
        None => None,
    };
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(e) = g.get(db, key) else {
        return Ok(if count.is_some() {
            Frame::NullArray
        } else {
            Frame::Null
        });
    };
    let l = list_mut(e.into_value_mut())?;
    let reply = match count {
        Some(0) => return Ok(Frame::Array(Vec::new())),
        Some(n) => {
            let items = l.pop_many(end, n);
            ctx.changed(items.len() as u64);
            bulks(items)
        }
        None => match l.pop(end) {
            Some(v) => Frame::Bulk(v),
            None => Frame::Null,
        },
    };
    ctx.reply_here();
    popped(ctx, &mut g, db, key, end);
    Ok(reply)
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, args, End::Head)
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, args, End::Tail)
}

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    Ok(Frame::Integer(match g.lookup_read(db, &args[1]) {
        None => 0,
        Some(e) => list_ref(e.into_value().as_other())?.len() as i64,
    }))
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = args::int(&args[2])?;
    let end = args::int(&args[3])?;
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(e) = g.lookup_read(db, &args[1]) else {
        return Ok(Frame::Array(Vec::new()));
    };
    let l = list_ref(e.into_value().as_other())?;
    let Some((first, n)) = range(start, end, l.len()) else {
        return Ok(Frame::Array(Vec::new()));
    };
    // Written straight into one reply buffer (no allocation per element).
    let mut reply = BulkList::default();
    for v in l.iter_from(first).take(n) {
        v.with_bytes(|b| {
            reply.presize(n, b.len());
            reply.push(b)
        });
    }
    Ok(Frame::Bulks(reply))
}

/// A possibly negative index into a list of `len`, or None when out of range.
fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(e) = g.lookup_read(db, &args[1]) else {
        return Ok(Frame::Null);
    };
    let l = list_ref(e.into_value().as_other())?;
    let i = args::int(&args[2])?;
    Ok(match index(i, l.len()).and_then(|i| l.get(i)) {
        Some(v) => Frame::Bulk(v),
        None => Frame::Null,
    })
}

fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(e) = g.get(db, &args[1]) else {
        return Err(Error::msg(error::NO_SUCH_KEY));
    };
    let l = list_mut(e.into_value_mut())?;
    let i = args::int(&args[2])?;
    match index(i, l.len()) {
        Some(i) if l.set(i, &args[3]) => {
            ctx.reply_here();
            ctx.notify(ev::LIST, "lset", &args[1]);
            Ok(Frame::ok())
        }
        _ => Err(Error::msg("ERR index out of range")),
    }
}

fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = args::int(&args[2])?;
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(e) = g.get(db, key) else {
        return Ok(Frame::Integer(0));
    };
    let removed = list_mut(e.into_value_mut())?.remove_matching(&args[3], count);
    if removed > 0 {
        ctx.notify(ev::LIST, "lrem", key);
        drop_if_empty(ctx, &mut g, db, key);
    }
    ctx.changed(removed as u64);
    Ok(Frame::Integer(removed as i64))
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = args::int(&args[2])?;
    let end = args::int(&args[3])?;
    let db = ctx.client.db;
    let key = &args[1];
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let Some(e) = g.get(db, key) else {
        return Ok(Frame::ok());
    };
    let l = list_mut(e.into_value_mut())?;
    let len = l.len();
    let kept = match range(start, end, len) {
        Some((first, n)) => {
            l.trim(first, len - first - n);
            n
        }
        None => {
            l.trim(len, 0);
            0
        }
    };
    // Notified even when nothing went, but only the removed elements count (Redis).
    ctx.notify(ev::LIST, "ltrim", key);
    ctx.changed((len - kept) as u64);
    drop_if_empty(ctx, &mut g, db, key);
    Ok(Frame::ok())
}

fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<u64> = None;
    let mut maxlen: u64 = 0;
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        if is(&args[j], "rank") && more {
            rank = args::int(&args[j + 1])?;
            if rank == 0 {
                return Err(Error::msg(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(&args[j], "count") && more {
            count = Some(at_least(&args[j + 1], 0, "ERR COUNT can't be negative")? as u64);
        } else if is(&args[j], "maxlen") && more {
            maxlen = at_least(&args[j + 1], 0, "ERR MAXLEN can't be negative")? as u64;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        j += 2;
    }
    let from_tail = rank < 0;
    // Redis negates the rank in a C long: RANK -9223372036854775808 stays negative, so
    // every match qualifies (as rank 1) and a COUNT limit is never reached.
    let min_rank = rank == i64::MIN;
    let rank = if min_rank { 1 } else { rank.unsigned_abs() };
    let db = ctx.client.db;
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(e) = g.lookup_read(db, &args[1]) else {
        return Ok(if count.is_some() {
            Frame::Array(Vec::new())
        } else {
            Frame::Null
        });
    };
    let l = list_ref(e.into_value().as_other())?;
    let len = l.len();
    let ele = &args[2];
    let scan = maxlen.min(len as u64) as usize;
    let scan = if maxlen == 0 { len } else { scan };
    let elems: Box<dyn Iterator<Item = _>> = if from_tail {
        Box::new(l.iter_rev())
    } else {
        Box::new(l.iter())
    };
    let mut matches: u64 = 0;
    let mut found = Vec::new();
    for (i, v) in elems.take(scan).enumerate() {
        if !v.matches(ele) {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        let at = if from_tail { len - 1 - i } else { i };
        found.push(Frame::Integer(at as i64));
        match count {
            None => break,
            Some(c) if c != 0 && !min_rank && matches - rank + 1 >= c => break,
            Some(_) => {}
        }
    }
    Ok(match count {
        Some(_) => Frame::Array(found),
        None => found.pop().unwrap_or(Frame::Null),
    })
}

// ---------------------------------------------------------------------------------------
// Moves and multi-key pops
// ---------------------------------------------------------------------------------------

/// Outcome of trying to pop for a (possibly blocking) command.
enum Popped {
    /// Something was popped: the reply.
    Reply(Frame),
    /// Nothing to pop: block (or answer as on timeout).
    Empty,
}

/// LMOVE's core: pops from `src` at `from`, pushes to `dst` at `to`. `Ok(None)` when
/// `src` is missing. With `skip_wrong_src` (a woken blocked client) a source of another
/// type counts as missing.
fn move_element(
    ctx: &mut Ctx<'_>,
    src: &Bytes,
    dst: &Bytes,
    from: End,
    to: End,
    skip_wrong_src: bool,
) -> Result<Option<Bytes>, Error> {
    let db = ctx.client.db;
    let lim = ctx.enc();
    let keys = [src, dst];
    // Whatever happens, the blocking forms are never logged as themselves.
    ctx.propagate_nothing();
    let mut g = ctx.srv.keyspace.lock_keys(&keys, ctx.now);
    // A woken client leaves the source's elements to a waiter queued before it that has
    // its turn (it was signalled for them): as Redis serves a ready key's waiters in order.
    if skip_wrong_src && ctx.turn_ahead(src) {
        return Ok(None);
    }
    let Some(e) = g.get(db, src) else {
        return Ok(None);
    };
    if skip_wrong_src && !matches!(e.value().as_other(), Some(Value::List(_))) {
        ctx.skipped_wrong_type();
        return Ok(None);
    }
    list_mut(e.into_value_mut())?;
    if let Some(d) = g.get(db, dst) {
        list_mut(d.into_value_mut())?;
    }
    let Some(v) = g
        .get(db, src)
        .and_then(|e| list_mut(e.into_value_mut()).ok())
        .and_then(|l| l.pop(from))
    else {
        return Ok(None);
    };
    // Push first (the source may be the destination), then Redis's events: the push,
    // the reply, the pop, and `del` if the source is now empty.
    match g.get(db, dst) {
        Some(d) => list_mut(d.into_value_mut())?.push(to, &v),
        None => {
            let mut l = ListValue::new(&lim);
            l.push(to, &v);
            g.insert(db, dst, Value::from(l), 0);
        }
    }
    ctx.notify(ev::LIST, push_event(to), dst);
    ctx.reply_here();
    popped(ctx, &mut g, db, src, from);
    ctx.signal_ready(db, dst);
    drop(g);
    if ctx.aof_on() {
        // BLMOVE and BRPOPLPUSH are logged as the LMOVE they did.
        ctx.client.aof_effects = None;
        ctx.propagate(vec![
            Bytes::from_static(b"LMOVE"),
            src.clone(),
            dst.clone(),
            end_name(from),
            end_name(to),
        ]);
    }
    Ok(Some(v))
}

fn end_name(e: End) -> Bytes {
    Bytes::from_static(match e {
        End::Head => b"LEFT",
        End::Tail => b"RIGHT",
    })
}

fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let from = side(&args[3])?;
    let to = side(&args[4])?;
    Ok(
        match move_element(ctx, &args[1], &args[2], from, to, false)? {
            Some(v) => Frame::Bulk(v),
            None => Frame::Null,
        },
    )
}

fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(
        match move_element(ctx, &args[1], &args[2], End::Tail, End::Head, false)? {
            Some(v) => Frame::Bulk(v),
            None => Frame::Null,
        },
    )
}

/// Pops from the first non-empty list of `keys`: one element as `[key, value]`, or up to
/// `count` as `[key, [values...]]`. With `skip_wrong` other types count as empty.
fn pop_first(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    end: End,
    count: Option<usize>,
    skip_wrong: bool,
) -> Result<Popped, Error> {
    let db = ctx.client.db;
    // Whatever happens, the blocking and multi-key forms are never logged as themselves.
    ctx.propagate_nothing();
    let mut g = ctx.srv.keyspace.lock_keys(keys, ctx.now);
    for key in keys {
        // A woken client leaves a key's elements to a waiter queued before it that has
        // its turn, and takes from its other keys (Redis serves each ready key's waiters
        // in order, from that key).
        if skip_wrong && ctx.turn_ahead(key) {
            continue;
        }
        let Some(e) = g.get(db, key) else {
            continue;
        };
        if skip_wrong && !matches!(e.value().as_other(), Some(Value::List(_))) {
            ctx.skipped_wrong_type();
            continue;
        }
        let l = list_mut(e.into_value_mut())?;
        if l.is_empty() {
            continue;
        }
        let (reply, count_popped) = match count {
            None => match l.pop(end) {
                Some(v) => (
                    Frame::Array(vec![Frame::Bulk(key.clone()), Frame::Bulk(v)]),
                    None,
                ),
                None => continue,
            },
            Some(n) => {
                let items = l.pop_many(end, n);
                let k = items.len();
                ctx.changed(k as u64);
                (
                    Frame::Array(vec![Frame::Bulk(key.clone()), bulks(items)]),
                    Some(k),
                )
            }
        };
        ctx.reply_here();
        popped(ctx, &mut g, db, key, end);
        drop(g);
        if ctx.aof_on() {
            // Logged as the LPOP/RPOP [count] that happened, as Redis does.
            ctx.client.aof_effects = None;
            let name = Bytes::from_static(match end {
                End::Head => b"LPOP",
                End::Tail => b"RPOP",
            });
            let mut effect = vec![name, key.clone()];
            if let Some(k) = count_popped {
                effect.push(crate::aof::int_arg(k));
            }
            ctx.propagate(effect);
        }
        return Ok(Popped::Reply(reply));
    }
    Ok(Popped::Empty)
}

/// Parsed `numkeys key [key ...] LEFT|RIGHT [COUNT count]` of LMPOP/BLMPOP.
struct MpopArgs {
    keys: Vec<Bytes>,
    end: End,
    count: usize,
}

fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<MpopArgs, Error> {
    let numkeys = at_least(
        &args[numkeys_idx],
        1,
        "ERR numkeys should be greater than 0",
    )?;
    let where_idx = (numkeys_idx as u64).saturating_add(numkeys as u64) + 1;
    if where_idx >= args.len() as u64 {
        return Err(Error::msg(error::SYNTAX));
    }
    let where_idx = where_idx as usize;
    let end = side(&args[where_idx])?;
    let mut count: Option<i64> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            count = Some(at_least(
                &args[j + 1],
                1,
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
    }
    Ok(MpopArgs {
        keys: args[numkeys_idx + 1..where_idx].to_vec(),
        end,
        count: usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX),
    })
}

fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = parse_mpop(args, 1)?;
    Ok(
        match pop_first(ctx, &a.keys, a.end, Some(a.count), false)? {
            Popped::Reply(r) => r,
            Popped::Empty => Frame::NullArray,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Blocking variants
// ---------------------------------------------------------------------------------------

/// True when this run is a blocked client's retry after a wake-up.
fn is_retry(ctx: &Ctx<'_>) -> bool {
    ctx.srv.blocking.is_blocked(ctx.client.id)
}

fn bpop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CmdResult {
    let deadline = args::timeout_deadline(&args[args.len() - 1], ctx.now)?;
    let keys = &args[1..args.len() - 1];
    let retry = is_retry(ctx);
    match pop_first(ctx, keys, end, None, retry)? {
        Popped::Reply(r) => Ok(r),
        Popped::Empty if !ctx.can_block() => Ok(Frame::NullArray),
        Popped::Empty => ctx.block(keys.to_vec(), deadline),
    }
}

fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, args, End::Head)
}

fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, args, End::Tail)
}

fn bmove_generic(ctx: &mut Ctx<'_>, args: &[Bytes], from: End, to: End, t: &[u8]) -> CmdResult {
    let deadline = args::timeout_deadline(t, ctx.now)?;
    let retry = is_retry(ctx);
    match move_element(ctx, &args[1], &args[2], from, to, retry)? {
        Some(v) => Ok(Frame::Bulk(v)),
        // Inside MULTI Redis answers BLMOVE/BRPOPLPUSH with a null bulk, but a timeout
        // with a null array.
        None if !ctx.can_block() => Ok(Frame::Null),
        None => ctx.block(vec![args[1].clone()], deadline),
    }
}

fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let from = side(&args[3])?;
    let to = side(&args[4])?;
    bmove_generic(ctx, args, from, to, &args[5])
}

fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bmove_generic(ctx, args, End::Tail, End::Head, &args[3])
}

fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis checks numkeys, the direction and COUNT before the timeout.
    let a = parse_mpop(args, 2)?;
    let deadline = args::timeout_deadline(&args[1], ctx.now)?;
    let retry = is_retry(ctx);
    match pop_first(ctx, &a.keys, a.end, Some(a.count), retry)? {
        Popped::Reply(r) => Ok(r),
        Popped::Empty if !ctx.can_block() => Ok(Frame::NullArray),
        Popped::Empty => ctx.block(a.keys, deadline),
    }
}

#[cfg(test)]
mod tests {
    use super::{index, range};

    #[test]
    fn range_normalisation_matches_redis() {
        assert_eq!(range(0, -1, 5), Some((0, 5)));
        assert_eq!(range(-2, -1, 5), Some((3, 2)));
        assert_eq!(range(-100, 1, 5), Some((0, 2)));
        assert_eq!(range(3, 100, 5), Some((3, 2)));
        assert_eq!(range(5, 10, 5), None);
        assert_eq!(range(2, 1, 5), None);
        assert_eq!(range(0, -6, 5), None);
        assert_eq!(range(i64::MIN, i64::MAX, 3), Some((0, 3)));
        assert_eq!(range(0, 0, 0), None);
    }

    #[test]
    fn index_normalisation() {
        assert_eq!(index(0, 3), Some(0));
        assert_eq!(index(-1, 3), Some(2));
        assert_eq!(index(-4, 3), None);
        assert_eq!(index(3, 3), None);
        assert_eq!(index(i64::MIN, 3), None);
    }
}
