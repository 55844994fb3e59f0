//! The large (`skiplist`) sorted-set encoding, laid out for memory.
//!
//! Every element lives once, in a 32-byte slot of an arena: its score, the link of its
//! hash chain and its member (inline up to [`INLINE`] bytes, else in a separate
//! allocation). Two indexes refer to slots by 4-byte number:
//!
//! * a chained hash table (power-of-two buckets of slot numbers, chains linked through
//!   the slots) answers "member → slot" in O(1) and gives ZSCAN Redis's reverse-binary
//!   cursor, so every member present for a whole scan is returned at least once whatever
//!   resizes happen between calls;
//! * the order-statistic B+tree ([`super::tree`]) keeps slots in `(score, member)` order
//!   and answers ranks in O(log n).
//!
//! A member's hash is not stored; resizes recompute it, as Redis does. Freed slots are
//! reused; when most of the arena is free it is rebuilt compactly. With short members a
//! large sorted set costs about 45 bytes per member (Redis 7.0: about 110).

use super::tree::{Keys, Tree};
use crate::hashing::hash_bytes;
use bytes::Bytes;

/// Longest member stored inside its slot.
pub const INLINE: usize = 19;
/// `Slot::len` of a member stored out of line (its index is in the slot's first bytes).
const LONG: u8 = u8::MAX;
/// No slot (empty bucket, end of chain, empty free list).
const NIL: u32 = u32::MAX;
/// Smallest number of buckets a non-empty table keeps.
const MIN_BUCKETS: usize = 4;
/// Arenas at least this big are compacted when three quarters of their slots are free.
const COMPACT_MIN: usize = 1024;

/// One element: 32 bytes.
#[derive(Clone, Copy)]
struct Slot {
    score: f64,
    /// Next slot in the hash chain, or in the free list for a free slot.
    next: u32,
    /// Member length when inline, else [`LONG`].
    len: u8,
    /// The member (inline), or the little-endian index into `Store::long`.
    buf: [u8; INLINE],
}

/// The arena: slots and out-of-line members.
#[derive(Clone, Default)]
struct Store {
    slots: Vec<Slot>,
    /// Head of the free-slot list.
    free: Option<u32>,
    /// Members longer than [`INLINE`]; freed entries are empty and listed in `long_free`.
    long: Vec<Box<[u8]>>,
    long_free: Vec<u32>,
    /// Bytes held by `long`'s members.
    long_bytes: usize,
}

impl Store {
    fn member(&self, i: u32) -> &[u8] {
        let s = &self.slots[i as usize];
        if s.len == LONG {
            let mut idx = [0u8; 4];
            idx.copy_from_slice(&s.buf[..4]);
            &self.long[u32::from_le_bytes(idx) as usize]
        } else {
            &s.buf[..usize::from(s.len)]
        }
    }

