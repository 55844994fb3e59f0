//! The hash value type (HSET and friends): a map from field to value with Redis's two
//! encodings.
//!
//! - `listpack`: small hashes live in one byte buffer of length-prefixed entries,
//!   field and value alternating, in insertion order (an update keeps the field's
//!   place). Replies that walk the hash (HGETALL, HKEYS, HSCAN...) come out in that
//!   order, byte for byte as Redis's listpack gives them. Lookups are linear, as in Redis;
//!   the entry-count threshold keeps them short.
//! - `hashtable`: the chained table sets use too (`types/table.rs`), so HSCAN cursors
//!   keep Redis's guarantee (every field present for the whole scan is returned) and
//!   random picks are cheap. A field and its value share one table node when together
//!   at most 37 bytes long (a 48-byte allocation), else one extra allocation.
//!
//! A hash converts from listpack to hashtable when it grows past
//! `hash-max-listpack-entries` fields, or when a field or value longer than
//! `hash-max-listpack-value` bytes is about to be written; it never converts back (Redis
//! only does that when it reloads a dataset). The thresholds are passed in by the caller:
//! the engine reads no configuration.
//!
//! Randomness (HRANDFIELD) is drawn from a generator the caller supplies.

use crate::encoding::EncodingLimits;
use crate::types::table::{self, Entry};
use std::alloc::Layout;
use std::collections::HashSet;
use std::ptr::NonNull;

/// Redis's `lpSafeToAdd` limit: a listpack that would grow past 1 GiB converts instead.
const LISTPACK_SAFETY_SIZE: usize = 1 << 30;

/// A hash value.
#[derive(Clone, Default)]
pub struct HashValue {
    repr: Repr,
}

enum Repr {
    Listpack(Listpack),
    Table(Table),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Listpack(Listpack::default())
    }
}

impl Clone for Repr {
    fn clone(&self) -> Self {
        match self {
            Repr::Listpack(lp) => Repr::Listpack(lp.clone()),
            Repr::Table(t) => {
                let mut copy = Table::default();
                for p in t.iter() {
                    copy.set(p.key(), p.value());
                }
                Repr::Table(copy)
            }
        }
    }
}

impl std::fmt::Debug for HashValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut pairs = Vec::with_capacity(self.len());
        self.for_each(|k, v| {
            pairs.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        f.debug_struct("HashValue")
            .field("encoding", &self.encoding())
            .field("pairs", &pairs)
            .finish()
    }
}

/// Equal contents (encoding and order do not matter).
impl PartialEq for HashValue {
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut same = true;
        self.for_each(|k, v| {
            if same && other.get(k) != Some(v) {
                same = false;
            }
        });
        same
    }
}

