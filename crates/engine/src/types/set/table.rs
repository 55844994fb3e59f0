//! The chained hash table behind `hashtable`-encoded sets, laid out for memory.
//!
//! It follows the keyspace's [`crate::dict::Dict`] design (power-of-two buckets of chains,
//! Redis's reverse-binary SCAN cursor, random bucket then random chain entry) because
//! SSCAN must keep Redis's guarantee: every member present for the whole iteration is
//! returned at least once, whatever resizes happen between calls. What differs is the
//! node: a set member needs no value and no shared `Bytes` handle, so a node is a
//! 32-byte allocation holding the chain link and the member itself when it is at most
//! [`INLINE`] bytes long (longer members get one more allocation). The member's hash is
//! not stored; resizes recompute it, as Redis does. That keeps a large set of short
//! members at or below Redis's own bytes per member.

use crate::hashing::hash_bytes;

/// Longest member stored inside its node.
pub const INLINE: usize = 22;

/// Smallest number of buckets a non-empty table keeps.
const MIN_BUCKETS: usize = 4;

/// A member's bytes: inline when short, else in their own allocation.
enum Key {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(b: &[u8]) -> Key {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }

    /// Bytes held outside the node.
    fn heap_len(&self) -> usize {
        match self {
            Key::Inline { .. } => 0,
            Key::Heap(b) => b.len(),
        }
    }
}

struct Node {
    next: Option<Box<Node>>,
    key: Key,
}

/// A set of byte strings with stable-cursor scanning and random sampling.
#[derive(Default)]
pub struct Table {
    buckets: Vec<Option<Box<Node>>>,
    len: usize,
    /// Bytes of members stored outside their nodes.
    heap: usize,
}

impl Table {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    fn chain(&self, m: &[u8]) -> Option<&Node> {
        if self.buckets.is_empty() {
            return None;
        }
        self.buckets[hash_bytes(m) as usize & self.mask()].as_deref()
    }

    /// True if `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        let mut cur = self.chain(m);
        while let Some(node) = cur {
            if node.key.as_bytes() == m {
                return true;
            }
            cur = node.next.as_deref();
        }
        false
    }

    /// Adds `m`; false if it was already a member.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.contains(m) {
            return false;
        }
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let idx = hash_bytes(m) as usize & self.mask();
        let key = Key::new(m);
        self.heap += key.heap_len();
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Node { next, key }));
        self.len += 1;
        true
    }

    /// Removes `m`; false if it was not a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        if self.buckets.is_empty() {
            return false;
        }
        let idx = hash_bytes(m) as usize & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return false,
                Some(node) if node.key.as_bytes() == m => {
                    let Some(mut boxed) = link.take() else {
                        return false;
                    };
                    *link = boxed.next.take();
                    self.heap -= boxed.key.heap_len();
                    self.len -= 1;
                    self.maybe_shrink();
                    return true;
                }
                Some(node) => link = &mut node.next,
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
        let mut fresh: Vec<Option<Box<Node>>> = Vec::with_capacity(new_size);
        fresh.resize_with(new_size, || None);
        let mask = new_size - 1;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
                let idx = hash_bytes(node.key.as_bytes()) as usize & mask;
                node.next = fresh[idx].take();
                fresh[idx] = Some(node);
            }
        }
        self.buckets = fresh;
    }

    /// Visits members in bucket order until `f` returns false.
    pub fn for_each_while(&self, mut f: impl FnMut(&[u8]) -> bool) {
        for bucket in &self.buckets {
            let mut cur = bucket.as_deref();
            while let Some(node) = cur {
                if !f(node.key.as_bytes()) {
                    return;
                }
                cur = node.next.as_deref();
            }
        }
    }

    /// Visits the members of the bucket at `cursor` and returns the next cursor (0 when
    /// the scan is complete), with Redis's reverse-binary increment: a bucket's members
    /// only ever move to buckets the cursor has not passed yet, so a member present from
    /// the first call to the last is visited at least once across resizes.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8])) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(node) = cur {
            f(node.key.as_bytes());
            cur = node.next.as_deref();
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// A pseudo-random member: `r1` picks a non-empty bucket (probing from a random
    /// start), `r2` a member of its chain.
    pub fn random(&self, r1: u64, r2: u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let n = self.buckets.len();
        let start = r1 as usize & (n - 1);
        for i in 0..n {
            let Some(head) = self.buckets[(start + i) & (n - 1)].as_deref() else {
                continue;
            };
            let mut chain_len = 0u64;
            let mut cur = Some(head);
            while let Some(node) = cur {
                chain_len += 1;
                cur = node.next.as_deref();
            }
            let mut node = head;
            for _ in 0..r2 % chain_len {
                node = node.next.as_deref()?;
            }
            return Some(node.key.as_bytes());
        }
        None
    }

    /// Approximate heap bytes: bucket array, nodes, out-of-line members.
    pub fn heap_size(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Option<Box<Node>>>()
            + self.len * std::mem::size_of::<Node>()
            + self.heap
    }

    /// Bytes of members stored outside their nodes (tests check the running count).
    #[cfg(test)]
    pub fn out_of_line_bytes(&self) -> usize {
        self.heap
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // Unlink chains iteratively: dropping a long `Box` chain recursively could
        // overflow the stack.
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut node) = cur {
                cur = node.next.take();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nodes_stay_small() {
        assert_eq!(std::mem::size_of::<Node>(), 32);
        assert_eq!(std::mem::size_of::<Option<Box<Node>>>(), 8);
    }

    #[test]
    fn insert_contains_remove_across_inline_boundary() {
        let mut t = Table::default();
        let long = vec![b'x'; INLINE + 1];
        let exact = vec![b'y'; INLINE];
        for m in [&b""[..], b"a", &exact, &long] {
            assert!(t.insert(m));
            assert!(!t.insert(m));
            assert!(t.contains(m));
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.out_of_line_bytes(), INLINE + 1);
        assert!(t.remove(&long));
        assert!(!t.remove(&long));
        assert_eq!(t.out_of_line_bytes(), 0);
        assert!(!t.contains(&long));
        assert!(t.contains(&exact));
    }

    #[test]
    fn scan_sees_every_stable_member_across_growth_and_shrink() {
        let mut t = Table::default();
        let stable: Vec<String> = (0..500).map(|i| format!("stable{i}")).collect();
        for m in &stable {
            t.insert(m.as_bytes());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut step = 0u32;
        loop {
            cursor = t.scan(cursor, |m| {
                seen.insert(m.to_vec());
            });
            step += 1;
            if step == 3 {
                for i in 0..5000 {
                    t.insert(format!("tmp{i}").as_bytes());
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
    fn random_reaches_members_and_shrinks_when_emptied() {
        let mut t = Table::default();
        assert!(t.random(1, 2).is_none());
        for i in 0..100 {
            t.insert(format!("m{i}").as_bytes());
        }
        let mut seen = HashSet::new();
        for i in 0..3000u64 {
            let m = t
                .random(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i)
                .expect("non-empty");
            seen.insert(m.to_vec());
        }
        assert!(seen.len() > 60, "sampling covered only {}", seen.len());
        for i in 0..100 {
            assert!(t.remove(format!("m{i}").as_bytes()));
        }
        assert_eq!(t.len(), 0);
        assert!(t.buckets.len() <= MIN_BUCKETS);
        let mut n = 0;
        t.for_each_while(|_| {
            n += 1;
            true
        });
        assert_eq!(n, 0);
    }
}
