//! The sorted-set value type, with Redis's two encodings.
//!
//! * `listpack`: small sets live in one packed byte buffer of entries sorted by
//!   `(score, member)`, each written as a LEB128 header (member length and an integer
//!   flag), the member bytes and the score (a zigzag LEB128 integer when it is a whole
//!   number of at most 53 bits, else 8 bytes). Every operation is a linear walk, as on
//!   Redis's listpack; the set stays
//!   small (`zset-max-listpack-entries`, default 128, members of at most
//!   `zset-max-listpack-value` bytes, default 64) so that is cheap.
//! * `skiplist`: an arena of 32-byte slots (score and member) indexed twice: by a chained
//!   hash table from member to slot (O(1) ZSCORE, Redis's stable ZSCAN cursors) and by an
//!   order-statistic B+tree of slots in `(score, member)` order, which answers ranks and
//!   "element at rank r" in O(log n) as Redis's skiplist with spans does
//!   ([`large`], [`tree`]).
//!
//! A set converts from `listpack` to `skiplist` when a new member would exceed either
//! threshold, and never back, as in Redis. The thresholds are passed in by the caller
//! ([`EncodingLimits`]); the engine reads no configuration.
//!
//! Range queries are answered as half-open rank ranges `[lo, hi)`, computed with Redis's
//! rules for score bounds (`(` exclusive, `inf`, `-inf`) and lexicographic bounds
//! (`[a`, `(a`, `-`, `+`). On a `listpack` the lexicographic search is the same linear
//! scan Redis does, so even sets whose scores differ (where "by lex" is unspecified)
//! answer exactly like Redis; on a `skiplist` it is a binary search, which agrees with
//! Redis whenever all scores are equal (the documented use of the BYLEX commands).

mod large;
mod tree;

use crate::encoding::EncodingLimits;
use bytes::Bytes;
use large::Large;
use std::cmp::Ordering;
pub use tree::cmp_key;

/// Free bytes a packed buffer may keep after removals before it is shrunk.
const PACKED_SLACK: usize = 64;

/// Largest packed buffer before a set converts anyway (Redis's `lpSafeToAdd` limit).
const PACKED_SAFETY_LIMIT: usize = 1 << 30;

/// A score interval with Redis's inclusive/exclusive ends (`ZRANGEBYSCORE min max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
    /// The lower end is excluded (`(min`).
    pub minex: bool,
    /// The upper end is excluded (`(max`).
    pub maxex: bool,
}

impl ScoreRange {
    /// Parses `min` and `max` as Redis's `zslParseRange`: an optional `(`, then what C's
    /// `strtod` reads, with nothing after it and not NaN. Returns `None` on a bad bound
    /// (`ERR min or max is not a float`).
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let (min, minex) = parse_score_bound(min)?;
        let (max, maxex) = parse_score_bound(max)?;
        Some(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }

    /// True when no score can lie in the interval.
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }

    /// `score` is not below the lower end.
    pub fn gte_min(&self, score: f64) -> bool {
        if self.minex {
            score > self.min
        } else {
            score >= self.min
        }
    }

    /// `score` is not above the upper end.
    pub fn lte_max(&self, score: f64) -> bool {
        if self.maxex {
            score < self.max
        } else {
            score <= self.max
        }
    }
}

fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    match b.first() {
        Some(b'(') => Some((strtod_whole(&b[1..])?, true)),
        _ => Some((strtod_whole(b)?, false)),
    }
}

/// What C's `strtod` accepts when the whole string must be consumed and NaN is refused:
/// leading white space, an optional sign, a decimal or hexadecimal number or
/// `inf`/`infinity`. Overflow gives an infinity and underflow zero (strtod's results;
/// Redis does not check `errno` here). As with `strtod`, a string where no number starts
/// (only the empty string has nothing left after it) reads as 0. An embedded NUL ends the
/// string, as it does for C.
pub fn strtod_whole(b: &[u8]) -> Option<f64> {
    let b = match memchr_nul(b) {
        Some(i) => &b[..i],
        None => b,
    };
    if b.is_empty() {
        return Some(0.0);
    }
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    let text = std::str::from_utf8(&b[start..]).ok()?;
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let neg = text.starts_with('-');
    let lower = unsigned.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower.starts_with("0x") {
        return crate::num::parse_f64(text.as_bytes());
    }
    if unsigned.is_empty()
        || !unsigned
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    // Rust's float grammar is C's decimal grammar without the hex and special forms
    // handled above; out-of-range values round to infinity or zero like strtod's.
    let v: f64 = text.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

fn memchr_nul(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == 0)
}