impl HashValue {
    /// An empty hash in the listpack encoding.
    pub fn new() -> HashValue {
        HashValue::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.pairs,
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
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.buf.capacity(),
            Repr::Table(t) => t.heap_size(),
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Listpack(lp) => lp.get(field),
            Repr::Table(t) => t.get(field).map(Pair::value),
        }
    }

    /// True if `field` exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Redis's `hashTypeTryConversion`, called by HSET/HMSET/HSETNX before writing: a
    /// listpack hash converts if any of the fields and values about to be written is
    /// longer than `hash-max-listpack-value`, or if they would push the listpack past
    /// its safety size. (Redis 7.0 does not convert early on the number of arguments:
    /// duplicate fields keep a hash small.)
    pub fn prepare_write<A: AsRef<[u8]>>(&mut self, args: &[A], limits: &EncodingLimits) {
        let Repr::Listpack(lp) = &self.repr else {
            return;
        };
        let mut sum = 0usize;
        for a in args {
            let len = a.as_ref().len();
            if len > limits.hash_max_listpack_value {
                self.convert();
                return;
            }
            sum = sum.saturating_add(len);
        }
        if lp.buf.len().saturating_add(sum) > LISTPACK_SAFETY_SIZE {
            self.convert();
        }
    }

    /// Redis's `hashTypeSet`: sets `field` to `value`, converting to the hashtable
    /// encoding when either is too long for a listpack or the listpack grows past its
    /// entry limit. Returns true if the field is new, false if it was updated.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &EncodingLimits) -> bool {
        if let Repr::Listpack(_) = self.repr
            && (field.len() > limits.hash_max_listpack_value
                || value.len() > limits.hash_max_listpack_value)
        {
            self.convert();
        }
        match &mut self.repr {
            Repr::Listpack(lp) => {
                let created = lp.set(field, value);
                if lp.pairs > limits.hash_max_listpack_entries {
                    self.convert();
                }
                created
            }
            Repr::Table(t) => t.set(field, value),
        }
    }

    /// Removes `field`; returns true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(lp) => lp.remove(field),
            Repr::Table(t) => t.remove(field).is_some(),
        }
    }

    /// Visits every field and value: in insertion order for a listpack, in table order
    /// for a hashtable (as Redis iterates them).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        match &self.repr {
            Repr::Listpack(lp) => lp.iter().for_each(|(k, v)| f(k, v)),
            Repr::Table(t) => t.iter().for_each(|p| f(p.key(), p.value())),
        }
    }

    /// One HSCAN step from `cursor`; returns the next cursor (0: done). A listpack hash
    /// is returned whole with cursor 0, whatever the cursor. A hashtable visits buckets
    /// until it produced `count` fields (whole buckets, so possibly a few more), the scan
    /// completes, or `10 * count` further buckets were visited (as Redis 7.0 does).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Listpack(lp) => {
                lp.iter().for_each(|(k, v)| f(k, v));
                0
            }
            Repr::Table(t) => {
                let mut cursor = cursor;
                let mut budget = count.saturating_mul(10);
                let mut emitted = 0usize;
                loop {
                    cursor = t.scan(cursor, |p| {
                        f(p.key(), p.value());
                        emitted += 1;
                    });
                    if cursor == 0 || budget == 0 || emitted >= count {
                        return cursor;
                    }
                    budget -= 1;
                }
            }
        }
    }

    /// A random field and its value (None when empty). `rng` yields uniform 64-bit values.
    pub fn random_pair(&self, rng: &mut impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Listpack(lp) => {
                if lp.pairs == 0 {
                    return None;
                }
                let i = (rng() % lp.pairs as u64) as usize;
                lp.iter().nth(i)
            }
            Repr::Table(t) => t.random_pair(rng),
        }
    }

    /// `count` random fields with their values, drawn independently (the same field may
    /// come more than once): HRANDFIELD with a negative count. Empty when the hash is.
    pub fn random_pairs(&self, count: usize, rng: &mut impl FnMut() -> u64) -> Vec<(&[u8], &[u8])> {
        if self.is_empty() {
            return Vec::new();
        }
        match &self.repr {
            Repr::Listpack(lp) => {
                // Index the pairs once so each draw is O(1).
                let all: Vec<(&[u8], &[u8])> = lp.iter().collect();
                (0..count)
                    .map(|_| all[(rng() % all.len() as u64) as usize])
                    .collect()
            }
            Repr::Table(t) => (0..count).filter_map(|_| t.random_pair(rng)).collect(),
        }
    }

    /// Up to `count` distinct random fields with their values: HRANDFIELD with a positive
    /// count. When `count` covers the whole hash, every field in iteration order; a
    /// listpack gives its sample in listpack order (as Redis does); a hashtable either
    /// drops random fields from a full copy (when the sample is more than a third of the
    /// hash) or draws until it has `count` distinct ones.
    pub fn random_unique(
        &self,
        count: usize,
        rng: &mut impl FnMut() -> u64,
    ) -> Vec<(&[u8], &[u8])> {
        let size = self.len();
        if count >= size {
            let mut all = Vec::with_capacity(size);
            self.collect_into(&mut all);
            return all;
        }
        match &self.repr {
            Repr::Listpack(lp) => {
                // Selection sampling (Knuth's algorithm S): each pair is kept with
                // probability needed / remaining, which yields exactly `count` pairs.
                let mut out = Vec::with_capacity(count);
                let mut remaining = size as u64;
                for pair in lp.iter() {
                    let needed = (count - out.len()) as u64;
                    if needed == 0 {
                        break;
                    }
                    if rng() % remaining < needed {
                        out.push(pair);
                    }
                    remaining -= 1;
                }
                out
            }
            Repr::Table(t) => {
                if count.saturating_mul(3) > size {
                    let mut all = Vec::with_capacity(size);
                    self.collect_into(&mut all);
                    while all.len() > count {
                        let i = (rng() % all.len() as u64) as usize;
                        all.swap_remove(i);
                    }
                    all
                } else {
                    let mut seen: HashSet<&[u8], foldhash::fast::FixedState> =
                        HashSet::with_capacity_and_hasher(count, Default::default());
                    let mut out = Vec::with_capacity(count);
                    while out.len() < count {
                        let Some((k, v)) = t.random_pair(rng) else {
                            break;
                        };
                        if seen.insert(k) {
                            out.push((k, v));
                        }
                    }
                    out
                }
            }
        }
    }

    fn collect_into<'a>(&'a self, out: &mut Vec<(&'a [u8], &'a [u8])>) {
        match &self.repr {
            Repr::Listpack(lp) => out.extend(lp.iter()),
            Repr::Table(t) => out.extend(t.iter().map(|p| (p.key(), p.value()))),
        }
    }

    /// Converts a listpack into a hashtable (no-op if it already is one).
    fn convert(&mut self) {
        let Repr::Listpack(lp) = &self.repr else {
            return;
        };
        let mut t = Table::default();
        for (k, v) in lp.iter() {
            t.set(k, v);
        }
        self.repr = Repr::Table(t);
    }
}

