//! The set value type (Redis's `OBJ_SET`) with Redis's three encodings.
//!
//! - `intset`: a sorted array of integers, 2, 4 or 8 bytes wide. The width grows with the
//!   largest magnitude stored and never shrinks, as in Redis's intset. Used while every
//!   member is a canonical 64-bit integer (Redis's `string2ll` rules: no sign `+`, no
//!   leading zeros, no `-0`) and there are at most `set-max-intset-entries` members.
//!   Iteration is in ascending order, which replies expose (`SMEMBERS` of an intset is
//!   sorted in Redis too).
//! - `listpack`: Redis 7.2's compact small set (members in insertion order in one byte
//!   buffer). Only used when `set-max-listpack-entries` > 0; Basalt's default of 0 keeps
//!   Redis 7.0's behaviour, where small non-integer sets are hash tables. With it enabled,
//!   creation and conversion follow Redis 7.2's rules (size hints included).
//! - `hashtable`: a chained table with Redis's SCAN cursor (`set/table.rs`), so `SSCAN`
//!   keeps Redis's guarantee across resizes and random picks are cheap; short members
//!   live inside their table node.
//!
//! Conversions go towards larger encodings only (intset → listpack → hashtable, or
//! directly to hashtable); a set never shrinks back, as in Redis. The engine draws no
//! randomness of its own: random picks take a caller-supplied generator.

use crate::encoding::EncodingLimits;
use crate::num::parse_i64;
use crate::types::table::Entry;
use bytes::Bytes;
use std::fmt;
use stored::MemberTable as Table;

mod stored;

/// Redis limits intsets to 2^30 entries whatever `set-max-intset-entries` says.
const INTSET_HARD_MAX: usize = 1 << 30;

/// One member as stored: intsets hold integers, the other encodings bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    /// An intset member.
    Int(i64),
    /// A listpack or hashtable member.
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// Runs `f` on the member's bytes (integers are formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(i) => f(itoa::Buffer::new().format(*i).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }

    /// The member's bytes in a fresh buffer (never sharing the set's storage).
    pub fn to_bytes(&self) -> Bytes {
        self.with_bytes(Bytes::copy_from_slice)
    }
}