/// One end of a lexicographic range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every string.
    NegInf,
    /// `+`: above every string.
    PosInf,
    /// `[value`
    Incl(Bytes),
    /// `(value`
    Excl(Bytes),
}

impl LexBound {
    /// Parses one bound as Redis's `zslParseLexRangeItem`.
    pub fn parse(b: &[u8]) -> Option<LexBound> {
        match b.first()? {
            b'+' if b.len() == 1 => Some(LexBound::PosInf),
            b'-' if b.len() == 1 => Some(LexBound::NegInf),
            b'(' => Some(LexBound::Excl(Bytes::copy_from_slice(&b[1..]))),
            b'[' => Some(LexBound::Incl(Bytes::copy_from_slice(&b[1..]))),
            _ => None,
        }
    }

    fn excl(&self) -> bool {
        !matches!(self, LexBound::Incl(_))
    }

    /// Orders a string against a bound (the infinities are never equal to a string).
    fn cmp_value(&self, v: &[u8]) -> Ordering {
        match self {
            LexBound::NegInf => Ordering::Less,
            LexBound::PosInf => Ordering::Greater,
            LexBound::Incl(b) | LexBound::Excl(b) => crate::bytecmp::cmp(b, v),
        }
    }
}

/// A lexicographic interval (`ZRANGEBYLEX min max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    /// Lower end.
    pub min: LexBound,
    /// Upper end.
    pub max: LexBound,
}

impl LexRange {
    /// Parses both ends; `None` means `ERR min or max not valid string range item`.
    pub fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        Some(LexRange {
            min: LexBound::parse(min)?,
            max: LexBound::parse(max)?,
        })
    }

    /// True when no string can lie in the interval (Redis's first check).
    pub fn is_empty(&self) -> bool {
        use LexBound::*;
        let cmp = match (&self.min, &self.max) {
            (NegInf, NegInf) | (PosInf, PosInf) => Ordering::Equal,
            (NegInf, _) | (_, PosInf) => Ordering::Less,
            (PosInf, _) | (_, NegInf) => Ordering::Greater,
            (Incl(a) | Excl(a), Incl(b) | Excl(b)) => a.cmp(b),
        };
        cmp == Ordering::Greater || (cmp == Ordering::Equal && (self.min.excl() || self.max.excl()))
    }

    /// `v` is not below the lower end.
    pub fn gte_min(&self, v: &[u8]) -> bool {
        match self.min.cmp_value(v) {
            Ordering::Less => true,
            Ordering::Equal => !self.min.excl(),
            Ordering::Greater => false,
        }
    }

    /// `v` is not above the upper end.
    pub fn lte_max(&self, v: &[u8]) -> bool {
        match self.max.cmp_value(v) {
            Ordering::Greater => true,
            Ordering::Equal => !self.max.excl(),
            Ordering::Less => false,
        }
    }
}

/// The packed small encoding: entries sorted by `(score, member)`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

/// One decoded packed entry and where it sits in the buffer.
struct PackedEntry<'a> {
    start: usize,
    end: usize,
    member: &'a [u8],
    score: f64,
}

struct PackedIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = PackedEntry<'a>;

    fn next(&mut self) -> Option<PackedEntry<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let mut p = start;
        let header = read_varint(self.buf, &mut p)?;
        let len = usize::try_from(header >> 1).ok()?;
        let member = self.buf.get(p..p.checked_add(len)?)?;
        p += len;
        let score = if header & 1 == 1 {
            let z = read_varint(self.buf, &mut p)?;
            // Zigzag: 0, -1, 1, -2, ... → 0, 1, 2, 3, ...
            ((z >> 1) as i64 ^ -((z & 1) as i64)) as f64
        } else {
            let bytes: [u8; 8] = self.buf.get(p..p + 8)?.try_into().ok()?;
            p += 8;
            f64::from_le_bytes(bytes)
        };
        self.pos = p;
        Some(PackedEntry {
            start,
            end: p,
            member,
            score,
        })
    }
}

