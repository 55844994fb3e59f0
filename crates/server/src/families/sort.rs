//! SORT and SORT_RO: sorting a list, set or sorted set numerically or lexicographically,
//! by the element or by external keys (`BY weight_*`, `BY hash_*->field`), with LIMIT,
//! GET patterns (`#` for the element itself), ASC/DESC and STORE into a list.
//!
//! Redis 7.0's sort.c decides many visible details, and this module keeps them: options
//! are parsed before the key is looked at; a BY pattern without `*` skips sorting (lists
//! and sorted sets keep their order, a set its iteration order, except that a set sorts
//! ALPHA when the result is stored); numeric ties are broken by comparing the elements;
//! without STORE, ALPHA compares as `strcoll` does in the C.UTF-8 locale (byte order up
//! to the first NUL), with STORE it compares whole byte strings; weights are read as
//! `strtod` reads them, and a value it cannot read in full (or that overflows or
//! underflows) fails the command with `ERR One or more scores can't be converted into
//! double`. A whole sort is stable (glibc's `qsort` is a merge sort); BY with a LIMIT
//! that does not cover everything uses Redis's partial quicksort ([`partial_sort`], also
//! used by the geo searches' COUNT), so elements with equal weights come out in the same
//! order as in Redis. SORT on a sorted set converts it to the `skiplist` encoding, as
//! Redis does.
//!
//! BY and GET patterns name arbitrary keys, so a SORT that uses them locks every shard.

use crate::cmd::args;
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::types::ListValue;
use basalt_engine::types::ZSetValue;
use basalt_engine::types::zset::strtod_whole;
use basalt_engine::{Guard, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;
use std::cmp::Ordering;

const SORT_COMPLEXITY: &str = "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).";

/// SORT's key specs as Redis 7.0 declares them: the sorted key, then the BY/GET and STORE
/// keys, which no spec can locate (hence `getkeys`).
const SORT_KEY_SPECS: &[KeySpec] = &[
    KeySpec::single(1, &["RO", "access"]),
    KeySpec {
        notes: "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort",
        flags: &["RO", "access"],
        begin: BeginSearch::Unknown,
        find: FindKeys::Unknown,
    },
    KeySpec {
        notes: "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array",
        flags: &["OW", "update"],
        begin: BeginSearch::Unknown,
        find: FindKeys::Unknown,
    },
];

/// SORT's keys for COMMAND GETKEYS, as Redis's sortGetKeys finds them: the sorted key and
/// the last STORE destination, skipping the arguments of LIMIT, GET and BY.
fn sort_keys(args: &[Bytes]) -> Vec<(usize, &'static [&'static str])> {
    let mut keys: Vec<(usize, &'static [&'static str])> = vec![(1, &["RO", "access"])];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let skip = if a.eq_ignore_ascii_case(b"limit") {
            2
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            1
        } else if a.eq_ignore_ascii_case(b"store") {
            if i + 1 < args.len() {
                store = Some(i + 1);
            }
            1
        } else {
            0
        };
        i += 1 + skip;
    }
    if let Some(d) = store {
        keys.push((d, &["OW", "update"]));
    }
    keys
}

/// The family's commands.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "sort",
        arity: -2,
        flags: WRITE | DENYOOM | MOVABLE_KEYS,
        acl: acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS,
        keys: (1, 1, 1),
        key_specs: SORT_KEY_SPECS,
        getkeys: Some(sort_keys),
        group: "generic",
        since: "1.0.0",
        summary: "Sort the elements in a list, set or sorted set",
        complexity: SORT_COMPLEXITY,
        handler: Some(sort),
        ..Command::EMPTY
    },
    Command {
        name: "sort_ro",
        arity: -2,
        flags: READONLY | MOVABLE_KEYS,
        acl: acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS,
        keys: (1, 1, 1),
        key_specs: SORT_KEY_SPECS.split_at(2).0,
        group: "generic",
        since: "7.0.0",
        summary: "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
        complexity: SORT_COMPLEXITY,
        handler: Some(sort_ro),
        ..Command::EMPTY
    },
];

// ---------------------------------------------------------------------------------------
// Redis's partial quicksort

