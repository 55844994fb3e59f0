//! The chained hash table behind `hashtable`-encoded sets and hashes, laid out for memory.
//!
//! It follows the keyspace's [`crate::dict::Dict`] design (power-of-two buckets of chains,
//! Redis's reverse-binary SCAN cursor, random bucket then random chain entry) because
//! SSCAN and HSCAN must keep Redis's guarantee: every element present for the whole
//! iteration is returned at least once, whatever resizes happen between calls. What
//! differs is the node: one allocation holding the chain link and the entry itself. The
//! table is generic over the node ([`Chained`]): [`Table`] boxes a fixed-size entry (a set
//! member, inline in the node when short, in one more allocation when not), and the hash
//! encoding has a node of its own that holds field and value in one block of their size.
//! The element's hash is not stored; resizes recompute it, as Redis does. That keeps a
//! large set or hash of short elements well below Redis's bytes per element.

use crate::hashing::hash_bytes;
use crate::memory::alloc_size;

/// Smallest number of buckets a non-empty table keeps.
const MIN_BUCKETS: usize = 4;

/// Random buckets tried before falling back to a probing pick: an almost empty table
/// (after many deletions, before it shrinks) could otherwise take long to hit a
/// non-empty bucket.
const RANDOM_BUCKET_TRIES: usize = 100;

/// What a table stores: something with a key.
pub trait Entry {
    /// The bytes the entry is found by (a set member, a hash field).
    fn key(&self) -> &[u8];
    /// Bytes the entry holds outside its node (0 when everything is inline).
    fn heap_len(&self) -> usize;
    /// Whether the entry's key is `k`, whose hash is `hash`. An entry that keeps its key
    /// outside its node (a long set member) can keep a fragment of the hash inside it and
    /// answer `false` without reading the key (a chain neighbour then costs no cache
    /// miss).
    fn is_key(&self, k: &[u8], hash: u64) -> bool {
        let _ = hash;
        crate::bytecmp::eq(self.key(), k)
    }
}

/// An owned chain node: an entry and the link to the next node of its chain.
pub trait Chained: Sized {
    /// What the node holds.
    type Entry: Entry;
    /// A node holding `e`, linked to nothing.
    fn wrap(e: Self::Entry) -> Self;
    /// The entry of a node taken out of its chain (its link is `None`).
    fn into_entry(self) -> Self::Entry;
    /// The entry.
    fn entry(&self) -> &Self::Entry;
    /// The entry, to change what it holds (never its key). It may replace the node
    /// itself (a new block for a new size): [`Chains::upsert`] holds the link aside
    /// meanwhile and puts it back on whatever node is left.
    fn entry_mut(&mut self) -> &mut Self::Entry;
    /// The next node of the chain.
    fn next(&self) -> Option<&Self>;
    /// The link to the next node.
    fn next_mut(&mut self) -> &mut Option<Self>;
    /// Bytes of the node's own block, as the allocator rounds them.
    fn block_bytes(&self) -> usize;
}

/// The node of a [`Table`]: a boxed link and entry.
pub struct Node<E> {
    next: Option<Box<Node<E>>>,
    entry: E,
}

impl<E: Entry> Chained for Box<Node<E>> {
    type Entry = E;
    fn wrap(entry: E) -> Self {
        Box::new(Node { next: None, entry })
    }
    fn into_entry(self) -> E {
        self.entry
    }
    fn entry(&self) -> &E {
        &self.entry
    }
    fn entry_mut(&mut self) -> &mut E {
        &mut self.entry
    }
    fn next(&self) -> Option<&Self> {
        self.next.as_ref()
    }
    fn next_mut(&mut self) -> &mut Option<Self> {
        &mut self.next
    }
    fn block_bytes(&self) -> usize {
        alloc_size(std::mem::size_of::<Node<E>>())
    }
}

/// A set of entries keyed by byte strings, with stable-cursor scanning and random
/// sampling, over nodes of type `N`.
pub struct Chains<N: Chained> {
    buckets: Vec<Option<N>>,
    len: usize,
    /// Bytes of entries stored outside their nodes.
    heap: usize,
    /// Bytes of the nodes' blocks.
    blocks: usize,
}