/// The compact encoding: `[len][field][len][value]...`, lengths as LEB128 varints.
#[derive(Clone, Default)]
struct Listpack {
    buf: Vec<u8>,
    pairs: usize,
}

/// Where a pair sits in the buffer.
struct Slot {
    /// First byte of the field's length prefix.
    start: usize,
    /// First byte of the value's length prefix.
    value: usize,
    /// One past the value's last byte.
    end: usize,
}

fn push_entry(out: &mut Vec<u8>, data: &[u8]) {
    let mut n = data.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(data);
}

/// Reads the entry at `pos`: its bytes and the position after it. The buffer is only
/// ever written by `push_entry`, so it is well formed.
fn read_entry(buf: &[u8], mut pos: usize) -> (&[u8], usize) {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = buf[pos];
        pos += 1;
        len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (&buf[pos..pos + len], pos + len)
}

struct LpIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (k, p) = read_entry(self.buf, self.pos);
        let (v, p) = read_entry(self.buf, p);
        self.pos = p;
        Some((k, v))
    }
}

impl Listpack {
    fn iter(&self) -> LpIter<'_> {
        LpIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, field: &[u8]) -> Option<Slot> {
        let mut pos = 0;
        while pos < self.buf.len() {
            let (k, value) = read_entry(&self.buf, pos);
            let (_, end) = read_entry(&self.buf, value);
            if crate::bytecmp::eq(k, field) {
                return Some(Slot {
                    start: pos,
                    value,
                    end,
                });
            }
            pos = end;
        }
        None
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.find(field).map(|s| read_entry(&self.buf, s.value).0)
    }

    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.find(field) {
            Some(slot) => {
                let mut enc = Vec::with_capacity(value.len() + 2);
                push_entry(&mut enc, value);
                self.buf.splice(slot.value..slot.end, enc);
                false
            }
            None => {
                // Grow to fit, not by doubling: a listpack is sized like Redis's (which
                // reallocates on every insert), and hashes are often many and small.
                // Ten bytes per entry cover the longest varint length prefix.
                self.buf.reserve_exact(field.len() + value.len() + 20);
                push_entry(&mut self.buf, field);
                push_entry(&mut self.buf, value);
                self.pairs += 1;
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        let Some(slot) = self.find(field) else {
            return false;
        };
        self.buf.drain(slot.start..slot.end);
        self.pairs -= 1;
        // Give memory back when a hash shrank a lot.
        if self.buf.capacity() > 64 && self.buf.capacity() > self.buf.len() * 4 {
            self.buf.shrink_to(self.buf.len() * 2);
        }
        true
    }
}

/// A field and its value as the `hashtable` encoding stores them: one block that is also
/// the table's chain node, `[next link 8 | field length 4 | value length 4 | field |
/// value]` (lengths of 4 GiB and over: a marker, then both as 8 bytes at 16 and 24, the
/// bytes at 32), allocated at its size. A lookup reads the bucket, then the node, whose
/// first cache line holds the link, the lengths and the field's start, and the value
/// right after it: two dependent cache misses where a node pointing at its pair took
/// three (bucket, node, pair) and Redis's dictEntry four (bucket, entry, field, value).
#[repr(transparent)]
struct Pair(NonNull<u8>);

// The header puts the link in the first 8 bytes: `Option<Pair>` must be one pointer.
const _: () =
    assert!(std::mem::size_of::<Option<Pair>>() == 8 && std::mem::align_of::<Option<Pair>>() == 8);