/// Width-adaptive sorted integers.
#[derive(Clone)]
enum IntSet {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

/// Bytes per element needed to store `v`.
fn width_of(v: i64) -> u8 {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// Inserts without the doubling slack of `Vec` growth: an intset costs its members'
/// bytes, as Redis's (which reallocates on every insert; the insert moves the tail
/// anyway, so this keeps the same cost).
fn insert_exact<T>(v: &mut Vec<T>, pos: usize, x: T) {
    v.reserve_exact(1);
    v.insert(pos, x);
}

/// Removes and gives memory back once the slack grows past a quarter of the contents.
fn remove_exact<T>(v: &mut Vec<T>, pos: usize) {
    v.remove(pos);
    if v.capacity() > v.len() + v.len() / 4 + 4 {
        v.shrink_to_fit();
    }
}

fn search<T: Copy + Into<i64>>(v: &[T], x: i64) -> Result<usize, usize> {
    v.binary_search_by(|e| (*e).into().cmp(&x))
}

impl IntSet {
    fn len(&self) -> usize {
        match self {
            IntSet::I16(v) => v.len(),
            IntSet::I32(v) => v.len(),
            IntSet::I64(v) => v.len(),
        }
    }

    fn width(&self) -> u8 {
        match self {
            IntSet::I16(_) => 2,
            IntSet::I32(_) => 4,
            IntSet::I64(_) => 8,
        }
    }

    fn get(&self, i: usize) -> Option<i64> {
        match self {
            IntSet::I16(v) => v.get(i).map(|&x| i64::from(x)),
            IntSet::I32(v) => v.get(i).map(|&x| i64::from(x)),
            IntSet::I64(v) => v.get(i).copied(),
        }
    }

    fn find(&self, x: i64) -> Result<usize, usize> {
        match self {
            IntSet::I16(v) => search(v, x),
            IntSet::I32(v) => search(v, x),
            IntSet::I64(v) => search(v, x),
        }
    }

    fn contains(&self, x: i64) -> bool {
        self.find(x).is_ok()
    }

    /// Widens every element so that `w`-byte values fit.
    fn upgrade(&mut self, w: u8) {
        if w <= self.width() {
            return;
        }
        let all: Vec<i64> = (0..self.len()).filter_map(|i| self.get(i)).collect();
        *self = if w == 4 {
            IntSet::I32(
                all.into_iter()
                    .filter_map(|x| i32::try_from(x).ok())
                    .collect(),
            )
        } else {
            IntSet::I64(all)
        };
    }

    fn insert(&mut self, x: i64) -> bool {
        self.upgrade(width_of(x));
        let Err(pos) = self.find(x) else {
            return false;
        };
        match self {
            // The upgrade above guarantees `x` fits the current width.
            IntSet::I16(v) => insert_exact(v, pos, x as i16),
            IntSet::I32(v) => insert_exact(v, pos, x as i32),
            IntSet::I64(v) => insert_exact(v, pos, x),
        }
        true
    }

    fn remove(&mut self, x: i64) -> bool {
        let Ok(pos) = self.find(x) else {
            return false;
        };
        match self {
            IntSet::I16(v) => remove_exact(v, pos),
            IntSet::I32(v) => remove_exact(v, pos),
            IntSet::I64(v) => remove_exact(v, pos),
        }
        true
    }

    fn heap_size(&self) -> usize {
        match self {
            IntSet::I16(v) => v.capacity() * 2,
            IntSet::I32(v) => v.capacity() * 4,
            IntSet::I64(v) => v.capacity() * 8,
        }
    }
}

/// Members packed in insertion order: a LEB128 length, then the bytes, per member.
#[derive(Clone, Default)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

/// Iterates a packed buffer as `(entry start, entry end, member)`.
struct PackIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (usize, usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        let mut n = 0usize;
        let mut shift = 0u32;
        loop {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let end = self.pos.checked_add(n)?;
        let member = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some((start, end, member))
    }
}

impl Packed {
    fn iter(&self) -> PackIter<'_> {
        PackIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, m: &[u8]) -> Option<(usize, usize)> {
        self.iter()
            .find(|(_, _, x)| crate::bytecmp::eq(x, m))
            .map(|(start, end, _)| (start, end))
    }

    fn push(&mut self, m: &[u8]) {
        // Exact growth, as for intsets: a small set costs its bytes.
        self.buf.reserve_exact(m.len() + 10);
        let mut n = m.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(b);
                break;
            }
            self.buf.push(b | 0x80);
        }
        self.buf.extend_from_slice(m);
        self.len += 1;
    }

    fn remove(&mut self, m: &[u8]) -> bool {
        match self.find(m) {
            Some((start, end)) => {
                self.buf.drain(start..end);
                self.len -= 1;
                let n = self.buf.len();
                if self.buf.capacity() > n + n / 4 + 16 {
                    self.buf.shrink_to_fit();
                }
                true
            }
            None => false,
        }
    }
}

enum Repr {
    Ints(IntSet),
    Pack(Packed),
    Table(Table),
}

/// A set value.
pub struct SetValue {
    repr: Repr,
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::new()
    }
}

impl Clone for SetValue {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Ints(s) => Repr::Ints(s.clone()),
            Repr::Pack(p) => Repr::Pack(p.clone()),
            Repr::Table(_) => {
                let mut t = Table::default();
                self.for_each(|m| {
                    m.with_bytes(|b| t.insert(b));
                });
                Repr::Table(t)
            }
        };
        SetValue { repr }
    }
}

impl PartialEq for SetValue {
    /// Equal as sets (same members), whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut all = true;
        self.for_each_while(|m| {
            all = other.contains_member(m);
            all
        });
        all
    }
}

impl fmt::Debug for SetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut members = Vec::new();
        self.for_each(|m| members.push(m.to_bytes()));
        f.debug_struct("SetValue")
            .field("encoding", &self.encoding())
            .field("members", &members)
            .finish()
    }
}

fn intset_max(lim: &EncodingLimits) -> usize {
    lim.set_max_intset_entries.min(INTSET_HARD_MAX)
}