/// The table of boxed fixed-size entries (sets).
pub type Table<E> = Chains<Box<Node<E>>>;

impl<N: Chained> Default for Chains<N> {
    fn default() -> Self {
        Chains {
            buckets: Vec::new(),
            len: 0,
            heap: 0,
            blocks: 0,
        }
    }
}

impl<N: Chained> Chains<N> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// The entry with key `k`.
    pub fn get(&self, k: &[u8]) -> Option<&N::Entry> {
        if self.buckets.is_empty() {
            return None;
        }
        let h = hash_bytes(k);
        let mut cur = self.buckets[h as usize & self.mask()].as_ref();
        while let Some(node) = cur {
            if node.entry().is_key(k, h) {
                return Some(node.entry());
            }
            cur = node.next();
        }
        None
    }

    /// True if an entry has key `k`.
    pub fn contains(&self, k: &[u8]) -> bool {
        self.get(k).is_some()
    }

    /// Finds the entry with key `k` and runs `update` on it, or adds the entry `create`
    /// makes: one hash and one chain walk either way. Returns true if the entry is new.
    /// `update` may change what the entry holds but not its key.
    pub fn upsert(
        &mut self,
        k: &[u8],
        update: impl FnOnce(&mut N::Entry),
        create: impl FnOnce() -> N::Entry,
    ) -> bool {
        let hash = hash_bytes(k);
        let h = hash as usize;
        if !self.buckets.is_empty() {
            let idx = h & self.mask();
            let mut cur = self.buckets[idx].as_mut();
            while let Some(node) = cur {
                if node.entry().is_key(k, hash) {
                    let before = (node.entry().heap_len(), node.block_bytes());
                    // The rest of the chain is held aside: an update that replaces the
                    // node (a new block for a new size) cannot take it along or drop it.
                    let rest = node.next_mut().take();
                    update(node.entry_mut());
                    *node.next_mut() = rest;
                    debug_assert!(node.entry().key() == k, "update changed the key");
                    self.heap = self.heap - before.0 + node.entry().heap_len();
                    self.blocks = self.blocks - before.1 + node.block_bytes();
                    return false;
                }
                cur = node.next_mut().as_mut();
            }
        }
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let mut node = N::wrap(create());
        debug_assert!(node.entry().key() == k, "created entry has another key");
        self.heap += node.entry().heap_len();
        self.blocks += node.block_bytes();
        let idx = h & self.mask();
        *node.next_mut() = self.buckets[idx].take();
        self.buckets[idx] = Some(node);
        self.len += 1;
        true
    }

    /// Removes and returns the entry with key `k`.
    pub fn remove(&mut self, k: &[u8]) -> Option<N::Entry> {
        if self.buckets.is_empty() {
            return None;
        }
        let hash = hash_bytes(k);
        let idx = hash as usize & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(node) if node.entry().is_key(k, hash) => {
                    let mut node = link.take()?;
                    *link = node.next_mut().take();
                    self.heap -= node.entry().heap_len();
                    self.blocks -= node.block_bytes();
                    self.len -= 1;
                    self.maybe_shrink();
                    return Some(node.into_entry());
                }
                Some(node) => link = node.next_mut(),
            }
        }
    }

    fn maybe_shrink(&mut self) {
        let n = self.buckets.len();
        if n > MIN_BUCKETS && self.len * 8 < n {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, new_size: usize) {
        debug_assert!(new_size.is_power_of_two());
        let mut fresh: Vec<Option<N>> = Vec::with_capacity(new_size);
        fresh.resize_with(new_size, || None);
        let mask = new_size - 1;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next_mut().take();
                let idx = hash_bytes(node.entry().key()) as usize & mask;
                *node.next_mut() = fresh[idx].take();
                fresh[idx] = Some(node);
            }
        }
        self.buckets = fresh;
    }

    /// Every entry, in bucket order (Redis's iteration order for its hash tables).
    pub fn iter(&self) -> Iter<'_, N> {
        Iter {
            buckets: self.buckets.iter(),
            node: None,
        }
    }

    /// Visits the entries of the bucket at `cursor` and returns the next cursor (0 when
    /// the scan is complete), with Redis's reverse-binary increment: a bucket's entries
    /// only ever move to buckets the cursor has not passed yet, so an entry present from
    /// the first call to the last is visited at least once across resizes.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&N::Entry)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_ref();
        while let Some(node) = cur {
            f(node.entry());
            cur = node.next();
        }
        crate::dict::next_cursor(cursor, mask)
    }

    /// A random entry, as Redis's `dictGetRandomKey` picks it: a uniformly random
    /// non-empty bucket (after [`RANDOM_BUCKET_TRIES`] empty draws, the first non-empty
    /// bucket from a random start), then a uniformly random entry of its chain. Entries
    /// of long chains are a little less likely, as in Redis. `rng` yields uniform 64-bit
    /// values.
    pub fn random(&self, rng: &mut impl FnMut() -> u64) -> Option<&N::Entry> {
        if self.len == 0 {
            return None;
        }
        let n = self.buckets.len();
        let mut head = None;
        for _ in 0..RANDOM_BUCKET_TRIES {
            if let Some(h) = self.buckets[rng() as usize & (n - 1)].as_ref() {
                head = Some(h);
                break;
            }
        }
        let head = match head {
            Some(h) => h,
            None => {
                let start = rng() as usize & (n - 1);
                (0..n).find_map(|i| self.buckets[(start + i) & (n - 1)].as_ref())?
            }
        };
        let mut chain_len = 0u64;
        let mut cur = Some(head);
        while let Some(node) = cur {
            chain_len += 1;
            cur = node.next();
        }
        let mut node = head;
        for _ in 0..rng() % chain_len {
            node = node.next()?;
        }
        Some(node.entry())
    }

    /// Approximate heap bytes: bucket array and nodes as the allocator rounds them,
    /// plus the bytes entries hold outside their nodes.
    pub fn heap_size(&self) -> usize {
        alloc_size(self.buckets.capacity() * std::mem::size_of::<Option<N>>())
            + self.blocks
            + self.heap
    }

    /// Bytes of entries stored outside their nodes (tests check the running count).
    #[cfg(test)]
    pub fn out_of_line_bytes(&self) -> usize {
        self.heap
    }

    /// Bytes of the nodes' blocks (tests check the running count).
    #[cfg(test)]
    pub fn block_bytes(&self) -> usize {
        self.blocks
    }
}