// SAFETY: a `Pair` owns its block alone, as a `Box` owns its value; nothing in it is
// shared or tied to a thread.
unsafe impl Send for Pair {}
// SAFETY: as above; `&Pair` only reads.
unsafe impl Sync for Pair {}

/// Header bytes before the field: link and two `u32` lengths.
const SHORT_HEADER: usize = 16;
/// Header bytes with 8-byte lengths.
const LONG_HEADER: usize = 32;
/// The field length that says the lengths are 8 bytes each, at 16 and 24.
const LONG: u32 = u32::MAX;

impl Pair {
    fn header(flen: usize, vlen: usize) -> usize {
        if flen >= LONG as usize || vlen >= LONG as usize {
            LONG_HEADER
        } else {
            SHORT_HEADER
        }
    }

    fn layout(header: usize, flen: usize, vlen: usize) -> Layout {
        Layout::from_size_align(header + flen + vlen, 8).expect("hash pair size")
    }

    fn new(field: &[u8], value: &[u8]) -> Pair {
        Pair::build(field, value, Pair::header(field.len(), value.len()))
    }

    /// A pair with the given header layout (`new` picks it; tests force the long one).
    fn build(field: &[u8], value: &[u8], header: usize) -> Pair {
        let (f, v) = (field.len(), value.len());
        let layout = Pair::layout(header, f, v);
        // SAFETY: the layout's size is at least the header's, never zero.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(p) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: a fresh 8-aligned block of `header + f + v` bytes: the link at 0, the
        // lengths at 8.. (and 16.., 24.. with the long header), the bytes after.
        unsafe {
            let b = p.as_ptr();
            b.cast::<Option<Pair>>().write(None);
            if header == SHORT_HEADER {
                b.add(8).cast::<u32>().write(f as u32);
                b.add(12).cast::<u32>().write(v as u32);
            } else {
                b.add(8).cast::<u32>().write(LONG);
                b.add(16).cast::<u64>().write(f as u64);
                b.add(24).cast::<u64>().write(v as u64);
            }
            let data = b.add(header);
            std::ptr::copy_nonoverlapping(field.as_ptr(), data, f);
            std::ptr::copy_nonoverlapping(value.as_ptr(), data.add(f), v);
        }
        Pair(p)
    }

    /// Header size, field length, value length.
    fn dims(&self) -> (usize, usize, usize) {
        let b = self.0.as_ptr();
        // SAFETY: `new` wrote the lengths where they are read, per the marker.
        unsafe {
            let f = b.add(8).cast::<u32>().read();
            if f != LONG {
                (
                    SHORT_HEADER,
                    f as usize,
                    b.add(12).cast::<u32>().read() as usize,
                )
            } else {
                (
                    LONG_HEADER,
                    b.add(16).cast::<u64>().read() as usize,
                    b.add(24).cast::<u64>().read() as usize,
                )
            }
        }
    }

    /// `len` bytes of the block from `at`.
    fn slice(&self, at: usize, len: usize) -> &[u8] {
        // SAFETY: callers pass ranges inside the field and value bytes, which `new`
        // initialised; the block lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(at), len) }
    }

    fn value(&self) -> &[u8] {
        let (h, f, v) = self.dims();
        self.slice(h + f, v)
    }

    /// Replaces the value: in place when it has the old one's length (most HINCRBY
    /// results), else in a new block of the new size.
    fn set_value(&mut self, value: &[u8]) {
        let (h, f, v) = self.dims();
        if v == value.len() {
            // SAFETY: the value's bytes, inside the block, which `&mut self` owns.
            unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), self.0.as_ptr().add(h + f), v) };
            return;
        }
        // The table holds the link aside while an update runs (`Chains::upsert`), so the
        // old block goes with an empty link.
        *self = Pair::new(self.slice(h, f), value);
    }

    fn link(&self) -> &Option<Pair> {
        // SAFETY: the block starts with the link, written by `new`, 8-aligned.
        unsafe { &*self.0.as_ptr().cast::<Option<Pair>>() }
    }

    fn link_mut(&mut self) -> &mut Option<Pair> {
        // SAFETY: as in `link`; `&mut self` owns the block.
        unsafe { &mut *self.0.as_ptr().cast::<Option<Pair>>() }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        debug_assert!(self.link().is_none(), "a pair dropped with its chain");
        let (h, f, v) = self.dims();
        // SAFETY: the link is a live `Option<Pair>` (tables take chains apart before
        // dropping nodes, so it is `None` and nothing recurses), and the block was
        // allocated by `new` with this layout.
        unsafe {
            std::ptr::drop_in_place(self.0.as_ptr().cast::<Option<Pair>>());
            std::alloc::dealloc(self.0.as_ptr(), Pair::layout(h, f, v));
        }
    }
}

