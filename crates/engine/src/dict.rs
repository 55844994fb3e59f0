//! A chained hash table keyed by byte strings, the storage of every keyspace shard.
//!
//! Why not `hashbrown`: Redis's `SCAN` promises that every key present for the whole scan
//! is returned at least once, even while the table grows or shrinks between calls, and
//! eviction needs to sample random entries. Both fall out of a power-of-two table of
//! bucket chains iterated with Redis's reverse-binary cursor (Pieter Noordhuis's
//! algorithm): a bucket's entries always move to buckets whose reversed index is not
//! smaller, so a cursor never skips them. Open addressing (hashbrown) moves entries
//! between probe positions and cannot keep that promise.
//!
//! The caller supplies the key's 64-bit hash (the keyspace computes it once to pick the
//! shard); the table uses its low bits. Resizing is done at once: with many shards per
//! server each table stays small enough for that to be cheap.

struct Node<V> {
    hash: u64,
    key: Box<[u8]>,
    value: V,
    next: Option<Box<Node<V>>>,
}

/// Redis's SCAN cursor step for a table of `mask + 1` buckets: increments the cursor's
/// reversed bits over the masked range (the unmasked high bits are set first so the
/// carry runs through them). Shared by every chained table with SCAN (`Dict`, the
/// collection table, the sorted-set index). Returns 0 when the scan is complete.
pub(crate) fn next_cursor(cursor: u64, mask: u64) -> u64 {
    (cursor | !mask)
        .reverse_bits()
        .wrapping_add(1)
        .reverse_bits()
}

/// Smallest number of buckets a non-empty table keeps.
const MIN_BUCKETS: usize = 4;

/// A hash table from byte-string keys to `V`, with stable-cursor scanning and random sampling.
pub struct Dict<V> {
    buckets: Vec<Option<Box<Node<V>>>>,
    len: usize,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
    /// An empty table (allocates nothing until the first insert).
    pub fn new() -> Self {
        Dict {
            buckets: Vec::new(),
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (a power of two, or zero).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// Looks a key up.
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&V> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut cur = self.buckets[hash as usize & self.mask()].as_deref();
        while let Some(node) = cur {
            if node.hash == hash && node.key.as_ref() == key {
                return Some(&node.value);
            }
            cur = node.next.as_deref();
        }
        None
    }

    /// Looks a key up for modification.
    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        if self.buckets.is_empty() {
            return None;
        }
        let idx = hash as usize & self.mask();
        let mut cur = self.buckets[idx].as_deref_mut();
        while let Some(node) = cur {
            if node.hash == hash && node.key.as_ref() == key {
                return Some(&mut node.value);
            }
            cur = node.next.as_deref_mut();
        }
        None
    }