/// Decimal length of an integer, sign included (Redis's `sdigits10`).
fn digits(v: i64) -> usize {
    itoa::Buffer::new().format(v).len()
}

impl SetValue {
    /// An empty set with the intset encoding (Redis's `createIntsetObject`), the start of
    /// every computed set (SUNION, SINTERSTORE ...).
    pub fn new() -> SetValue {
        SetValue {
            repr: Repr::Ints(IntSet::I16(Vec::new())),
        }
    }

    /// An empty set with the encoding Redis's `setTypeCreate` picks for a set about to
    /// receive `first` and `size_hint` members in total. The caller adds `first` itself.
    pub fn with_first(first: &[u8], size_hint: usize, lim: &EncodingLimits) -> SetValue {
        let is_int = parse_i64(first).is_some();
        let repr = if lim.set_max_listpack_entries == 0 {
            // Redis 7.0: no size hint; the intset converts itself as it grows.
            if is_int {
                Repr::Ints(IntSet::I16(Vec::new()))
            } else {
                Repr::Table(Table::default())
            }
        } else if is_int && size_hint <= lim.set_max_intset_entries {
            Repr::Ints(IntSet::I16(Vec::new()))
        } else if size_hint <= lim.set_max_listpack_entries {
            Repr::Pack(Packed::default())
        } else {
            Repr::Table(Table::default())
        };
        SetValue { repr }
    }