impl<E: Entry> Table<E> {
    /// Size of one node (tests pin it to an allocator size class).
    #[cfg(test)]
    pub const NODE_SIZE: usize = std::mem::size_of::<Node<E>>();
}

impl<N: Chained> Drop for Chains<N> {
    fn drop(&mut self) {
        // Unlink chains iteratively: dropping a long chain recursively could overflow
        // the stack.
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next_mut().take();
            }
        }
    }
}

/// Iterator over a table's entries in bucket order.
pub struct Iter<'a, N> {
    buckets: std::slice::Iter<'a, Option<N>>,
    node: Option<&'a N>,
}

impl<'a, N: Chained> Iterator for Iter<'a, N> {
    type Item = &'a N::Entry;

    fn next(&mut self) -> Option<&'a N::Entry> {
        loop {
            if let Some(node) = self.node {
                self.node = node.next();
                return Some(node.entry());
            }
            self.node = self.buckets.next()?.as_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use std::collections::{HashMap, HashSet};

    /// A test entry: a key and a counter, with the key on the heap when long.
    #[derive(Debug, Clone, PartialEq)]
    struct Kv {
        key: Vec<u8>,
        val: u32,
    }

    impl Entry for Kv {
        fn key(&self) -> &[u8] {
            &self.key
        }
        fn heap_len(&self) -> usize {
            if self.key.len() > 8 {
                self.key.len()
            } else {
                0
            }
        }
    }

    fn put(t: &mut Table<Kv>, k: &[u8], val: u32) -> bool {
        t.upsert(
            k,
            |e| e.val = val,
            || Kv {
                key: k.to_vec(),
                val,
            },
        )
    }

    #[test]
    fn upsert_get_remove() {
        let mut t = Table::default();
        assert!(put(&mut t, b"a", 1));
        assert!(!put(&mut t, b"a", 2));
        assert!(put(&mut t, b"a-long-key", 3));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(b"a").map(|e| e.val), Some(2));
        assert_eq!(t.out_of_line_bytes(), 10);
        assert_eq!(t.remove(b"a-long-key").map(|e| e.val), Some(3));
        assert!(t.remove(b"a-long-key").is_none());
        assert_eq!(t.out_of_line_bytes(), 0);
        assert!(!t.contains(b"a-long-key"));
        assert!(t.contains(b"a"));
    }