fn read_varint(buf: &[u8], p: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*p)?;
        *p += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Scores that are integers of at most 53 bits are stored as zigzag varints (as a
/// listpack stores them as integers), others as their 8 bytes.
const INT_SCORE_MAX: f64 = 9_007_199_254_740_992.0;

impl Packed {
    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    /// Appends one entry: a varint header (member length, shifted, and whether the score
    /// is an integer), the member, the score (a zigzag varint or 8 bytes). A score of `-0`
    /// is stored as `0`: Redis writes listpack scores as text through its integer fast
    /// path, which drops the sign of zero (a `skiplist` keeps it, and so does ours).
    fn encode(member: &[u8], score: f64, out: &mut Vec<u8>) {
        let score = if score == 0.0 { 0.0 } else { score };
        let int = score.fract() == 0.0 && score.abs() <= INT_SCORE_MAX;
        write_varint(((member.len() as u64) << 1) | u64::from(int), out);
        out.extend_from_slice(member);
        if int {
            let i = score as i64;
            write_varint(((i << 1) ^ (i >> 63)) as u64, out);
        } else {
            out.extend_from_slice(&score.to_le_bytes());
        }
    }

    fn find(&self, member: &[u8]) -> Option<PackedEntry<'_>> {
        self.iter().find(|e| crate::bytecmp::eq(e.member, member))
    }

    /// Inserts a member known to be absent at its sorted position.
    fn insert(&mut self, member: &[u8], score: f64) {
        let at = self
            .iter()
            .find(|e| cmp_key(e.score, e.member, score, member) == Ordering::Greater)
            .map_or(self.buf.len(), |e| e.start);
        let mut enc = Vec::with_capacity(member.len() + 20);
        Self::encode(member, score, &mut enc);
        // Exact growth, as a listpack reallocates: an insert moves the tail anyway, and
        // many small sets must not carry doubling slack.
        self.buf.reserve_exact(enc.len());
        self.buf.splice(at..at, enc);
        self.len += 1;
    }

    fn remove_bytes(&mut self, start: usize, end: usize, count: usize) {
        self.buf.drain(start..end);
        self.len -= count;
        if self.buf.capacity() - self.buf.len() > PACKED_SLACK {
            self.buf.shrink_to_fit();
        }
    }

    /// Byte offset of the entry at `rank` (the buffer's end for `rank == len`).
    fn offset_of(&self, rank: usize) -> usize {
        self.iter().nth(rank).map_or(self.buf.len(), |e| e.start)
    }
}

enum Repr {
    Listpack(Packed),
    Skiplist(Box<Large>),
}

/// A sorted set.
pub struct ZSetValue {
    repr: Repr,
}

impl std::fmt::Debug for ZSetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        self.walk(0, false, |m, s| {
            l.entry(&(String::from_utf8_lossy(m), s));
            true
        });
        l.finish()
    }
}

impl Clone for ZSetValue {
    fn clone(&self) -> ZSetValue {
        match &self.repr {
            Repr::Listpack(p) => ZSetValue {
                repr: Repr::Listpack(p.clone()),
            },
            Repr::Skiplist(l) => ZSetValue {
                repr: Repr::Skiplist(l.clone()),
            },
        }
    }
}

impl PartialEq for ZSetValue {
    /// Same members with the same scores (encodings may differ).
    fn eq(&self, other: &ZSetValue) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut same = true;
        self.walk(0, false, |m, s| {
            same = other
                .score(m)
                .is_some_and(|o| o == s || (o.is_nan() && s.is_nan()));
            same
        });
        same
    }
}

impl Default for ZSetValue {
    fn default() -> Self {
        ZSetValue::new()
    }
}

impl ZSetValue {
    /// An empty set in the `listpack` encoding.
    pub fn new() -> ZSetValue {
        ZSetValue {
            repr: Repr::Listpack(Packed::default()),
        }
    }

    /// An empty set in the `skiplist` encoding.
    pub fn new_skiplist() -> ZSetValue {
        ZSetValue {
            repr: Repr::Skiplist(Box::new(Large::new())),
        }
    }

    /// The empty set ZADD/ZINCRBY create for a missing key, given the first member they
    /// will add: `skiplist` if listpacks are disabled or that member is too long for one.
    pub fn for_first_member(limits: &EncodingLimits, first_member_len: usize) -> ZSetValue {
        if limits.zset_max_listpack_entries == 0
            || first_member_len > limits.zset_max_listpack_value
        {
            ZSetValue::new_skiplist()
        } else {
            ZSetValue::new()
        }
    }

    /// A set holding `entries` (members must be distinct), in the encoding Redis gives the
    /// result of ZUNIONSTORE/ZRANGESTORE: `listpack` when it fits both thresholds.
    pub fn from_entries(entries: Vec<(Bytes, f64)>, limits: &EncodingLimits) -> ZSetValue {
        let fits = entries.len() <= limits.zset_max_listpack_entries
            && entries
                .iter()
                .all(|(m, _)| m.len() <= limits.zset_max_listpack_value);
        if fits {
            let mut sorted = entries;
            sorted.sort_by(|a, b| cmp_key(a.1, &a.0, b.1, &b.0));
            let mut p = Packed::default();
            for (m, s) in &sorted {
                Packed::encode(m, *s, &mut p.buf);
            }
            p.buf.shrink_to_fit();
            p.len = sorted.len();
            ZSetValue {
                repr: Repr::Listpack(p),
            }
        } else {
            let mut large = Large::new();
            for (m, s) in entries {
                large.insert_new(&m, s);
            }
            ZSetValue {
                repr: Repr::Skiplist(Box::new(large)),
            }
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(p) => p.len,
            Repr::Skiplist(l) => l.len(),
        }
    }