    /// Builds a set from members, converting as Redis's `setTypeAdd` would while adding
    /// them one by one to a fresh intset.
    pub fn from_members<'m>(
        members: impl IntoIterator<Item = &'m [u8]>,
        lim: &EncodingLimits,
    ) -> SetValue {
        let mut s = SetValue::new();
        for m in members {
            s.add(m, lim);
        }
        s
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(s) => s.len(),
            Repr::Pack(p) => p.len,
            Repr::Table(t) => t.len(),
        }
    }

    /// True when empty (an empty collection is deleted from the keyspace).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's `OBJECT ENCODING` name for the current representation.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Ints(_) => "intset",
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Ints(s) => s.heap_size(),
            Repr::Pack(p) => p.buf.capacity(),
            Repr::Table(t) => t.heap_size(),
        }
    }

    /// True if `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(s) => parse_i64(m).is_some_and(|x| s.contains(x)),
            Repr::Pack(p) => p.find(m).is_some(),
            Repr::Table(t) => t.contains(m),
        }
    }

    /// True if `m` (taken from another set) is a member.
    pub fn contains_member(&self, m: Member<'_>) -> bool {
        match (m, &self.repr) {
            (Member::Int(x), Repr::Ints(s)) => s.contains(x),
            (m, _) => m.with_bytes(|b| self.contains(b)),
        }
    }

    fn convert_to_table(&mut self) {
        if matches!(self.repr, Repr::Table(_)) {
            return;
        }
        let mut t = Table::default();
        self.for_each(|m| {
            m.with_bytes(|b| t.insert(b));
        });
        self.repr = Repr::Table(t);
    }

    fn convert_to_pack(&mut self) {
        let mut p = Packed::default();
        self.for_each(|m| m.with_bytes(|b| p.push(b)));
        self.repr = Repr::Pack(p);
    }

    /// Adds `m`; returns false if it was already a member. Converts the encoding at the
    /// thresholds of `lim`, as Redis's `setTypeAdd`.
    pub fn add(&mut self, m: &[u8], lim: &EncodingLimits) -> bool {
        match &mut self.repr {
            Repr::Ints(s) => {
                if let Some(x) = parse_i64(m) {
                    if !s.insert(x) {
                        return false;
                    }
                    if s.len() > intset_max(lim) {
                        self.convert_to_table();
                    }
                    return true;
                }
                if self.intset_fits_listpack(m, lim) {
                    self.convert_to_pack();
                } else {
                    self.convert_to_table();
                }
                self.add(m, lim)
            }
            Repr::Pack(p) => {
                if p.find(m).is_some() {
                    return false;
                }
                if p.len < lim.set_max_listpack_entries && m.len() <= lim.set_max_listpack_value {
                    p.push(m);
                    return true;
                }
                self.convert_to_table();
                self.add(m, lim)
            }
            Repr::Table(t) => t.insert(m),
        }
    }

    /// Redis 7.2's test for turning an intset into a listpack when a non-integer arrives.
    fn intset_fits_listpack(&self, m: &[u8], lim: &EncodingLimits) -> bool {
        let Repr::Ints(s) = &self.repr else {
            return false;
        };
        let n = s.len();
        let widest = match (s.get(0), n.checked_sub(1).and_then(|i| s.get(i))) {
            (Some(lo), Some(hi)) => digits(lo).max(digits(hi)),
            _ => 0,
        };
        n < lim.set_max_listpack_entries
            && m.len() <= lim.set_max_listpack_value
            && widest <= lim.set_max_listpack_value
    }

    /// Adds a member taken from another set (no formatting for intset → intset).
    pub fn add_member(&mut self, m: Member<'_>, lim: &EncodingLimits) -> bool {
        if let (Member::Int(x), Repr::Ints(s)) = (m, &mut self.repr) {
            if !s.insert(x) {
                return false;
            }
            if s.len() > intset_max(lim) {
                self.convert_to_table();
            }
            return true;
        }
        m.with_bytes(|b| self.add(b, lim))
    }

    /// Redis 7.2's `setTypeMaybeConvert`: before adding up to `size_hint` members, a
    /// small encoding that could not hold that many becomes a hash table. Only active
    /// when the listpack encoding is enabled (Redis 7.0 has no such step).
    pub fn reserve(&mut self, size_hint: usize, lim: &EncodingLimits) {
        if lim.set_max_listpack_entries == 0 {
            return;
        }
        let convert = match &self.repr {
            Repr::Pack(_) => size_hint > lim.set_max_listpack_entries,
            Repr::Ints(_) => size_hint > lim.set_max_intset_entries,
            Repr::Table(_) => false,
        };
        if convert {
            self.convert_to_table();
        }
    }

    /// Removes `m`; returns false if it was not a member. The encoding never shrinks.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(s) => parse_i64(m).is_some_and(|x| s.remove(x)),
            Repr::Pack(p) => p.remove(m),
            Repr::Table(t) => t.remove_member(m),
        }
    }

    /// Removes a member taken from another set (or from this one).
    pub fn remove_member(&mut self, m: Member<'_>) -> bool {
        match (m, &mut self.repr) {
            (Member::Int(x), Repr::Ints(s)) => s.remove(x),
            (m, _) => m.with_bytes(|b| self.remove(b)),
        }
    }

    /// Visits every member in the encoding's order: ascending for intsets, insertion
    /// order for listpacks, table order (unspecified) for hash tables.
    pub fn for_each(&self, mut f: impl FnMut(Member<'_>)) {
        self.for_each_while(|m| {
            f(m);
            true
        });
    }

    /// Like [`SetValue::for_each`], stopping as soon as `f` returns false.
    pub fn for_each_while(&self, mut f: impl FnMut(Member<'_>) -> bool) {
        match &self.repr {
            Repr::Ints(s) => {
                for i in 0..s.len() {
                    if let Some(x) = s.get(i)
                        && !f(Member::Int(x))
                    {
                        return;
                    }
                }
            }
            Repr::Pack(p) => {
                for (_, _, m) in p.iter() {
                    if !f(Member::Bytes(m)) {
                        return;
                    }
                }
            }
            Repr::Table(t) => {
                for e in t.iter() {
                    if !f(Member::Bytes(e.key())) {
                        break;
                    }
                }
            }
        }
    }

    /// Every member's bytes, in [`SetValue::for_each`] order.
    pub fn members(&self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|m| out.push(m.to_bytes()));
        out
    }

    /// A random member (`None` when empty). Intsets and listpacks pick uniformly; hash
    /// tables pick a random non-empty bucket, then a random entry of its chain, so members
    /// of long chains are a little less likely (as Redis's `dictGetRandomKey`).
    pub fn random_member<R: FnMut() -> u64>(&self, rng: &mut R) -> Option<Member<'_>> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        match &self.repr {
            Repr::Ints(s) => s.get((rng() % n as u64) as usize).map(Member::Int),
            Repr::Pack(p) => {
                let i = (rng() % n as u64) as usize;
                p.iter().nth(i).map(|(_, _, m)| Member::Bytes(m))
            }
            Repr::Table(t) => t.random(rng).map(|e| Member::Bytes(e.key())),
        }
    }

    /// Removes and returns a random member.
    pub fn pop_random<R: FnMut() -> u64>(&mut self, rng: &mut R) -> Option<Bytes> {
        let m = self.random_member(rng)?.to_bytes();
        self.remove(&m);
        Some(m)
    }

    /// One `SSCAN` step. Hash tables visit buckets from `cursor` until at least `count`
    /// members were seen, the walk ends, or `count * 10` more buckets were read (Redis's
    /// bound), and return the next cursor. The small encodings return every member in one
    /// call with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(Member<'_>)) -> u64 {
        match &self.repr {
            Repr::Table(t) => {
                let mut seen = 0usize;
                let mut budget = count.saturating_mul(10);
                let mut cursor = cursor;
                loop {
                    cursor = t.scan(cursor, |e| {
                        seen += 1;
                        f(Member::Bytes(e.key()));
                    });
                    if cursor == 0 || budget == 0 || seen >= count {
                        return cursor;
                    }
                    budget -= 1;
                }
            }
            _ => {
                self.for_each(f);
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn lim() -> EncodingLimits {
        EncodingLimits::default()
    }

    fn small_lim(listpack: usize) -> EncodingLimits {
        EncodingLimits {
            set_max_intset_entries: 4,
            set_max_listpack_entries: listpack,
            set_max_listpack_value: 6,
            ..EncodingLimits::default()
        }
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn strs(s: &SetValue) -> Vec<String> {
        s.members()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn intset_is_sorted_and_widens() {
        let l = lim();
        let mut s = SetValue::with_first(b"3", 3, &l);
        assert!(s.add(b"3", &l));
        assert!(s.add(b"-1", &l));
        assert!(!s.add(b"3", &l));
        assert_eq!(s.encoding(), "intset");
        assert!(s.add(b"100000", &l));
        assert!(s.add(b"-9223372036854775808", &l));
        assert_eq!(strs(&s), vec!["-9223372036854775808", "-1", "3", "100000"]);
        assert!(s.contains(b"100000"));
        assert!(!s.contains(b"0100000"));
        assert!(s.remove(b"-1"));
        assert!(!s.remove(b"-1"));
        assert_eq!(s.len(), 3);
        assert_eq!(s.encoding(), "intset");
    }

    #[test]
    fn non_canonical_integers_make_a_hashtable() {
        let l = lim();
        for m in [
            &b"01"[..],
            b"-0",
            b"+1",
            b" 1",
            b"1.0",
            b"9223372036854775808",
        ] {
            let mut s = SetValue::new();
            s.add(b"1", &l);
            s.add(m, &l);
            assert_eq!(s.encoding(), "hashtable", "{m:?}");
            assert_eq!(s.len(), 2);
            assert!(s.contains(b"1") && s.contains(m));
        }
    }

    #[test]
    fn intset_converts_past_the_limit_and_never_back() {
        let l = lim();
        let mut s = SetValue::new();
        for i in 0..512 {
            s.add(i.to_string().as_bytes(), &l);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"512", &l);
        assert_eq!(s.encoding(), "hashtable");
        for i in 0..513 {
            assert!(s.remove(i.to_string().as_bytes()));
        }
        assert!(s.is_empty());
        s.add(b"1", &l);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn zero_intset_limit_gives_hashtable_on_first_add() {
        let l = EncodingLimits {
            set_max_intset_entries: 0,
            ..lim()
        };
        let mut s = SetValue::with_first(b"1", 1, &l);
        s.add(b"1", &l);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn listpack_keeps_insertion_order_and_converts() {
        let l = small_lim(3);
        let mut s = SetValue::with_first(b"b", 1, &l);
        assert_eq!(s.encoding(), "listpack");
        s.add(b"b", &l);
        s.add(b"a", &l);
        s.add(b"c", &l);
        assert_eq!(strs(&s), vec!["b", "a", "c"]);
        assert!(s.remove(b"a"));
        assert_eq!(strs(&s), vec!["b", "c"]);
        assert!(!s.add(b"c", &l));
        s.add(b"toolongvalue", &l);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn intset_becomes_listpack_when_enabled() {
        let l = small_lim(8);
        let mut s = SetValue::new();
        s.add(b"2", &l);
        s.add(b"1", &l);
        s.add(b"x", &l);
        assert_eq!(s.encoding(), "listpack");
        assert_eq!(strs(&s), vec!["1", "2", "x"]);
        // An integer member wider than set-max-listpack-value forces a hash table.
        let mut s = SetValue::new();
        s.add(b"12345678", &l);
        s.add(b"x", &l);
        assert_eq!(s.encoding(), "hashtable");
        // Size hints (7.2 rules).
        assert_eq!(SetValue::with_first(b"1", 5, &l).encoding(), "listpack");
        assert_eq!(SetValue::with_first(b"a", 9, &l).encoding(), "hashtable");
        let mut s = SetValue::with_first(b"a", 1, &l);
        s.add(b"a", &l);
        s.reserve(9, &l);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn random_and_pop_cover_members() {
        let l = lim();
        for members in [vec!["1", "2", "3"], vec!["a", "b", "c"]] {
            let s = SetValue::from_members(members.iter().map(|m| m.as_bytes()), &l);
            let mut r = rng(7);
            let mut seen = HashSet::new();
            for _ in 0..200 {
                let m = s.random_member(&mut r).expect("non-empty");
                seen.insert(m.to_bytes());
            }
            assert_eq!(seen.len(), 3);
            let mut s = s;
            let mut popped = HashSet::new();
            while let Some(m) = s.pop_random(&mut r) {
                popped.insert(m);
            }
            assert_eq!(popped, seen);
            assert!(s.random_member(&mut r).is_none());
        }
    }

    #[test]
    fn scan_small_returns_all_with_cursor_zero() {
        let l = lim();
        let s = SetValue::from_members([&b"3"[..], b"1"], &l);
        let mut got = Vec::new();
        assert_eq!(s.scan(12345, 1, |m| got.push(m.to_bytes())), 0);
        assert_eq!(got, vec![Bytes::from("1"), Bytes::from("3")]);
    }

    #[test]
    fn scan_table_visits_everything() {
        let l = lim();
        let names: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        let s = SetValue::from_members(names.iter().map(|m| m.as_bytes()), &l);
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let mut batch = 0;
            cursor = s.scan(cursor, 10, |m| {
                batch += 1;
                seen.insert(m.to_bytes());
            });
            calls += 1;
            if cursor == 0 {
                break;
            }
            assert!(
                batch >= 10,
                "a non-final step returns at least COUNT members"
            );
        }
        assert!(calls > 10);
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn clone_and_eq_ignore_encoding() {
        let l = lim();
        let a = SetValue::from_members([&b"1"[..], b"2"], &l);
        let mut b = SetValue::from_members([&b"x"[..], b"1", b"2"], &l);
        assert_ne!(a, b);
        b.remove(b"x");
        assert_eq!(a, b);
        assert_eq!(b.clone(), a);
        assert_eq!(b.clone().encoding(), "hashtable");
        assert!(b.heap_size() > 0);
    }

    #[test]
    fn early_stop() {
        let l = lim();
        let names: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        let s = SetValue::from_members(names.iter().map(|m| m.as_bytes()), &l);
        let mut n = 0;
        s.for_each_while(|_| {
            n += 1;
            n < 5
        });
        assert_eq!(n, 5);
    }

    #[test]
    fn large_set_random_access_does_not_walk_the_set() {
        // 200k members: a pick or pop that walked the set would make the 100k operations
        // below take hours instead of a moment.
        let l = lim();
        let mut s = SetValue::new();
        for i in 0..200_000u32 {
            s.add(format!("member:{i}").as_bytes(), &l);
        }
        let ints: Vec<String> = (0..512).map(|i| (i * 7).to_string()).collect();
        let small = SetValue::from_members(ints.iter().map(|m| m.as_bytes()), &l);
        let mut r = rng(3);
        let draws = std::cell::Cell::new(0u64);
        let mut counted = || {
            draws.set(draws.get() + 1);
            r()
        };
        for i in 0..50_000u32 {
            assert!(s.random_member(&mut counted).is_some());
            assert!(s.contains(format!("member:{i}").as_bytes()));
        }
        // A hash-table pick draws buckets until a non-empty one (as Redis does; at a load
        // factor of at least a half that is under two draws on average), then one chain
        // entry; an intset pick draws once.
        let table_draws = draws.get();
        assert!(
            (100_000..=200_000).contains(&table_draws),
            "{table_draws} draws"
        );
        for _ in 0..50_000 {
            assert!(small.random_member(&mut counted).is_some());
        }
        assert_eq!(draws.get(), table_draws + 50_000);
        for _ in 0..50_000 {
            assert!(s.pop_random(&mut counted).is_some());
        }
        assert_eq!(s.len(), 150_000);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<u8>),
        Remove(Vec<u8>),
        Pop(u64),
        Reserve(usize),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (-40i64..40).prop_map(|i| i.to_string().into_bytes()),
            prop::sample::select(vec![
                i64::MIN.to_string(),
                i64::MAX.to_string(),
                "70000".to_string(),
                "-3000000000".to_string(),
            ])
            .prop_map(String::into_bytes),
            "[a-e]{1,3}".prop_map(String::into_bytes),
            prop::sample::select(vec!["01", "-0", "+5", "longer-than-six"])
                .prop_map(|s| s.as_bytes().to_vec()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => member().prop_map(Op::Add),
            3 => member().prop_map(Op::Remove),
            1 => any::<u64>().prop_map(Op::Pop),
            1 => (0usize..12).prop_map(Op::Reserve),
        ]
    }

    fn rank(enc: &str) -> u8 {
        match enc {
            "intset" => 0,
            "listpack" => 1,
            _ => 2,
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_hashset(
            ops in prop::collection::vec(op(), 1..150),
            listpack in prop::sample::select(vec![0usize, 3, 6]),
        ) {
            let l = small_lim(listpack);
            let mut s = SetValue::new();
            let mut model: HashSet<Vec<u8>> = HashSet::new();
            for op in ops {
                let before = rank(s.encoding());
                match op {
                    Op::Add(m) => prop_assert_eq!(s.add(&m, &l), model.insert(m.clone())),
                    Op::Remove(m) => prop_assert_eq!(s.remove(&m), model.remove(&m)),
                    Op::Pop(seed) => {
                        let mut r = rng(seed);
                        match s.pop_random(&mut r) {
                            Some(m) => prop_assert!(model.remove(m.as_ref())),
                            None => prop_assert!(model.is_empty()),
                        }
                    }
                    Op::Reserve(n) => s.reserve(n, &l),
                }
                prop_assert!(rank(s.encoding()) >= before, "encodings never shrink");
                prop_assert_eq!(s.len(), model.len());
                let members = s.members();
                let got: HashSet<Vec<u8>> = members.iter().map(|b| b.to_vec()).collect();
                prop_assert_eq!(got.len(), members.len(), "no duplicates");
                prop_assert_eq!(&got, &model);
                match s.encoding() {
                    "intset" => {
                        prop_assert!(s.len() <= 4);
                        let ints: Vec<i64> = members
                            .iter()
                            .map(|b| parse_i64(b).unwrap_or(i64::MIN))
                            .collect();
                        prop_assert!(members.iter().all(|b| parse_i64(b).is_some()));
                        prop_assert!(ints.windows(2).all(|w| w[0] < w[1]), "sorted");
                    }
                    "listpack" => {
                        prop_assert!(listpack > 0 && s.len() <= listpack);
                        prop_assert!(members.iter().all(|b| b.len() <= 6));
                    }
                    _ => {}
                }
                for m in &model {
                    prop_assert!(s.contains(m));
                }
                if let Repr::Table(t) = &s.repr {
                    let bytes: usize = model
                        .iter()
                        .map(Vec::len)
                        .filter(|n| *n > stored::INLINE)
                        .sum();
                    prop_assert_eq!(t.out_of_line_bytes(), bytes, "byte count kept incrementally");
                }
            }
        }
    }
}