// `is_key` is the trait's `bytecmp::eq(key(), k)`: the field is in the node's first cache
// line, so a fingerprint would save no miss.
impl Entry for Pair {
    /// The field.
    fn key(&self) -> &[u8] {
        let (h, f, _) = self.dims();
        self.slice(h, f)
    }

    fn heap_len(&self) -> usize {
        0
    }
}

impl table::Chained for Pair {
    type Entry = Pair;
    fn wrap(e: Pair) -> Pair {
        e
    }
    fn into_entry(self) -> Pair {
        self
    }
    fn entry(&self) -> &Pair {
        self
    }
    fn entry_mut(&mut self) -> &mut Pair {
        self
    }
    fn next(&self) -> Option<&Pair> {
        self.link().as_ref()
    }
    fn next_mut(&mut self) -> &mut Option<Pair> {
        self.link_mut()
    }
    fn block_bytes(&self) -> usize {
        let (h, f, v) = self.dims();
        crate::memory::alloc_size(h + f + v)
    }
}

/// The large encoding: the shared chained table (`types/table.rs`) of [`Pair`]s.
type Table = table::Chains<Pair>;

impl Table {
    /// Sets `field` to `value`; true if the field is new.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.upsert(field, |p| p.set_value(value), || Pair::new(field, value))
    }

    /// A random pair, picked as Redis's `dictGetRandomKey` does.
    fn random_pair(&self, rng: &mut impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        self.random(rng).map(|p| (p.key(), p.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn limits(entries: usize, value: usize) -> EncodingLimits {
        EncodingLimits {
            hash_max_listpack_entries: entries,
            hash_max_listpack_value: value,
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

    fn pairs(h: &HashValue) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = Vec::new();
        h.for_each(|k, val| v.push((k.to_vec(), val.to_vec())));
        v
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let l = EncodingLimits::default();
        let mut h = HashValue::new();
        assert!(h.set(b"b", b"1", &l));
        assert!(h.set(b"a", b"2", &l));
        assert!(h.set(b"c", b"3", &l));
        assert!(!h.set(b"a", b"a much longer value than before", &l));
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(
            pairs(&h),
            vec![
                (b"b".to_vec(), b"1".to_vec()),
                (b"a".to_vec(), b"a much longer value than before".to_vec()),
                (b"c".to_vec(), b"3".to_vec()),
            ]
        );
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.get(b"a"), Some(&b"a much longer value than before"[..]));
        assert_eq!(h.get(b"b"), None);
        assert_eq!(h.len(), 2);
        assert!(h.remove(b"a") && h.remove(b"c"));
        assert!(h.is_empty());
    }

    #[test]
    fn long_entries_survive_varint_lengths() {
        let l = limits(512, 100_000);
        let mut h = HashValue::new();
        let big = vec![b'x'; 70_000];
        h.set(b"f", &big, &l);
        h.set(&big, b"v", &l);
        h.set(b"", b"", &l);
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.get(b"f"), Some(&big[..]));
        assert_eq!(h.get(&big), Some(&b"v"[..]));
        assert_eq!(h.get(b""), Some(&b""[..]));
    }

    #[test]
    fn converts_at_the_thresholds_and_never_back() {
        let l = limits(3, 5);
        let mut h = HashValue::new();
        for f in [b"a", b"b", b"c"] {
            h.set(f, b"v", &l);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"d", b"v", &l);
        assert_eq!(h.encoding(), "hashtable");
        for f in [b"a", b"b", b"c"] {
            h.remove(f);
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 1);

        let mut h = HashValue::new();
        h.set(b"f", b"12345", &l);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f", b"123456", &l);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"123456"[..]));

        let mut h = HashValue::new();
        h.set(b"f", b"v", &l);
        h.prepare_write(&[&b"f"[..], b"123456"], &l);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"v"[..]));
    }

    #[test]
    fn zero_entry_limit_means_always_hashtable() {
        let mut h = HashValue::new();
        h.set(b"f", b"v", &limits(0, 64));
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn scan_of_a_table_returns_every_field() {
        let l = limits(4, 64);
        let mut h = HashValue::new();
        for i in 0..1000 {
            h.set(format!("f{i}").as_bytes(), format!("{i}").as_bytes(), &l);
        }
        let mut seen = BTreeMap::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let mut step = 0;
            cursor = h.scan(cursor, 10, |k, v| {
                seen.insert(k.to_vec(), v.to_vec());
                step += 1;
            });
            calls += 1;
            // COUNT counts fields, as in Redis 7.0 (a dense table reaches it every time).
            assert!(
                cursor == 0 || (10..20).contains(&step),
                "step of {step} fields"
            );
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
        assert!(calls > 10, "a table scan is incremental ({calls} calls)");
        assert_eq!(seen.get(&b"f7"[..]), Some(&b"7".to_vec()));
    }

    #[test]
    fn scan_of_a_listpack_is_whole_with_cursor_zero() {
        let l = EncodingLimits::default();
        let mut h = HashValue::new();
        h.set(b"x", b"1", &l);
        h.set(b"y", b"2", &l);
        let mut n = 0;
        assert_eq!(h.scan(12345, 1, |_, _| n += 1), 0);
        assert_eq!(n, 2);
    }

    #[test]
    fn random_picks_cover_the_hash() {
        for entries in [512, 0] {
            let l = limits(entries, 64);
            let mut h = HashValue::new();
            for i in 0..50 {
                h.set(format!("f{i}").as_bytes(), b"v", &l);
            }
            let mut r = rng(42);
            let mut seen = HashSet::new();
            for _ in 0..2000 {
                let (k, v) = h.random_pair(&mut r).expect("non-empty");
                assert_eq!(v, b"v");
                seen.insert(k.to_vec());
            }
            assert_eq!(seen.len(), 50, "{}", h.encoding());
            let many = h.random_pairs(300, &mut r);
            assert_eq!(many.len(), 300);
            for count in [0, 1, 10, 17, 30, 49, 50, 80] {
                let got = h.random_unique(count, &mut r);
                assert_eq!(got.len(), count.min(50), "{} {count}", h.encoding());
                let distinct: HashSet<&[u8]> = got.iter().map(|p| p.0).collect();
                assert_eq!(distinct.len(), got.len());
                assert!(got.iter().all(|(k, _)| h.contains(k)));
            }
        }
        assert!(HashValue::new().random_pair(&mut rng(1)).is_none());
        assert!(HashValue::new().random_pairs(5, &mut rng(1)).is_empty());
    }

    #[test]
    fn listpack_unique_sample_keeps_listpack_order() {
        let l = EncodingLimits::default();
        let mut h = HashValue::new();
        for i in 0..20u8 {
            h.set(&[b'a' + i], b"v", &l);
        }
        let got = h.random_unique(7, &mut rng(9));
        let keys: Vec<&[u8]> = got.iter().map(|p| p.0).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn clone_and_eq_ignore_encoding() {
        let mut a = HashValue::new();
        let mut b = HashValue::new();
        a.set(b"x", b"1", &limits(512, 64));
        a.set(b"y", b"2", &limits(512, 64));
        b.set(b"y", b"2", &limits(0, 64));
        b.set(b"x", b"1", &limits(0, 64));
        assert_eq!(a, b);
        assert_eq!(b.clone(), a);
        assert_eq!(b.clone().encoding(), "hashtable");
        b.set(b"x", b"3", &limits(0, 64));
        assert_ne!(a, b);
        assert!(format!("{b:?}").contains("hashtable"));
    }

    /// A million fields: every operation stays O(1) (one HSCAN step visits a handful of
    /// buckets, not the table), checked by counting what each step returns.
    #[test]
    fn a_million_fields_stay_cheap_per_operation() {
        let l = EncodingLimits::default();
        let mut h = HashValue::new();
        for i in 0..1_000_000u32 {
            h.set(&i.to_le_bytes(), b"v", &l);
        }
        assert_eq!(h.len(), 1_000_000);
        assert_eq!(h.encoding(), "hashtable");
        let mut cursor = 0;
        for _ in 0..100 {
            let mut n = 0;
            cursor = h.scan(cursor, 10, |_, _| n += 1);
            assert!(n <= 40, "one scan step returned {n} fields");
            assert_ne!(cursor, 0);
        }
        let mut r = rng(5);
        assert_eq!(h.random_unique(5, &mut r).len(), 5);
        assert!(h.remove(&7u32.to_le_bytes()));
        assert_eq!(h.get(&8u32.to_le_bytes()), Some(&b"v"[..]));
        assert!(h.heap_size() > 1_000_000 * 10);
    }

    #[test]
    fn heap_size_tracks_contents() {
        let l = limits(2, 64);
        let mut h = HashValue::new();
        h.set(b"a", &[b'x'; 40], &l);
        let small = h.heap_size();
        assert!(small >= 42);
        h.set(b"b", b"1", &l);
        h.set(b"c", b"1", &l);
        assert_eq!(h.encoding(), "hashtable");
        let before = h.heap_size();
        h.set(b"a", &[b'x'; 4000], &l);
        assert!(h.heap_size() >= before + 3960);
        h.remove(b"a");
        assert!(h.heap_size() < before);
    }

    /// Each pair is one block of its size (link, lengths, field, value), kept in place
    /// by a same-length update and moved, links kept, by any other; the table's byte
    /// count follows every change.
    #[test]
    fn pairs_are_one_block_of_their_size() {
        use crate::memory::alloc_size;
        let mut t = Table::default();
        let block = |f: usize, v: usize| alloc_size(SHORT_HEADER + f + v);
        // member:%08d + v%08d, a benchmark's shape: 15 + 9 bytes and the 16-byte header: 40, the 48-byte class.
        assert!(t.set(b"member:00000001", b"v00000001"));
        assert_eq!(t.block_bytes(), block(15, 9));
        assert_eq!(t.out_of_line_bytes(), 0);
        let f = vec![b'f'; 20];
        assert!(t.set(&f, &[b'v'; 64]));
        let at = |t: &Table, k: &[u8]| t.get(k).map(|p| p.0.as_ptr().addr());
        let first = at(&t, &f);
        assert_eq!(t.block_bytes(), block(15, 9) + block(20, 64));
        // A same-length value is written in place.
        assert!(!t.set(&f, &[b'z'; 64]));
        assert_eq!(at(&t, &f), first);
        assert_eq!(t.get(&f).map(Pair::value), Some(&[b'z'; 64][..]));
        // Another length moves the pair to a block of the new size.
        assert!(!t.set(&f, b"1"));
        assert_eq!(t.get(&f).map(Pair::value), Some(&b"1"[..]));
        assert_eq!(t.block_bytes(), block(15, 9) + block(20, 1));
        // A long field with an empty value, an empty field with a long value.
        let long = vec![b'k'; 300];
        assert!(t.set(&long, b""));
        assert!(t.set(b"", &long));
        assert_eq!(t.get(&long).map(Pair::value), Some(&b""[..]));
        assert_eq!(t.get(b"").map(Pair::value), Some(&long[..]));
        assert!(t.remove(&long).is_some());
        assert_eq!(t.len(), 3);
        assert_eq!(t.block_bytes(), block(15, 9) + block(20, 1) + block(0, 300));
        assert_eq!(t.out_of_line_bytes(), 0);
    }

    /// Pairs that share chains (a table of 4 buckets holding up to 4 pairs, then grown)
    /// keep their links through moves to new blocks and removals in any position.
    #[test]
    fn chained_pairs_survive_moves_and_removals() {
        let mut t = Table::default();
        let key = |i: usize| format!("field-{i}").into_bytes();
        for round in 0..3 {
            for i in 0..200 {
                // Alternate lengths so every round moves every pair to a new block.
                let v = vec![b'a' + (i % 26) as u8; 1 + (i + round) % 90];
                t.set(&key(i), &v);
            }
            for i in 0..200 {
                let v = vec![b'a' + (i % 26) as u8; 1 + (i + round) % 90];
                assert_eq!(t.get(&key(i)).map(Pair::value), Some(&v[..]), "{round} {i}");
            }
        }
        for i in (0..200).step_by(3) {
            assert!(t.remove(&key(i)).is_some());
        }
        assert_eq!(t.len(), 133);
        assert_eq!(t.iter().count(), 133);
        for i in 0..200 {
            assert_eq!(t.get(&key(i)).is_some(), i % 3 != 0);
        }
    }

    /// Lengths past `u32` take the long header (picked without allocating 4 GiB; a pair
    /// built with it reads back and updates like any other).
    #[test]
    fn long_lengths_take_the_long_header() {
        assert_eq!(Pair::header(10, 10), SHORT_HEADER);
        assert_eq!(Pair::header(u32::MAX as usize - 1, 0), SHORT_HEADER);
        assert_eq!(Pair::header(u32::MAX as usize, 0), LONG_HEADER);
        assert_eq!(Pair::header(0, 1 << 33), LONG_HEADER);
        let mut p = Pair::build(b"field", b"value", LONG_HEADER);
        assert_eq!(p.dims(), (LONG_HEADER, 5, 5));
        assert_eq!((p.key(), p.value()), (&b"field"[..], &b"value"[..]));
        p.set_value(b"VALUE");
        assert_eq!(p.value(), b"VALUE");
        // A new length rebuilds it with the header its lengths need.
        p.set_value(b"longer value");
        assert_eq!(p.dims(), (SHORT_HEADER, 5, 12));
        assert_eq!((p.key(), p.value()), (&b"field"[..], &b"longer value"[..]));
    }

    #[test]
    fn counters_update_in_place() {
        // HINCRBY's path: get, parse, set the new digits.
        let l = limits(0, 64);
        let mut h = HashValue::new();
        for i in 0..1000i64 {
            let cur = h
                .get(b"n")
                .map_or(0, |v| crate::num::parse_i64(v).unwrap_or(0));
            h.set(b"n", itoa::Buffer::new().format(cur + i).as_bytes(), &l);
        }
        assert_eq!(h.get(b"n"), Some(&b"499500"[..]));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, usize),
        Prepare(Vec<usize>),
        Remove(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0u8..24, 0usize..10).prop_map(|(f, l)| Op::Set(f, l)),
            // Values of many lengths (fields are 1 to 3 bytes long).
            2 => (0u8..24, 30usize..40).prop_map(|(f, l)| Op::Set(f, l)),
            1 => proptest::collection::vec(0usize..10, 0..4).prop_map(Op::Prepare),
            3 => (0u8..24).prop_map(Op::Remove),
        ]
    }

    proptest::proptest! {
        /// Against a model: an insertion-ordered Vec of pairs (the listpack order) and a
        /// flag predicting the conversion.
        #[test]
        fn behaves_like_an_ordered_map(
            ops in proptest::collection::vec(op(), 1..300),
            entries in 0usize..12,
            value in 3usize..9,
        ) {
            let l = limits(entries, value);
            let mut h = HashValue::new();
            let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut table = false;
            for (step, o) in ops.into_iter().enumerate() {
                match o {
                    Op::Set(f, len) => {
                        let field = vec![b'a' + f % 26; 1 + usize::from(f / 8)];
                        let val: Vec<u8> = (0..len).map(|i| b'0' + ((step + i) % 10) as u8).collect();
                        let created = h.set(&field, &val, &l);
                        let pos = model.iter().position(|(k, _)| *k == field);
                        proptest::prop_assert_eq!(created, pos.is_none());
                        if field.len() > value || val.len() > value {
                            table = true;
                        }
                        match pos {
                            Some(p) => model[p].1 = val,
                            None => model.push((field, val)),
                        }
                        if model.len() > entries {
                            table = true;
                        }
                    }
                    Op::Prepare(lens) => {
                        let args: Vec<Vec<u8>> = lens.iter().map(|&n| vec![b'z'; n]).collect();
                        h.prepare_write(&args, &l);
                        if lens.iter().any(|&n| n > value) {
                            table = true;
                        }
                    }
                    Op::Remove(f) => {
                        let field = vec![b'a' + f % 26; 1 + usize::from(f / 8)];
                        let pos = model.iter().position(|(k, _)| *k == field);
                        proptest::prop_assert_eq!(h.remove(&field), pos.is_some());
                        if let Some(p) = pos {
                            model.remove(p);
                        }
                    }
                }
                proptest::prop_assert_eq!(h.len(), model.len());
                proptest::prop_assert_eq!(h.encoding(), if table { "hashtable" } else { "listpack" });
                for (k, v) in &model {
                    proptest::prop_assert_eq!(h.get(k), Some(&v[..]));
                }
                let got = pairs(&h);
                if table {
                    let a: BTreeMap<_, _> = got.into_iter().collect();
                    let b: BTreeMap<_, _> = model.iter().cloned().collect();
                    proptest::prop_assert_eq!(a, b);
                } else {
                    proptest::prop_assert_eq!(&got, &model);
                }
            }
        }
    }
}