    /// True when empty (an empty collection is deleted from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's `OBJECT ENCODING` name for the current representation.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Skiplist(_) => "skiplist",
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Listpack(p) => p.buf.capacity(),
            Repr::Skiplist(l) => std::mem::size_of::<Large>() + l.heap_size(),
        }
    }

    /// The member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(p) => p.find(member).map(|e| e.score),
            Repr::Skiplist(l) => l.score(member),
        }
    }

    fn convert_to_skiplist(&mut self) {
        if let Repr::Listpack(p) = &self.repr {
            let mut large = Large::new();
            for e in p.iter() {
                large.insert_new(e.member, e.score);
            }
            self.repr = Repr::Skiplist(Box::new(large));
        }
    }

    /// Adds `member` or moves it to `score`. Returns true if it was new. Converts to
    /// `skiplist` first when a new member would break the listpack thresholds.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: &EncodingLimits) -> bool {
        debug_assert!(!score.is_nan());
        if let Repr::Listpack(p) = &mut self.repr {
            match p.find(member) {
                Some(e) => {
                    // Scores compare as Redis compares them: -0 equals 0, nothing moves.
                    if e.score != score {
                        let (start, end) = (e.start, e.end);
                        p.remove_bytes(start, end, 1);
                        p.insert(member, score);
                    }
                    return false;
                }
                None => {
                    if p.len + 1 > limits.zset_max_listpack_entries
                        || member.len() > limits.zset_max_listpack_value
                        || p.buf.len() + member.len() > PACKED_SAFETY_LIMIT
                    {
                        self.convert_to_skiplist();
                    } else {
                        p.insert(member, score);
                        return true;
                    }
                }
            }
        }
        match &mut self.repr {
            Repr::Skiplist(l) => l.upsert(member, score),
            // Converted above.
            Repr::Listpack(_) => unreachable!("listpack after conversion"),
        }
    }

    /// Removes `member`; returns its score if it was present.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Listpack(p) => {
                let e = p.find(member)?;
                let (start, end, score) = (e.start, e.end, e.score);
                p.remove_bytes(start, end, 1);
                Some(score)
            }
            Repr::Skiplist(l) => l.remove(member),
        }
    }

    /// 0-based ascending rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Listpack(p) => p.iter().position(|e| crate::bytecmp::eq(e.member, member)),
            Repr::Skiplist(l) => l.rank(member),
        }
    }

    /// The element at ascending rank `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Listpack(p) => p.iter().nth(rank).map(|e| (e.member, e.score)),
            Repr::Skiplist(l) => l.get(rank),
        }
    }

    /// Visits elements from ascending rank `start`, going up (`rev == false`) or down,
    /// until `f` returns false or the elements run out.
    pub fn walk(&self, start: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        match &self.repr {
            Repr::Listpack(p) => {
                if rev {
                    if start >= p.len {
                        return;
                    }
                    let entries: Vec<PackedEntry<'_>> = p.iter().take(start + 1).collect();
                    for e in entries.iter().rev() {
                        if !f(e.member, e.score) {
                            return;
                        }
                    }
                } else {
                    for e in p.iter().skip(start) {
                        if !f(e.member, e.score) {
                            return;
                        }
                    }
                }
            }
            Repr::Skiplist(l) => l.walk(start, rev, f),
        }
    }

    /// Every element in ascending order.
    pub fn to_vec(&self) -> Vec<(Bytes, f64)> {
        let mut out = Vec::with_capacity(self.len());
        self.walk(0, false, |m, s| {
            out.push((Bytes::copy_from_slice(m), s));
            true
        });
        out
    }

    /// Ascending ranks `[lo, hi)` of the elements whose score lies in `r`.
    pub fn score_ranks(&self, r: &ScoreRange) -> (usize, usize) {
        if r.is_empty() {
            return (0, 0);
        }
        let (lo, hi) = match &self.repr {
            Repr::Listpack(p) => {
                let mut lo = 0;
                let mut hi = 0;
                for e in p.iter() {
                    if !r.gte_min(e.score) {
                        lo += 1;
                    }
                    if r.lte_max(e.score) {
                        hi += 1;
                    } else {
                        break;
                    }
                }
                (lo, hi)
            }
            Repr::Skiplist(l) => (
                l.partition_point(|s, _| !r.gte_min(s)),
                l.partition_point(|s, _| r.lte_max(s)),
            ),
        };
        if hi <= lo { (0, 0) } else { (lo, hi) }
    }

    /// Ascending ranks `[lo, hi)` of the elements whose member lies in `r`, found the way
    /// Redis finds them going up (`rev == false`: ZRANGEBYLEX, ZLEXCOUNT,
    /// ZREMRANGEBYLEX) or down (ZREVRANGEBYLEX). The two agree whenever all scores are
    /// equal.
    pub fn lex_ranks(&self, r: &LexRange, rev: bool) -> (usize, usize) {
        if r.is_empty() || self.is_empty() {
            return (0, 0);
        }
        match &self.repr {
            Repr::Listpack(p) => {
                let entries: Vec<PackedEntry<'_>> = p.iter().collect();
                let (first, last) = match (entries.first(), entries.last()) {
                    (Some(f), Some(l)) => (f, l),
                    _ => return (0, 0),
                };
                if !r.gte_min(last.member) || !r.lte_max(first.member) {
                    return (0, 0);
                }
                if rev {
                    let Some(hi) = entries.iter().rposition(|e| r.lte_max(e.member)) else {
                        return (0, 0);
                    };
                    if !r.gte_min(entries[hi].member) {
                        return (0, 0);
                    }
                    let lo = entries[..hi]
                        .iter()
                        .rposition(|e| !r.gte_min(e.member))
                        .map_or(0, |i| i + 1);
                    (lo, hi + 1)
                } else {
                    let Some(lo) = entries.iter().position(|e| r.gte_min(e.member)) else {
                        return (0, 0);
                    };
                    if !r.lte_max(entries[lo].member) {
                        return (0, 0);
                    }
                    let hi = entries[lo..]
                        .iter()
                        .position(|e| !r.lte_max(e.member))
                        .map_or(entries.len(), |i| lo + i);
                    (lo, hi)
                }
            }
            Repr::Skiplist(l) => {
                let lo = l.partition_point(|_, m| !r.gte_min(m));
                let hi = l.partition_point(|_, m| r.lte_max(m));
                if hi <= lo { (0, 0) } else { (lo, hi) }
            }
        }
    }

    /// Removes ascending ranks `[lo, hi)` (clamped to the set); returns how many went.
    pub fn remove_ranks(&mut self, lo: usize, hi: usize) -> usize {
        let hi = hi.min(self.len());
        if lo >= hi {
            return 0;
        }
        match &mut self.repr {
            Repr::Listpack(p) => {
                let start = p.offset_of(lo);
                let end = p.offset_of(hi);
                p.remove_bytes(start, end, hi - lo);
            }
            Repr::Skiplist(l) => l.remove_ranks(lo, hi),
        }
        hi - lo
    }

    /// Removes and returns the lowest (`max == false`) or highest element.
    pub fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let rank = if max { n - 1 } else { 0 };
        match &mut self.repr {
            Repr::Listpack(p) => {
                let e = p.iter().nth(rank)?;
                let out = (Bytes::copy_from_slice(e.member), e.score);
                let (start, end) = (e.start, e.end);
                p.remove_bytes(start, end, 1);
                Some(out)
            }
            Repr::Skiplist(l) => l.remove_at(rank),
        }
    }

    /// Checks the large encoding's internal consistency (tests).
    #[cfg(test)]
    fn check(&self) {
        if let Repr::Skiplist(l) = &self.repr {
            l.check();
        }
    }

    /// One ZSCAN step: visits elements from `cursor` and returns the next cursor (0 when
    /// done). A `listpack` is visited whole at once, as Redis does; a `skiplist` walks its
    /// dictionary with Redis's reverse-binary cursor, so an element present for the whole
    /// scan is returned at least once. As in Redis, `count` counts reply entries (a member
    /// and its score are two), and at most `count * 10` buckets are visited per call.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Listpack(p) => {
                for e in p.iter() {
                    f(e.member, e.score);
                }
                0
            }
            Repr::Skiplist(l) => l.scan(cursor, count, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn limits(entries: usize, value: usize) -> EncodingLimits {
        EncodingLimits {
            zset_max_listpack_entries: entries,
            zset_max_listpack_value: value,
            ..EncodingLimits::default()
        }
    }

    fn members(z: &ZSetValue) -> Vec<(String, f64)> {
        z.to_vec()
            .into_iter()
            .map(|(m, s)| (String::from_utf8_lossy(&m).into_owned(), s))
            .collect()
    }

    #[test]
    fn score_bounds_parse_like_strtod() {
        let r = ScoreRange::parse(b"(1.5", b"inf").expect("valid");
        assert!(r.minex && !r.maxex && r.min == 1.5 && r.max == f64::INFINITY);
        assert_eq!(strtod_whole(b""), Some(0.0));
        assert_eq!(strtod_whole(b"  2"), Some(2.0));
        assert_eq!(strtod_whole(b"-InFiNiTy"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod_whole(b"1e400"), Some(f64::INFINITY));
        assert_eq!(strtod_whole(b"0x10"), Some(16.0));
        for bad in [&b"nan"[..], b" ", b"1 ", b"abc", b"+", b"1e", b"--1"] {
            assert_eq!(strtod_whole(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(ScoreRange::parse(b"(", b"1").is_some_and(|r| r.min == 0.0 && r.minex));
        assert!(ScoreRange::parse(b"x", b"1").is_none());
        assert!(ScoreRange::parse(b"5", b"(5").expect("valid").is_empty());
        assert!(!ScoreRange::parse(b"5", b"5").expect("valid").is_empty());
    }

    #[test]
    fn packed_scores_round_trip() {
        let lim = limits(128, 64);
        let scores = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            63.0,
            64.0,
            -65.0,
            1e15,
            -9_007_199_254_740_992.0,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            1e300,
            0.1,
            -2.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ];
        let mut z = ZSetValue::new();
        for (i, s) in scores.iter().enumerate() {
            z.insert(format!("m{i}").as_bytes(), *s, &lim);
        }
        assert_eq!(z.encoding(), "listpack");
        for (i, s) in scores.iter().enumerate() {
            let got = z.score(format!("m{i}").as_bytes()).expect("present");
            // -0 is stored as 0, as Redis's listpack does.
            let want = if *s == 0.0 { 0.0 } else { *s };
            assert_eq!(got.to_bits(), want.to_bits(), "score {s}");
        }
        // Small integer scores cost one byte.
        let mut small = ZSetValue::new();
        small.insert(b"abc", 5.0, &lim);
        assert_eq!(small.heap_size(), 1 + 3 + 1);
    }

    #[test]
    fn lex_bounds_follow_redis() {
        assert_eq!(LexBound::parse(b"-"), Some(LexBound::NegInf));
        assert_eq!(LexBound::parse(b"+"), Some(LexBound::PosInf));
        assert_eq!(LexBound::parse(b"+a"), None);
        assert_eq!(LexBound::parse(b"a"), None);
        assert_eq!(LexBound::parse(b""), None);
        assert_eq!(
            LexBound::parse(b"(a"),
            Some(LexBound::Excl(Bytes::from_static(b"a")))
        );
        let r = LexRange::parse(b"[a", b"(c").expect("valid");
        assert!(r.gte_min(b"a") && r.gte_min(b"b") && !r.gte_min(b"0"));
        assert!(r.lte_max(b"b") && !r.lte_max(b"c"));
        assert!(LexRange::parse(b"(a", b"[a").expect("valid").is_empty());
        assert!(!LexRange::parse(b"[a", b"[a").expect("valid").is_empty());
        assert!(LexRange::parse(b"+", b"+").expect("valid").is_empty());
        assert!(LexRange::parse(b"+", b"[a").expect("valid").is_empty());
        assert!(!LexRange::parse(b"-", b"+").expect("valid").is_empty());
    }

    #[test]
    fn converts_at_thresholds_and_never_back() {
        let lim = limits(4, 8);
        let mut z = ZSetValue::new();
        for (i, m) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(z.insert(m.as_bytes(), i as f64, &lim));
        }
        assert_eq!(z.encoding(), "listpack");
        assert!(!z.insert(b"a", 10.0, &lim));
        assert_eq!(z.encoding(), "listpack");
        assert!(z.insert(b"e", 0.5, &lim));
        assert_eq!(z.encoding(), "skiplist");
        let want: Vec<(String, f64)> = vec![
            ("b".into(), 1.0),
            ("e".into(), 0.5),
            ("c".into(), 2.0),
            ("d".into(), 3.0),
            ("a".into(), 10.0),
        ];
        let mut want_sorted = want.clone();
        want_sorted.sort_by(|a, b| cmp_key(a.1, a.0.as_bytes(), b.1, b.0.as_bytes()));
        assert_eq!(members(&z), want_sorted);
        assert_eq!(members(&z)[0], ("e".to_string(), 0.5));
        while z.len() > 1 {
            z.pop(false);
        }
        assert_eq!(z.encoding(), "skiplist");
        let mut long = ZSetValue::new();
        long.insert(b"123456789", 1.0, &lim);
        assert_eq!(long.encoding(), "skiplist");
        assert_eq!(ZSetValue::for_first_member(&lim, 9).encoding(), "skiplist");
        assert_eq!(ZSetValue::for_first_member(&lim, 8).encoding(), "listpack");
        assert_eq!(
            ZSetValue::for_first_member(&limits(0, 64), 1).encoding(),
            "skiplist"
        );
    }

    #[test]
    fn lex_scan_on_listpack_matches_redis_with_mixed_scores() {
        // Members out of lex order because scores differ: Redis scans linearly.
        let lim = limits(128, 64);
        let mut z = ZSetValue::new();
        for (m, s) in [("c", 1.0), ("a", 2.0), ("d", 3.0), ("b", 4.0)] {
            z.insert(m.as_bytes(), s, &lim);
        }
        let r = LexRange::parse(b"[b", b"[c").expect("valid");
        // Forward: first member >= b is "c" (rank 0); then runs while <= c: stops at "d".
        assert_eq!(z.lex_ranks(&r, false), (0, 2));
        // Backward: last member <= c is "b" (rank 3); runs down while >= b: stops at "a".
        assert_eq!(z.lex_ranks(&r, true), (2, 4));
    }

    #[test]
    fn ranges_and_removals() {
        for lim in [limits(128, 64), limits(0, 64)] {
            let mut z = if lim.zset_max_listpack_entries == 0 {
                ZSetValue::new_skiplist()
            } else {
                ZSetValue::new()
            };
            for i in 0..10 {
                z.insert(format!("m{i}").as_bytes(), f64::from(i), &lim);
            }
            let r = ScoreRange::parse(b"(2", b"5").expect("valid");
            assert_eq!(z.score_ranks(&r), (3, 6));
            let r = ScoreRange::parse(b"-inf", b"+inf").expect("valid");
            assert_eq!(z.score_ranks(&r), (0, 10));
            let r = ScoreRange::parse(b"20", b"30").expect("valid");
            assert_eq!(z.score_ranks(&r), (0, 0));
            assert_eq!(z.rank(b"m4"), Some(4));
            assert_eq!(z.get(4), Some((&b"m4"[..], 4.0)));
            assert_eq!(z.remove_ranks(2, 5), 3);
            assert_eq!(z.len(), 7);
            assert_eq!(z.rank(b"m5"), Some(2));
            assert_eq!(z.score(b"m3"), None);
            assert_eq!(z.pop(true), Some((Bytes::from_static(b"m9"), 9.0)));
            assert_eq!(z.pop(false), Some((Bytes::from_static(b"m0"), 0.0)));
            let mut seen = Vec::new();
            z.walk(3, true, |m, _| {
                seen.push(String::from_utf8_lossy(m).into_owned());
                true
            });
            assert_eq!(seen, vec!["m7", "m6", "m5", "m1"]);
            let mut all = HashMap::new();
            let mut cursor = 0;
            loop {
                cursor = z.scan(cursor, 2, |m, s| {
                    all.insert(m.to_vec(), s);
                });
                if cursor == 0 {
                    break;
                }
            }
            assert_eq!(all.len(), z.len());
        }
    }

    /// Work (key comparisons, predicate calls, child counts summed) of `f`, counted by
    /// the tree on this thread.
    fn work(f: impl FnOnce()) -> u64 {
        let before = tree::WORK.with(|w| w.get());
        f();
        tree::WORK.with(|w| w.get()) - before
    }

    #[test]
    fn million_element_operations_do_logarithmic_work() {
        const N: u32 = 1_000_000;
        // Any O(n) path would cost about a million units; a root-to-leaf path costs a
        // few hundred at most (four levels of at most 64 children, binary searches).
        const BOUND: u64 = 2_000;
        let lim = limits(128, 64);
        let mut z = ZSetValue::new_skiplist();
        for i in 0..N {
            z.insert(format!("m{i}").as_bytes(), f64::from(i), &lim);
        }
        assert_eq!(z.len(), N as usize);
        let checks: Vec<(&str, u64)> = vec![
            (
                "insert",
                work(|| assert!(z.insert(b"new", 500_000.5, &lim))),
            ),
            (
                "update",
                work(|| assert!(!z.insert(b"m10", 999_999.5, &lim))),
            ),
            ("score", work(|| assert_eq!(z.score(b"m7"), Some(7.0)))),
            (
                "rank",
                work(|| assert_eq!(z.rank(b"m500000"), Some(499_999))),
            ),
            ("get", work(|| assert!(z.get(750_000).is_some()))),
            (
                "score range",
                work(|| {
                    let r = ScoreRange::parse(b"(1000", b"2000").expect("valid");
                    assert_eq!(z.score_ranks(&r), (1000, 2000));
                }),
            ),
            (
                "lex range",
                work(|| {
                    let r = LexRange::parse(b"[m1", b"(m2").expect("valid");
                    let _ = z.lex_ranks(&r, false);
                }),
            ),
            (
                "walk 10",
                work(|| {
                    let mut n = 0;
                    z.walk(600_000, true, |_, _| {
                        n += 1;
                        n < 10
                    });
                    assert_eq!(n, 10);
                }),
            ),
            (
                "remove",
                work(|| assert_eq!(z.remove(b"m123456"), Some(123_456.0))),
            ),
            ("pop min", work(|| assert!(z.pop(false).is_some()))),
            ("pop max", work(|| assert!(z.pop(true).is_some()))),
            (
                "remove 10 ranks",
                work(|| assert_eq!(z.remove_ranks(400_000, 400_010), 10)),
            ),
        ];
        for (what, units) in checks {
            let bound = if what == "remove 10 ranks" {
                10 * BOUND
            } else {
                BOUND
            };
            assert!(
                units <= bound,
                "{what} did {units} units of work at 1M elements"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        /// Random operations against a BTreeMap model, with thresholds small enough that
        /// most runs convert to `skiplist` part-way.
        #[test]
        fn behaves_like_a_model(
            entries_limit in 0usize..12,
            ops in proptest::collection::vec((0u8..6, 0u8..24, -8i8..8), 1..300),
        ) {
            let lim = limits(entries_limit, 6);
            let mut z = ZSetValue::for_first_member(&lim, 1);
            let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            let mut was_large = z.encoding() == "skiplist";
            for (op, m, s) in ops {
                // Members 20..24 are longer than the value limit.
                let member = if m >= 20 { format!("long-{m}") } else { format!("m{m}") };
                let mb = member.as_bytes();
                let score = f64::from(s) / 4.0;
                match op {
                    0 | 1 => {
                        let new = z.insert(mb, score, &lim);
                        proptest::prop_assert_eq!(new, model.insert(mb.to_vec(), score).is_none());
                    }
                    2 => {
                        proptest::prop_assert_eq!(z.remove(mb), model.remove(mb));
                    }
                    3 => {
                        let got = z.pop(s < 0);
                        let mut sorted: Vec<(&Vec<u8>, &f64)> = model.iter().collect();
                        sorted.sort_by(|a, b| cmp_key(*a.1, a.0, *b.1, b.0));
                        let want = if s < 0 { sorted.last() } else { sorted.first() }
                            .map(|(m, s)| ((*m).clone(), **s));
                        proptest::prop_assert_eq!(got.as_ref().map(|(m, s)| (m.to_vec(), *s)), want.clone());
                        if let Some((m, _)) = want {
                            model.remove(&m);
                        }
                    }
                    4 => {
                        let r = ScoreRange { min: score, max: score + 1.0, minex: s % 2 == 0, maxex: false };
                        let (lo, hi) = z.score_ranks(&r);
                        let want = model.values().filter(|v| r.gte_min(**v) && r.lte_max(**v)).count();
                        proptest::prop_assert_eq!(hi - lo, want);
                    }
                    _ => {
                        let n = z.len();
                        if n > 0 {
                            let lo = usize::from(m) % n;
                            let hi = (lo + 2).min(n);
                            let mut doomed = Vec::new();
                            z.walk(lo, false, |m, _| { doomed.push(m.to_vec()); doomed.len() < hi - lo });
                            proptest::prop_assert_eq!(z.remove_ranks(lo, hi), hi - lo);
                            for d in doomed {
                                proptest::prop_assert!(model.remove(&d).is_some());
                            }
                        }
                    }
                }
                proptest::prop_assert_eq!(z.len(), model.len());
                z.check();
                if was_large {
                    proptest::prop_assert_eq!(z.encoding(), "skiplist");
                }
                was_large = z.encoding() == "skiplist";
                if z.encoding() == "listpack" {
                    proptest::prop_assert!(z.len() <= lim.zset_max_listpack_entries);
                }
            }
            let mut sorted: Vec<(Vec<u8>, f64)> = model.into_iter().collect();
            sorted.sort_by(|a, b| cmp_key(a.1, &a.0, b.1, &b.0));
            let got: Vec<(Vec<u8>, f64)> = z.to_vec().into_iter().map(|(m, s)| (m.to_vec(), s)).collect();
            proptest::prop_assert_eq!(&got, &sorted);
            for (r, (m, s)) in sorted.iter().enumerate() {
                proptest::prop_assert_eq!(z.rank(m), Some(r));
                proptest::prop_assert_eq!(z.score(m), Some(*s));
            }
        }
    }
}