/// Sorts `v` so that positions `lo..=hi` hold what a full sort would put there, in
/// order, exactly as Redis's `pqsort` (NetBSD's Bentley-McIlroy quicksort, skipping the
/// partitions outside the range) leaves them; elements outside the range end up
/// partitioned but unsorted. Equal elements move as that algorithm moves them, which is
/// the point: SORT ... BY ... LIMIT and GEOSEARCH ... COUNT reply with equal-weight
/// elements in Redis's order. `hi` may be below `lo` (an empty range, which still
/// partitions as Redis does). Unlike later NetBSD versions, redis-server 7.0.15's copy
/// never switches to insertion sort when a partition pass swapped nothing (measured:
/// with that switch, ties come out in a different order).
pub fn partial_sort<T>(v: &mut [T], lo: i64, hi: i64, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    // Redis compares byte addresses: the range's first byte and the last byte of its
    // last element. Scaling indexes by two keeps those relations in integers.
    let lrange = 2 * lo;
    let rrange = 2 * (hi + 1) - 1;
    pqsort(v, 0, lrange, rrange, &mut cmp);
}

fn insertion_sort<T>(v: &mut [T], cmp: &mut impl FnMut(&T, &T) -> Ordering) {
    for m in 1..v.len() {
        let mut l = m;
        while l > 0 && cmp(&v[l - 1], &v[l]) == Ordering::Greater {
            v.swap(l, l - 1);
            l -= 1;
        }
    }
}