    fn alloc(&mut self, member: &[u8], score: f64) -> u32 {
        let mut slot = Slot {
            score,
            next: NIL,
            len: 0,
            buf: [0; INLINE],
        };
        if member.len() <= INLINE {
            slot.len = member.len() as u8;
            slot.buf[..member.len()].copy_from_slice(member);
        } else {
            let boxed: Box<[u8]> = member.into();
            self.long_bytes += boxed.len();
            let idx = match self.long_free.pop() {
                Some(i) => {
                    self.long[i as usize] = boxed;
                    i
                }
                None => {
                    self.long.push(boxed);
                    // Bounded by the slot count, itself kept below u32::MAX.
                    (self.long.len() - 1) as u32
                }
            };
            slot.len = LONG;
            slot.buf[..4].copy_from_slice(&idx.to_le_bytes());
        }
        match self.free {
            Some(i) => {
                let next = self.slots[i as usize].next;
                self.free = (next != NIL).then_some(next);
                self.slots[i as usize] = slot;
                i
            }
            None => {
                // Slot numbers are u32 with NIL reserved: four billion members is far
                // beyond any memory this server runs with.
                assert!(self.slots.len() < NIL as usize, "sorted set arena full");
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) {
        let s = self.slots[i as usize];
        if s.len == LONG {
            let mut idx = [0u8; 4];
            idx.copy_from_slice(&s.buf[..4]);
            let idx = u32::from_le_bytes(idx);
            let old = std::mem::take(&mut self.long[idx as usize]);
            self.long_bytes -= old.len();
            self.long_free.push(idx);
        }
        let slot = &mut self.slots[i as usize];
        slot.len = 0;
        slot.next = self.free.unwrap_or(NIL);
        self.free = Some(i);
    }
}

impl Keys for Store {
    fn key(&self, i: u32) -> (f64, &[u8]) {
        (self.slots[i as usize].score, self.member(i))
    }
}

/// A large sorted set: arena, hash index and rank tree.
#[derive(Clone, Default)]
pub struct Large {
    store: Store,
    buckets: Vec<u32>,
    len: usize,
    tree: Tree,
}

impl Large {
    /// An empty set.
    pub fn new() -> Large {
        Large::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    fn bucket_of(&self, member: &[u8]) -> usize {
        hash_bytes(member) as usize & self.mask()
    }

    /// The slot holding `member`.
    fn find(&self, member: &[u8]) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut cur = self.buckets[self.bucket_of(member)];
        while cur != NIL {
            if crate::bytecmp::eq(self.store.member(cur), member) {
                return Some(cur);
            }
            cur = self.store.slots[cur as usize].next;
        }
        None
    }

    fn link(&mut self, i: u32) {
        let b = self.bucket_of(self.store.member(i));
        self.store.slots[i as usize].next = self.buckets[b];
        self.buckets[b] = i;
    }

    fn unlink(&mut self, i: u32) {
        let b = self.bucket_of(self.store.member(i));
        let next = self.store.slots[i as usize].next;
        if self.buckets[b] == i {
            self.buckets[b] = next;
            return;
        }
        let mut cur = self.buckets[b];
        while cur != NIL {
            let after = self.store.slots[cur as usize].next;
            if after == i {
                self.store.slots[cur as usize].next = next;
                return;
            }
            cur = after;
        }
        debug_assert!(false, "zset slot {i} not in its chain");
    }

    fn resize(&mut self, size: usize) {
        debug_assert!(size.is_power_of_two());
        let old = std::mem::replace(&mut self.buckets, vec![NIL; size]);
        for head in old {
            let mut cur = head;
            while cur != NIL {
                let next = self.store.slots[cur as usize].next;
                self.link(cur);
                cur = next;
            }
        }
    }

    /// The member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member)
            .map(|i| self.store.slots[i as usize].score)
    }

    /// Adds a member known to be absent.
    pub fn insert_new(&mut self, member: &[u8], score: f64) {
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let i = self.store.alloc(member, score);
        self.link(i);
        self.tree.insert(i, &self.store);
        self.len += 1;
    }

    /// Adds `member` or moves it to `score`; returns true if it was new.
    pub fn upsert(&mut self, member: &[u8], score: f64) -> bool {
        match self.find(member) {
            Some(i) => {
                let old = self.store.slots[i as usize].score;
                if old != score {
                    let removed = self.tree.remove(old, member, &self.store);
                    debug_assert_eq!(removed, Some(i));
                    self.store.slots[i as usize].score = score;
                    self.tree.insert(i, &self.store);
                }
                false
            }
            None => {
                self.insert_new(member, score);
                true
            }
        }
    }

    /// Frees slot `i`, already out of the tree.
    fn drop_slot(&mut self, i: u32) {
        self.unlink(i);
        self.store.release(i);
        self.len -= 1;
    }

    /// After removals: shrink the table, compact a mostly free arena.
    fn after_removals(&mut self) {
        let n = self.buckets.len();
        if n > MIN_BUCKETS && self.len * 8 < n {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
        if self.store.slots.len() >= COMPACT_MIN && self.len * 4 < self.store.slots.len() {
            let mut fresh = Large::new();
            self.walk(0, false, |m, s| {
                fresh.insert_new(m, s);
                true
            });
            *self = fresh;
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let i = self.find(member)?;
        let score = self.store.slots[i as usize].score;
        let removed = self.tree.remove(score, member, &self.store);
        debug_assert_eq!(removed, Some(i));
        self.drop_slot(i);
        self.after_removals();
        Some(score)
    }

    /// Removes and returns the element at ascending rank `r`.
    pub fn remove_at(&mut self, r: usize) -> Option<(Bytes, f64)> {
        let i = self.tree.remove_at(r, &self.store)?;
        let out = (
            Bytes::copy_from_slice(self.store.member(i)),
            self.store.slots[i as usize].score,
        );
        self.drop_slot(i);
        self.after_removals();
        Some(out)
    }

    /// Removes ascending ranks `lo..hi` (within the set).
    pub fn remove_ranks(&mut self, lo: usize, hi: usize) {
        for _ in lo..hi {
            if let Some(i) = self.tree.remove_at(lo, &self.store) {
                self.drop_slot(i);
            }
        }
        self.after_removals();
    }

    /// 0-based ascending rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let i = self.find(member)?;
        self.tree
            .rank(self.store.slots[i as usize].score, member, &self.store)
    }

    /// The element at ascending rank `r`.
    pub fn get(&self, r: usize) -> Option<(&[u8], f64)> {
        let i = self.tree.get(r)?;
        Some((self.store.member(i), self.store.slots[i as usize].score))
    }

    /// Visits elements from ascending rank `start`, up or down, while `f` returns true.
    pub fn walk(&self, start: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        self.tree.walk(start, rev, |i| {
            f(self.store.member(i), self.store.slots[i as usize].score)
        });
    }

    /// Number of leading elements (in order) for which `pred` holds.
    pub fn partition_point(&self, pred: impl FnMut(f64, &[u8]) -> bool) -> usize {
        self.tree.partition_point(&self.store, pred)
    }

    /// One SCAN step over the hash table (see [`super::ZSetValue::scan`]).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cursor = cursor;
        let mut visited = 0usize;
        let mut steps = count.saturating_mul(10).max(1);
        loop {
            let mut cur = self.buckets[(cursor & mask) as usize];
            while cur != NIL {
                f(self.store.member(cur), self.store.slots[cur as usize].score);
                visited += 1;
                cur = self.store.slots[cur as usize].next;
            }
            cursor = crate::dict::next_cursor(cursor, mask);
            steps -= 1;
            if cursor == 0 || steps == 0 || visited.saturating_mul(2) >= count {
                return cursor;
            }
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.store.slots.capacity() * std::mem::size_of::<Slot>()
            + self.store.long.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.store.long_bytes
            + self.store.long_free.capacity() * 4
            + self.buckets.capacity() * 4
            + self.tree.heap_size()
    }

    /// Checks that the hash index, the tree and the arena agree (tests).
    #[cfg(test)]
    pub fn check(&self) {
        self.tree.check(&self.store);
        assert_eq!(self.tree.len(), self.len);
        let mut chained = 0;
        for (b, &head) in self.buckets.iter().enumerate() {
            let mut cur = head;
            while cur != NIL {
                assert_eq!(self.bucket_of(self.store.member(cur)), b);
                chained += 1;
                cur = self.store.slots[cur as usize].next;
            }
        }
        assert_eq!(chained, self.len);
        self.walk(0, false, |m, s| {
            assert_eq!(self.score(m), Some(s));
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn slots_are_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn long_and_short_members_round_trip_and_slots_are_reused() {
        let mut l = Large::new();
        let long = vec![b'x'; 100];
        l.insert_new(b"short", 1.0);
        l.insert_new(&long, 2.0);
        l.insert_new(&[b'y'; INLINE], 3.0);
        l.insert_new(&[b'z'; INLINE + 1], 4.0);
        l.check();
        assert_eq!(l.score(&long), Some(2.0));
        assert_eq!(l.get(1), Some((&long[..], 2.0)));
        assert_eq!(l.remove(&long), Some(2.0));
        assert_eq!(l.score(&long), None);
        let slots = l.store.slots.len();
        l.insert_new(b"again", 5.0);
        l.insert_new(&[b'w'; 50], 6.0);
        // The freed slot and long-member entry were reused.
        assert_eq!(l.store.slots.len(), slots + 1);
        assert_eq!(l.store.long.len(), 2);
        l.check();
        assert_eq!(l.rank(&[b'w'; 50]), Some(4));
    }

    #[test]
    fn compaction_keeps_contents() {
        let mut l = Large::new();
        for i in 0..5000u32 {
            l.insert_new(format!("member-{i}").as_bytes(), f64::from(i));
        }
        l.remove_ranks(0, 4000);
        l.check();
        assert!(l.store.slots.len() < 2000, "arena not compacted");
        assert_eq!(l.len(), 1000);
        assert_eq!(l.get(0), Some((&b"member-4000"[..], 4000.0)));
    }

    #[test]
    fn scan_sees_every_stable_member_across_growth_and_shrink() {
        let mut l = Large::new();
        for i in 0..500 {
            l.insert_new(format!("stable{i}").as_bytes(), 1.0);
        }
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut step = 0;
        loop {
            cursor = l.scan(cursor, 4, |m, _| {
                seen.insert(m.to_vec());
            });
            step += 1;
            if step == 3 {
                for i in 0..5000 {
                    l.insert_new(format!("tmp{i}").as_bytes(), 2.0);
                }
            }
            if step == 40 {
                for i in 0..5000 {
                    l.remove(format!("tmp{i}").as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(format!("stable{i}").as_bytes()), "missed {i}");
        }
    }
}