    #[test]
    fn scan_sees_every_stable_entry_across_growth_and_shrink() {
        let mut t = Table::default();
        let stable: Vec<String> = (0..500).map(|i| format!("stable{i}")).collect();
        for m in &stable {
            put(&mut t, m.as_bytes(), 0);
        }
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut step = 0u32;
        loop {
            cursor = t.scan(cursor, |e| {
                seen.insert(e.key.clone());
            });
            step += 1;
            if step == 3 {
                for i in 0..5000 {
                    put(&mut t, format!("tmp{i}").as_bytes(), 1);
                }
            }
            if step == 40 {
                for i in 0..5000 {
                    t.remove(format!("tmp{i}").as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for m in &stable {
            assert!(seen.contains(m.as_bytes()), "scan missed {m}");
        }
    }

    #[test]
    fn random_reaches_entries_and_shrinks_when_emptied() {
        let mut t = Table::default();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rng = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        assert!(t.random(&mut rng).is_none());
        for i in 0..100 {
            put(&mut t, format!("m{i}").as_bytes(), i);
        }
        let mut seen = HashSet::new();
        for _ in 0..3000 {
            seen.insert(t.random(&mut rng).expect("non-empty").val);
        }
        assert_eq!(seen.len(), 100, "sampling covered only {}", seen.len());
        // Nearly empty but not yet shrunk: the probing fallback still finds the one left.
        for i in 0..99 {
            assert!(t.remove(format!("m{i}").as_bytes()).is_some());
        }
        for _ in 0..50 {
            assert_eq!(t.random(&mut rng).map(|e| e.val), Some(99));
        }
        assert!(t.remove(b"m99").is_some());
        assert_eq!(t.len(), 0);
        assert!(t.buckets.len() <= MIN_BUCKETS);
        assert_eq!(t.iter().count(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u16, u32),
        Remove(u16),
        Get(u16),
    }

    fn key(k: u16) -> Vec<u8> {
        // Short and long keys (inline and heap in `Kv`'s accounting).
        if k.is_multiple_of(3) {
            format!("a-long-key-{k}").into_bytes()
        } else {
            format!("k{k}").into_bytes()
        }
    }

    proptest::proptest! {
        /// Against a HashMap: every operation, the length, the out-of-line byte count,
        /// iteration (each entry once) and a full scan.
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec(
            proptest::prop_oneof![
                5 => (0u16..200, proptest::prelude::any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
                3 => (0u16..200).prop_map(Op::Remove),
                1 => (0u16..200).prop_map(Op::Get),
            ],
            1..600,
        )) {
            let mut t = Table::default();
            let mut m: HashMap<Vec<u8>, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        let k = key(k);
                        proptest::prop_assert_eq!(put(&mut t, &k, v), m.insert(k, v).is_none());
                    }
                    Op::Remove(k) => {
                        let k = key(k);
                        proptest::prop_assert_eq!(t.remove(&k).map(|e| e.val), m.remove(&k));
                    }
                    Op::Get(k) => {
                        let k = key(k);
                        proptest::prop_assert_eq!(t.get(&k).map(|e| e.val), m.get(&k).copied());
                    }
                }
                proptest::prop_assert_eq!(t.len(), m.len());
                let heap: usize = m.keys().filter(|k| k.len() > 8).map(Vec::len).sum();
                proptest::prop_assert_eq!(t.out_of_line_bytes(), heap);
            }
            let all: HashMap<Vec<u8>, u32> = t.iter().map(|e| (e.key.clone(), e.val)).collect();
            proptest::prop_assert_eq!(t.iter().count(), m.len());
            proptest::prop_assert_eq!(&all, &m);
            let mut scanned = HashMap::new();
            let mut cursor = 0;
            loop {
                cursor = t.scan(cursor, |e| { scanned.insert(e.key.clone(), e.val); });
                if cursor == 0 { break; }
            }
            proptest::prop_assert_eq!(scanned, m);
        }
    }
}