fn med3<T>(
    v: &[T],
    a: usize,
    b: usize,
    c: usize,
    cmp: &mut impl FnMut(&T, &T) -> Ordering,
) -> usize {
    if cmp(&v[a], &v[b]) == Ordering::Less {
        if cmp(&v[b], &v[c]) == Ordering::Less {
            b
        } else if cmp(&v[a], &v[c]) == Ordering::Less {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) == Ordering::Greater {
        b
    } else if cmp(&v[a], &v[c]) == Ordering::Less {
        a
    } else {
        c
    }
}

/// True if the partition starting at element `start` (`len` elements) overlaps the
/// requested range (both in the doubled units of [`partial_sort`]).
fn overlaps(start: usize, len: usize, lrange: i64, rrange: i64) -> bool {
    let l = 2 * start as i64;
    let r = 2 * (start + len) as i64 - 1;
    !((lrange < l && rrange < l) || (lrange > r && rrange > r))
}

/// One call of Redis's `_pqsort` on `whole[base..]`'s first elements; `base` is the
/// offset of the current partition in the whole slice, for the range test.
fn pqsort<T>(
    whole: &mut [T],
    base: usize,
    lrange: i64,
    rrange: i64,
    cmp: &mut impl FnMut(&T, &T) -> Ordering,
) {
    let mut base = base;
    let mut n = whole.len() - base;
    loop {
        let a = &mut whole[base..base + n];
        if n < 7 {
            insertion_sort(a, cmp);
            return;
        }
        let mut pm = n / 2;
        if n > 7 {
            let mut pl = 0;
            let mut pn = n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(a, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(a, pm - d, pm, pm + d, cmp);
                pn = med3(a, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(a, pl, pm, pn, cmp);
        }
        a.swap(0, pm);
        let (mut pa, mut pb) = (1usize, 1usize);
        // `pc` and `pd` may step one below `pb`'s start; keep them signed.
        let (mut pc, mut pd) = (n as isize - 1, n as isize - 1);
        loop {
            while pb as isize <= pc {
                let r = cmp(&a[pb], &a[0]);
                if r == Ordering::Greater {
                    break;
                }
                if r == Ordering::Equal {
                    a.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let r = cmp(&a[pc as usize], &a[0]);
                if r == Ordering::Less {
                    break;
                }
                if r == Ordering::Equal {
                    a.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            a.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pc = pc as usize;
        let pd = pd as usize;
        let r = pa.min(pb - pa);
        vecswap(a, 0, pb - r, r);
        let r = (pd - pc).min(n - pd - 1);
        vecswap(a, pb, n - r, r);
        let left = pb - pa;
        if left > 1 && overlaps(base, left, lrange, rrange) {
            pqsort(&mut whole[..base + left], base, lrange, rrange, cmp);
        }
        let right = pd - pc;
        if right > 1 {
            // Iterate on the right part rather than recursing, as Redis does.
            base = base + n - right;
            n = right;
            if overlaps(base, n, lrange, rrange) {
                continue;
            }
        }
        return;
    }
}

fn vecswap<T>(a: &mut [T], i: usize, j: usize, n: usize) {
    for k in 0..n {
        a.swap(i + k, j + k);
    }
}

// ---------------------------------------------------------------------------------------
// Patterns and weights

/// The bytes C sees: up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    match memchr::memchr(0, b) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn kw(arg: &[u8], keyword: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(keyword.as_bytes())
}

/// True if the pattern is `#` (the element itself).
fn is_hash_pattern(p: &[u8]) -> bool {
    cstr(p) == b"#"
}

/// What a pattern names for element `subst`, as Redis's `lookupKeyByPattern` builds it:
/// `None` when the pattern has no `*`; otherwise the key (the first `*` replaced) and,
/// for `key->field`, the hash field.
fn pattern_key(pattern: &[u8], subst: &[u8]) -> Option<(Vec<u8>, Option<Bytes>)> {
    let c = cstr(pattern);
    let star = memchr::memchr(b'*', c)?;
    // `->` after the star, followed by at least one byte, introduces a hash field; the
    // field runs to the end of the whole argument.
    let field_at = memchr::memmem::find(&c[star + 1..], b"->")
        .map(|i| star + 1 + i)
        .filter(|f| f + 2 < c.len());
    let key_end = field_at.unwrap_or(pattern.len());
    let mut key = Vec::with_capacity(key_end + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    let field = field_at.map(|f| Bytes::copy_from_slice(&pattern[f + 2..]));
    Some((key, field))
}

/// The value a pattern yields for an element: the element itself for `#`, a string
/// key's value, or a hash field; `None` when that does not exist (or has another type).
fn lookup_pattern(g: &mut Guard<'_>, db: usize, pattern: &[u8], subst: &Bytes) -> Option<Bytes> {
    if is_hash_pattern(pattern) {
        return Some(subst.clone());
    }
    let (key, field) = pattern_key(pattern, subst)?;
    let entry = g.lookup_read(db, &key)?;
    match (entry.into_value(), field) {
        (ValueRef::Other(Value::Hash(h)), Some(f)) => h.get(&f).map(Bytes::copy_from_slice),
        (ValueRef::Str(s), None) => Some(s.with_bytes(Bytes::copy_from_slice)),
        _ => None,
    }
}

/// A weight as SORT reads it with `strtod`: leading white space, decimal, hexadecimal or
/// `inf`, the whole value consumed (a NUL ends it, an empty value is 0), not NaN, and no
/// overflow or underflow (strtod's `ERANGE`). `None` fails the command.
fn parse_weight(b: &[u8]) -> Option<f64> {
    let s = cstr(b);
    let v = strtod_whole(s)?;
    let text = s.trim_ascii_start();
    let unsigned = text
        .strip_prefix(b"+")
        .or_else(|| text.strip_prefix(b"-"))
        .unwrap_or(text);
    let hex = unsigned.len() > 1 && unsigned[0] == b'0' && matches!(unsigned[1], b'x' | b'X');
    if v.is_infinite() {
        // Only an `inf` literal is infinite without overflowing.
        return unsigned
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case(&b'i'))
            .then_some(v);
    }
    let digits = if hex { &unsigned[2..] } else { unsigned };
    let mantissa_end = if hex {
        digits.iter().position(|c| matches!(c, b'p' | b'P'))
    } else {
        digits.iter().position(|c| matches!(c, b'e' | b'E'))
    }
    .unwrap_or(digits.len());
    let nonzero = digits[..mantissa_end]
        .iter()
        .any(|c| c.is_ascii_alphanumeric() && *c != b'0');
    let underflow = if hex {
        v == 0.0 && nonzero
    } else {
        (v == 0.0 || v.is_subnormal()) && nonzero
    };
    (!underflow).then_some(v)
}

// ---------------------------------------------------------------------------------------
// The command

/// An element being sorted and its key.
struct Item {
    elem: Bytes,
    score: f64,
    /// ALPHA with BY: the weight string, `None` when missing (sorts first).
    cmpobj: Option<Bytes>,
}

/// Redis's `sortCompare`.
fn compare(a: &Item, b: &Item, alpha: bool, bypattern: bool, store: bool, desc: bool) -> Ordering {
    let c = if !alpha {
        match a.score.partial_cmp(&b.score) {
            Some(Ordering::Equal) | None => a.elem.as_ref().cmp(b.elem.as_ref()),
            Some(o) => o,
        }
    } else if bypattern {
        match (&a.cmpobj, &b.cmpobj) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => {
                if store {
                    x.as_ref().cmp(y.as_ref())
                } else {
                    cstr(x).cmp(cstr(y))
                }
            }
        }
    } else if store {
        a.elem.as_ref().cmp(b.elem.as_ref())
    } else {
        cstr(&a.elem).cmp(cstr(&b.elem))
    };
    if desc { c.reverse() } else { c }
}

fn sort(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Only SORT ... STORE changes the dataset: a plain SORT is not logged.
    if ctx.aof_on() && sort_keys(args).len() < 2 {
        ctx.propagate_nothing();
    }
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, args, true)
}

fn sort_generic(ctx: &mut Ctx<'_>, args: &[Bytes], readonly: bool) -> CmdResult {
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut sortby: Option<&Bytes> = None;
    let mut store: Option<&Bytes> = None;
    let mut gets: Vec<&Bytes> = Vec::new();
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if kw(a, "asc") {
            desc = false;
        } else if kw(a, "desc") {
            desc = true;
        } else if kw(a, "alpha") {
            alpha = true;
        } else if kw(a, "limit") && left >= 2 {
            limit_start = args::int(&args[j + 1])?;
            limit_count = args::int(&args[j + 2])?;
            j += 2;
        } else if !readonly && kw(a, "store") && left >= 1 {
            store = Some(&args[j + 1]);
            j += 1;
        } else if kw(a, "by") && left >= 1 {
            sortby = Some(&args[j + 1]);
            // A constant pattern weighs every element the same: nothing to sort.
            if memchr::memchr(b'*', cstr(&args[j + 1])).is_none() {
                dontsort = true;
            }
            j += 1;
        } else if kw(a, "get") && left >= 1 {
            gets.push(&args[j + 1]);
            j += 1;
        } else {
            return Err(Error::msg(error::SYNTAX));
        }
        j += 1;
    }

    let db = ctx.client.db;
    let key = &args[1];
    let reads_patterns = gets
        .iter()
        .any(|p| !is_hash_pattern(p) && memchr::memchr(b'*', cstr(p)).is_some())
        || (!dontsort && sortby.is_some_and(|p| memchr::memchr(b'*', cstr(p)).is_some()));
    let mut g = if reads_patterns {
        ctx.srv.keyspace.lock_all(ctx.now)
    } else {
        match store {
            Some(dst) => ctx.srv.keyspace.lock_keys(&[key, dst], ctx.now),
            None => ctx.srv.keyspace.lock_key(key, ctx.now),
        }
    };

    // The source, copied out so that pattern lookups can use the guard.
    #[derive(PartialEq)]
    enum Kind {
        Missing,
        List,
        Set,
        ZSet,
    }
    let kind = match g.lookup_read(db, key).map(|e| e.into_value()) {
        None => Kind::Missing,
        Some(ValueRef::Other(Value::List(_))) => Kind::List,
        Some(ValueRef::Other(Value::Set(_))) => Kind::Set,
        Some(ValueRef::Other(Value::ZSet(_))) => Kind::ZSet,
        Some(_) => return Err(Error::msg(error::WRONGTYPE)),
    };
    if dontsort && kind == Kind::Set && store.is_some() {
        // A set's order is arbitrary: a stored result is sorted so that replicas agree.
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    let enc = ctx.enc();
    if kind == Kind::ZSet
        && let Some(e) = g.get(db, key)
        && let Some(Value::ZSet(z)) = e.into_value_mut()
        && z.encoding() != "skiplist"
    {
        // Redis converts the sorted set it sorts, for good.
        let mut big = ZSetValue::new_skiplist();
        z.walk(0, false, |m, s| {
            big.insert(m, s, &enc);
            true
        });
        **z = big;
    }
    let full_len = match g.get(db, key).map(|e| e.into_value()) {
        Some(ValueRef::Other(Value::List(l))) => l.len(),
        Some(ValueRef::Other(Value::Set(s))) => s.len(),
        Some(ValueRef::Other(Value::ZSet(z))) => z.len(),
        _ => 0,
    } as i64;

    // LIMIT sanity, as Redis computes it.
    let mut vectorlen = full_len;
    let mut start = limit_start.max(0).min(vectorlen);
    let count = limit_count.max(-1).min(vectorlen);
    let mut end = if count < 0 {
        vectorlen - 1
    } else {
        start + count - 1
    };
    if start >= vectorlen {
        start = vectorlen - 1;
        end = vectorlen - 2;
    }
    if end >= vectorlen {
        end = vectorlen - 1;
    }
    let ranged =
        matches!(kind, Kind::List | Kind::ZSet) && dontsort && (start != 0 || end != vectorlen - 1);
    if ranged {
        vectorlen = end - start + 1;
    }

    let mut elems: Vec<Bytes> = Vec::with_capacity(vectorlen.max(0) as usize);
    match g.get(db, key).map(|e| e.into_value()) {
        Some(ValueRef::Other(Value::List(l))) if dontsort && end >= start => {
            let take = vectorlen.max(0) as usize;
            let skip = start as usize;
            if desc {
                elems.extend(l.iter_rev().skip(skip).take(take).map(|e| e.to_bytes()));
            } else {
                elems.extend(l.iter_from(skip).take(take).map(|e| e.to_bytes()));
            }
            end -= start;
            start = 0;
        }
        // An empty range: nothing to load, and Redis leaves start/end as they are.
        Some(ValueRef::Other(Value::List(_))) if dontsort => {}
        Some(ValueRef::Other(Value::List(l))) => elems.extend(l.iter().map(|e| e.to_bytes())),
        Some(ValueRef::Other(Value::Set(s))) => s.for_each(|m| elems.push(m.to_bytes())),
        Some(ValueRef::Other(Value::ZSet(z))) if dontsort => {
            let take = vectorlen.max(0) as usize;
            if take > 0 {
                let n = z.len();
                let from = if desc {
                    n - 1 - start as usize
                } else {
                    start as usize
                };
                z.walk(from, desc, |m, _| {
                    elems.push(Bytes::copy_from_slice(m));
                    elems.len() < take
                });
            }
            end -= start;
            start = 0;
        }
        Some(ValueRef::Other(Value::ZSet(z))) => z.walk(0, false, |m, _| {
            elems.push(Bytes::copy_from_slice(m));
            true
        }),
        _ => {}
    }

    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            cmpobj: None,
        })
        .collect();
    let mut conversion_error = false;
    if !dontsort {
        for it in &mut items {
            let byval = match sortby {
                Some(p) => match lookup_pattern(&mut g, db, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmpobj = Some(byval);
                }
            } else {
                match parse_weight(&byval) {
                    Some(v) => it.score = v,
                    None => conversion_error = true,
                }
            }
        }
        let bypattern = sortby.is_some();
        let stored = store.is_some();
        let cmp = |a: &Item, b: &Item| compare(a, b, alpha, bypattern, stored, desc);
        let n = items.len() as i64;
        if bypattern && (start != 0 || end != n - 1) {
            partial_sort(&mut items, start, end, cmp);
        } else {
            items.sort_by(cmp);
        }
    }

    let span = (end - start + 1).max(0) as usize;
    let outputlen = if gets.is_empty() {
        span
    } else {
        gets.len() * span
    };
    if conversion_error {
        return Err(Error::msg(
            "ERR One or more scores can't be converted into double",
        ));
    }
    let selected = if span == 0 {
        &items[..0]
    } else {
        &items[start as usize..=end as usize]
    };
    let Some(dst) = store else {
        let mut out = Vec::with_capacity(outputlen);
        for it in selected {
            if gets.is_empty() {
                out.push(Frame::Bulk(it.elem.clone()));
            }
            for p in &gets {
                out.push(match lookup_pattern(&mut g, db, p, &it.elem) {
                    Some(v) => Frame::Bulk(v),
                    None => Frame::Null,
                });
            }
        }
        return Ok(Frame::Array(out));
    };
    let mut values: Vec<Bytes> = Vec::with_capacity(outputlen);
    for it in selected {
        if gets.is_empty() {
            values.push(it.elem.clone());
        }
        for p in &gets {
            values.push(lookup_pattern(&mut g, db, p, &it.elem).unwrap_or_default());
        }
    }
    if outputlen == 0 {
        if g.remove(db, dst).is_some() {
            ctx.notify(ev::GENERIC, "del", dst);
        }
        return Ok(Frame::Integer(0));
    }
    g.insert(
        db,
        dst,
        Value::from(ListValue::from_elements(values, &enc)),
        0,
    );
    ctx.notify(ev::LIST, "sortstore", dst);
    // One change per element stored (Redis's `server.dirty += outputlen`).
    ctx.changed(outputlen as u64);
    drop(g);
    ctx.signal_ready(db, dst);
    Ok(Frame::Integer(outputlen as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sort_sorts_the_requested_range() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in [0usize, 1, 5, 7, 8, 40, 41, 100, 500] {
            for _ in 0..20 {
                let v: Vec<u64> = (0..n).map(|_| next() % 50).collect();
                let mut sorted = v.clone();
                sorted.sort();
                if n == 0 {
                    continue;
                }
                let lo = (next() % n as u64) as usize;
                let hi = lo + (next() % (n - lo) as u64) as usize;
                let mut p = v.clone();
                partial_sort(&mut p, lo as i64, hi as i64, |a, b| a.cmp(b));
                assert_eq!(&p[lo..=hi], &sorted[lo..=hi], "n={n} lo={lo} hi={hi}");
                let mut whole = v.clone();
                partial_sort(&mut whole, 0, n as i64 - 1, |a, b| a.cmp(b));
                assert_eq!(whole, sorted);
            }
        }
    }

    #[test]
    fn partial_sort_orders_ties_as_redis_does() {
        // SORT l BY w_* ALPHA LIMIT 0 7 on redis-server 7.0.15 (tests/golden/sort.cmds,
        // sort-alpha-by-ties-limit-partial-order) answers l b f g j h e; a stable sort
        // would give b f g j l e h.
        let weights = [2, 0, 2, 2, 1, 0, 0, 1, 2, 0, 2, 0];
        let mut v: Vec<(char, i32)> = ('a'..='l').zip(weights).collect();
        partial_sort(&mut v, 0, 6, |x, y| x.1.cmp(&y.1));
        let names: String = v[..7].iter().map(|p| p.0).collect();
        assert_eq!(names, "lbfgjhe");
        // GEOSEARCH ... ASC COUNT 7 over six equal distances, one nearer-than-the-rest
        // and five farther ones keeps the input order (no insertion-sort switch).
        let mut v: Vec<(usize, i32)> = [0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2]
            .into_iter()
            .enumerate()
            .collect();
        partial_sort(&mut v, 0, 6, |x, y| x.1.cmp(&y.1));
        let order: Vec<usize> = v[..7].iter().map(|p| p.0).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn patterns_build_keys_and_fields() {
        assert_eq!(pattern_key(b"w_*", b"3"), Some((b"w_3".to_vec(), None)));
        assert_eq!(
            pattern_key(b"h_*->f", b"3"),
            Some((b"h_3".to_vec(), Some(Bytes::from_static(b"f"))))
        );
        // `->` at the end is part of the key name.
        assert_eq!(pattern_key(b"h_*->", b"3"), Some((b"h_3->".to_vec(), None)));
        // `->` before the star is not a field separator.
        assert_eq!(pattern_key(b"a->*", b"x"), Some((b"a->x".to_vec(), None)));
        assert_eq!(pattern_key(b"nostar", b"x"), None);
        // Only the first star is replaced.
        assert_eq!(pattern_key(b"*_*", b"x"), Some((b"x_*".to_vec(), None)));
        assert!(is_hash_pattern(b"#"));
        assert!(is_hash_pattern(b"#\0x"));
        assert!(!is_hash_pattern(b"##"));
    }

    #[test]
    fn weights_parse_like_strtod() {
        assert_eq!(parse_weight(b"  7"), Some(7.0));
        assert_eq!(parse_weight(b""), Some(0.0));
        assert_eq!(parse_weight(b"0x10"), Some(16.0));
        assert_eq!(parse_weight(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_weight(b"-infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_weight(b"5\0abc"), Some(5.0));
        assert_eq!(
            parse_weight(b"2.2250738585072014e-308"),
            Some(2.2250738585072014e-308)
        );
        assert_eq!(parse_weight(b"0e5"), Some(0.0));
        for bad in [
            &b"7 "[..],
            b"nan",
            b"1e400",
            b"1e-310",
            b"1e-400",
            b"abc",
            b" ",
            b"1x",
        ] {
            assert_eq!(
                parse_weight(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