    /// Looks up the first entry with `hash` for which `pred` holds.
    pub fn get_where(&self, hash: u64, mut pred: impl FnMut(&[u8], &V) -> bool) -> Option<&V> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut cur = self.buckets[hash as usize & self.mask()].as_deref();
        while let Some(node) = cur {
            if node.hash == hash && pred(&node.key, &node.value) {
                return Some(&node.value);
            }
            cur = node.next.as_deref();
        }
        None
    }

    /// Looks up the first entry with `hash` for which `pred` holds, for modification
    /// (used where only a key's hash is known: eviction queues, the deadline index).
    pub fn get_mut_where(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(&[u8], &V) -> bool,
    ) -> Option<(&[u8], &mut V)> {
        if self.buckets.is_empty() {
            return None;
        }
        let idx = hash as usize & self.mask();
        let mut cur = self.buckets[idx].as_deref_mut();
        while let Some(node) = cur {
            if node.hash == hash && pred(&node.key, &node.value) {
                return Some((&*node.key, &mut node.value));
            }
            cur = node.next.as_deref_mut();
        }
        None
    }

    /// Heap bytes of one entry's node (hash, key pointer, value, chain link), as
    /// allocated: the per-key cost of the table besides the key's bytes.
    pub const fn node_size() -> usize {
        std::mem::size_of::<Node<V>>()
    }

    /// Looks a key up and returns the stored key too.
    pub fn get_key_value(&self, hash: u64, key: &[u8]) -> Option<(&[u8], &V)> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut cur = self.buckets[hash as usize & self.mask()].as_deref();
        while let Some(node) = cur {
            if node.hash == hash && node.key.as_ref() == key {
                return Some((&*node.key, &node.value));
            }
            cur = node.next.as_deref();
        }
        None
    }

    /// Inserts or replaces; returns the previous value of the key.
    pub fn insert(&mut self, hash: u64, key: Box<[u8]>, value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(hash, &key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_unique(hash, key, value);
        None
    }

    /// Inserts a key the caller knows is absent (saves the lookup of [`Dict::insert`]).
    pub fn insert_unique(&mut self, hash: u64, key: Box<[u8]>, value: V) {
        debug_assert!(
            self.get(hash, &key).is_none(),
            "insert_unique of a present key"
        );
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let idx = hash as usize & self.mask();
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Node {
            hash,
            key,
            value,
            next,
        }));
        self.len += 1;
    }

    /// Removes a key; returns the stored key and value.
    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<(Box<[u8]>, V)> {
        if self.buckets.is_empty() {
            return None;
        }
        let idx = hash as usize & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(node) if node.hash == hash && node.key.as_ref() == key => {
                    let mut boxed = link.take()?;
                    *link = boxed.next.take();
                    self.len -= 1;
                    self.maybe_shrink();
                    return Some((boxed.key, boxed.value));
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    /// Removes the first entry with `hash` for which `pred` holds (used when only the hash
    /// of a key is known, as in the keyspace's deadline index).
    pub fn remove_where(
        &mut self,
        hash: u64,
        mut pred: impl FnMut(&[u8], &V) -> bool,
    ) -> Option<(Box<[u8]>, V)> {
        if self.buckets.is_empty() {
            return None;
        }
        let idx = hash as usize & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(node) if node.hash == hash && pred(&node.key, &node.value) => {
                    let mut boxed = link.take()?;
                    *link = boxed.next.take();
                    self.len -= 1;
                    self.maybe_shrink();
                    return Some((boxed.key, boxed.value));
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    /// Consumes the table, handing every entry to `f` (order unspecified).
    pub fn into_each(mut self, mut f: impl FnMut(Box<[u8]>, V)) {
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
                f(node.key, node.value);
            }
        }
        self.len = 0;
    }

    /// Removes every entry and releases the buckets.
    pub fn clear(&mut self) {
        // Unlink chains iteratively: dropping a long `Box` chain recursively could
        // overflow the stack.
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
            }
        }
        self.buckets = Vec::new();
        self.len = 0;
    }

    fn maybe_shrink(&mut self) {
        let n = self.buckets.len();
        if n > MIN_BUCKETS && self.len * 8 < n {
            let target = self.len.next_power_of_two().max(MIN_BUCKETS);
            self.resize(target);
        }
    }

    fn resize(&mut self, new_size: usize) {
        debug_assert!(new_size.is_power_of_two());
        let mut fresh: Vec<Option<Box<Node<V>>>> = Vec::with_capacity(new_size);
        fresh.resize_with(new_size, || None);
        let mask = new_size - 1;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
                let idx = node.hash as usize & mask;
                node.next = fresh[idx].take();
                fresh[idx] = Some(node);
            }
        }
        self.buckets = fresh;
    }

    /// Visits every entry (order unspecified).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &V)) {
        for bucket in &self.buckets {
            let mut cur = bucket.as_deref();
            while let Some(node) = cur {
                f(&node.key, &node.value);
                cur = node.next.as_deref();
            }
        }
    }

    /// Visits every entry with its hash, for modification (order unspecified).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(u64, &[u8], &mut V)) {
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.as_deref_mut();
            while let Some(node) = cur {
                f(node.hash, &node.key, &mut node.value);
                cur = node.next.as_deref_mut();
            }
        }
    }

    /// Visits the entries of the bucket at `cursor` and returns the next cursor (0 when
    /// the scan is complete). Every key present from the first call to the last is
    /// visited at least once, whatever resizes happen between calls.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(node) = cur {
            f(&node.key, &node.value);
            cur = node.next.as_deref();
        }
        next_cursor(cursor, mask)
    }

    /// A pseudo-random entry: `r1` picks a non-empty bucket (probing from a random
    /// start), `r2` an entry of its chain. Not uniform over keys (long chains are
    /// under-sampled) exactly as Redis's dictGetRandomKey is not.
    pub fn random_entry(&self, r1: u64, r2: u64) -> Option<(&[u8], &V)> {
        self.random_node(r1, r2).map(|(_, k, v)| (k, v))
    }

    /// Like [`Dict::random_entry`], with the entry's hash.
    pub fn random_node(&self, r1: u64, r2: u64) -> Option<(u64, &[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let n = self.buckets.len();
        let start = r1 as usize & (n - 1);
        for i in 0..n {
            let idx = (start + i) & (n - 1);
            if let Some(head) = self.buckets[idx].as_deref() {
                let mut chain_len = 0usize;
                let mut cur = Some(head);
                while let Some(node) = cur {
                    chain_len += 1;
                    cur = node.next.as_deref();
                }
                let mut pick = (r2 % chain_len as u64) as usize;
                let mut cur = head;
                while pick > 0 {
                    pick -= 1;
                    cur = cur.next.as_deref()?;
                }
                return Some((cur.hash, &*cur.key, &cur.value));
            }
        }
        None
    }
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn h(k: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(7).hash_one(k)
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            let k = format!("k{i}");
            assert!(
                d.insert(h(k.as_bytes()), k.into_bytes().into_boxed_slice(), i)
                    .is_none()
            );
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.get(h(b"k10"), b"k10"), Some(&10));
        assert_eq!(d.insert(h(b"k10"), b"k10"[..].into(), 99), Some(10));
        assert_eq!(d.len(), 1000);
        for i in 0..1000u32 {
            let k = format!("k{i}");
            assert!(d.remove(h(k.as_bytes()), k.as_bytes()).is_some());
        }
        assert!(d.is_empty());
        assert!(d.bucket_count() <= MIN_BUCKETS);
    }

    #[test]
    fn scan_sees_every_stable_key_across_growth_and_shrink() {
        let mut d = Dict::new();
        let stable: Vec<String> = (0..500).map(|i| format!("stable{i}")).collect();
        for k in &stable {
            d.insert(
                h(k.as_bytes()),
                k.clone().into_bytes().into_boxed_slice(),
                (),
            );
        }
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            step += 1;
            // Grow the table a lot, then shrink it, in the middle of the scan.
            if step == 3 {
                for i in 0..5000 {
                    let k = format!("tmp{i}");
                    d.insert(h(k.as_bytes()), k.into_bytes().into_boxed_slice(), ());
                }
            }
            if step == 40 {
                for i in 0..5000 {
                    let k = format!("tmp{i}");
                    d.remove(h(k.as_bytes()), k.as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for k in &stable {
            assert!(seen.contains(k.as_bytes()), "scan missed {k}");
        }
    }

    #[test]
    fn random_entry_finds_entries() {
        let mut d = Dict::new();
        assert!(d.random_entry(1, 2).is_none());
        for i in 0..100u32 {
            let k = format!("k{i}");
            d.insert(h(k.as_bytes()), k.into_bytes().into_boxed_slice(), i);
        }
        let mut seen = HashSet::new();
        for i in 0..2000u64 {
            let (_, v) = d
                .random_entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i)
                .expect("non-empty");
            seen.insert(*v);
        }
        assert!(seen.len() > 50, "sampling covered only {}", seen.len());
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec((0u8..3, 0u16..64, 0u32..1000), 1..400)) {
            let mut d = Dict::new();
            let mut m = HashMap::new();
            for (op, key, val) in ops {
                let k = format!("key{key}");
                let hk = h(k.as_bytes());
                match op {
                    0 => { proptest::prop_assert_eq!(d.insert(hk, k.clone().into_bytes().into_boxed_slice(), val), m.insert(k, val)); }
                    1 => { proptest::prop_assert_eq!(d.remove(hk, k.as_bytes()).map(|(_, v)| v), m.remove(&k)); }
                    _ => { proptest::prop_assert_eq!(d.get(hk, k.as_bytes()), m.get(&k)); }
                }
                proptest::prop_assert_eq!(d.len(), m.len());
            }
            let mut all = Vec::new();
            d.for_each(|k, v| all.push((k.to_vec(), *v)));
            proptest::prop_assert_eq!(all.len(), m.len());
        }
    }
}
