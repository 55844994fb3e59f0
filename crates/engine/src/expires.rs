//! The deadline index of one database slice: which keys expire when, in deadline order,
//! at about 6 bytes per key.
//!
//! Why not a `BTreeMap<(deadline, hash), count>`: its 24-byte entries in B-tree nodes
//! filled in deadline order (so about half full) cost about 43 bytes per volatile key, a
//! third of what the key itself costs. Here deadlines are grouped in slots of
//! [`SLOT_MS`] milliseconds (a `BTreeMap` from slot to a sorted ring of entries), and
//! each entry is one `u32`: the deadline's offset in its slot (10 bits) above the low
//! [`HASH_BITS`] (22) bits of the key's hash. The key itself is not stored: the table
//! finds it by those hash bits (they pick its bucket in tables of up to 2^22 buckets;
//! larger tables look in each bucket they could pick, see `Dict::get_where_low`), the
//! rest of its hash recomputed and checked under the same mask, and by the node's own
//! deadline, which must match the entry's.
//!
//! Two keys may share an entry (same millisecond, same 22 hash bits): then either key
//! answers for it, which is harmless. The entries are equal, so removing the one of
//! either key leaves the same index; and a key found for an entry has exactly the
//! entry's deadline, so the active cycle may reclaim it in place of the other - both are
//! due at that millisecond. The counts stay exact.
//!
//! The order is exact (slots in order, entries sorted in a slot), so the active cycle
//! reclaims keys exactly when due, earliest first, by popping from the front of the
//! first slot. Removing an entry (a key deleted, overwritten or given another deadline)
//! is a binary search in its slot and a shift of the entries after it toward the nearer
//! end of the ring.

use std::collections::{BTreeMap, VecDeque};

/// Width of a slot in milliseconds (a power of two).
const SLOT_BITS: u32 = 10;
/// Milliseconds per slot.
pub const SLOT_MS: u64 = 1 << SLOT_BITS;
/// Bits of the key hash kept per entry (the low ones: those that pick the table bucket).
pub const HASH_BITS: u32 = 32 - SLOT_BITS;
/// The hash bits an entry keeps ([`ExpireIndex`] hands hashes back masked with it).
pub const HASH_MASK: u64 = (1 << HASH_BITS) - 1;

/// Bytes accounted per entry: 4, plus a ring's spare capacity (half full after it
/// doubles, full before: about a third on average).
pub const ENTRY_BYTES: usize = 6;
/// Bytes accounted per slot: the map's entry (key and ring header, 40 bytes) in B-tree
/// nodes about two-thirds full, and the ring's block rounding.
pub const SLOT_BYTES: usize = 72;

fn entry(at: u64, hash: u64) -> u32 {
    (((at & (SLOT_MS - 1)) << HASH_BITS) | (hash & HASH_MASK)) as u32
}

fn deadline(slot: u64, e: u32) -> u64 {
    (slot << SLOT_BITS) | u64::from(e >> HASH_BITS)
}

fn hash_bits(e: u32) -> u64 {
    u64::from(e) & HASH_MASK
}

/// Keys with a deadline, as `(deadline, hash bits)`, in deadline order.
#[derive(Default)]
pub struct ExpireIndex {
    slots: BTreeMap<u64, VecDeque<u32>>,
    len: usize,
}

impl ExpireIndex {
    /// An empty index.
    pub fn new() -> ExpireIndex {
        ExpireIndex::default()
    }

    /// Number of keys indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the index costs, as [`ENTRY_BYTES`] per key and [`SLOT_BYTES`] per slot
    /// (a smooth estimate: a ring's doubling is not charged at once).
    pub fn heap_size(&self) -> usize {
        self.len * ENTRY_BYTES + self.slots.len() * SLOT_BYTES
    }

    /// Indexes a key of hash `hash` expiring at `at` (Unix ms, not 0).
    pub fn add(&mut self, at: u64, hash: u64) {
        let e = entry(at, hash);
        let ring = self.slots.entry(at >> SLOT_BITS).or_default();
        // Deadlines mostly arrive in increasing order: search from the back.
        let pos = match ring.back() {
            Some(&last) if last <= e => ring.len(),
            _ => ring.partition_point(|&x| x <= e),
        };
        ring.insert(pos, e);
        self.len += 1;
    }

    /// Removes one entry for a key of hash `hash` expiring at `at`; false if there was
    /// none.
    pub fn remove(&mut self, at: u64, hash: u64) -> bool {
        let slot = at >> SLOT_BITS;
        let Some(ring) = self.slots.get_mut(&slot) else {
            return false;
        };
        let e = entry(at, hash);
        let Ok(pos) = ring.binary_search(&e) else {
            return false;
        };
        ring.remove(pos);
        if ring.is_empty() {
            self.slots.remove(&slot);
        }
        self.len -= 1;
        true
    }

    /// The earliest entry: `(deadline, hash bits)`.
    pub fn first(&self) -> Option<(u64, u64)> {
        let (&slot, ring) = self.slots.first_key_value()?;
        ring.front().map(|&e| (deadline(slot, e), hash_bits(e)))
    }

    /// Removes and returns the earliest entry if its deadline is `<= now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, u64)> {
        let mut first = self.slots.first_entry()?;
        let slot = *first.key();
        let ring = first.get_mut();
        let e = *ring.front()?;
        let at = deadline(slot, e);
        if at > now {
            return None;
        }
        ring.pop_front();
        if ring.is_empty() {
            first.remove();
        }
        self.len -= 1;
        Some((at, hash_bits(e)))
    }

    /// A pseudo-random entry: the first of the slot at or after a random time between the
    /// earliest and the latest deadline, then a random entry of it (`r` supplies both).
    pub fn sample(&self, r: u64) -> Option<(u64, u64)> {
        let (&lo, _) = self.slots.first_key_value()?;
        let (&hi, _) = self.slots.last_key_value()?;
        let t = lo + r % (hi - lo + 1);
        let (&slot, ring) = self
            .slots
            .range(t..)
            .next()
            .or_else(|| self.slots.first_key_value())?;
        let e = *ring.get((r >> 32) as usize % ring.len())?;
        Some((deadline(slot, e), hash_bits(e)))
    }

    /// Entries whose deadline is `<= now`, counted up to `cap`.
    pub fn count_due(&self, now: u64, cap: usize) -> usize {
        let mut n = 0;
        for (&slot, ring) in self.slots.range(..=now >> SLOT_BITS) {
            if n >= cap {
                break;
            }
            n += if (slot + 1) << SLOT_BITS <= now + 1 {
                ring.len()
            } else {
                ring.partition_point(|&e| deadline(slot, e) <= now)
            };
        }
        n.min(cap)
    }

    /// Visits every entry in deadline order (tests and checks).
    pub fn for_each(&self, mut f: impl FnMut(u64, u64)) {
        for (&slot, ring) in &self.slots {
            for &e in ring {
                f(deadline(slot, e), hash_bits(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn entries_keep_deadline_and_hash_bits() {
        let mut x = ExpireIndex::new();
        let h = 0xFFFF_FFFF_FFFF_FFFFu64;
        x.add(1_700_000_000_123, h);
        x.add(5, 7);
        assert_eq!(x.first(), Some((5, 7)));
        assert_eq!(x.pop_due(4), None);
        assert_eq!(x.pop_due(5), Some((5, 7)));
        assert_eq!(x.first(), Some((1_700_000_000_123, h & HASH_MASK)));
        assert!(!x.remove(1_700_000_000_124, h));
        assert!(x.remove(1_700_000_000_123, h));
        assert!(x.is_empty());
        assert_eq!(x.heap_size(), 0);
    }

    #[test]
    fn keys_sharing_an_entry_are_counted_apart() {
        // Same millisecond, same low 22 hash bits, different keys: two equal entries.
        let mut x = ExpireIndex::new();
        let (a, b) = (0x0012_3456u64, 0xABCD_0000_0012_3456u64 | (1 << 22));
        assert_eq!(a & HASH_MASK, b & HASH_MASK);
        x.add(2_000, a);
        x.add(2_000, b);
        assert_eq!(x.len(), 2);
        assert!(x.remove(2_000, b));
        assert_eq!(x.first(), Some((2_000, a & HASH_MASK)));
        assert_eq!(x.pop_due(2_000), Some((2_000, a & HASH_MASK)));
        assert!(!x.remove(2_000, a));
        assert!(x.is_empty());
    }

    #[test]
    fn count_due_counts_exactly_at_slot_edges() {
        let mut x = ExpireIndex::new();
        for at in [1023u64, 1024, 1025, 2047, 2048, 5000] {
            x.add(at, at);
        }
        assert_eq!(x.count_due(1022, 100), 0);
        assert_eq!(x.count_due(1023, 100), 1);
        assert_eq!(x.count_due(1024, 100), 2);
        assert_eq!(x.count_due(2047, 100), 4);
        assert_eq!(x.count_due(2048, 100), 5);
        assert_eq!(x.count_due(9999, 100), 6);
        assert_eq!(x.count_due(9999, 3), 3);
    }

    proptest::proptest! {
        /// Against a `BTreeMap<(deadline, hash bits), count>` model: adds, removes
        /// (present or not), pops of due entries, in random orders and slots.
        #[test]
        fn behaves_like_an_ordered_multiset(
            ops in proptest::collection::vec((0u8..4, 0u64..5000, 0u64..6, 0u64..3), 1..400)
        ) {
            let mut x = ExpireIndex::new();
            let mut m: BTreeMap<(u64, u64), u32> = BTreeMap::new();
            for (op, at, h, high) in ops {
                let at = at + 1;
                // Hashes that differ only above the kept bits share entries.
                let h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (high << 40);
                match op {
                    0 | 1 => {
                        x.add(at, h);
                        *m.entry((at, h & HASH_MASK)).or_default() += 1;
                    }
                    2 => {
                        let want = match m.get_mut(&(at, h & HASH_MASK)) {
                            Some(n) => {
                                *n -= 1;
                                if *n == 0 {
                                    m.remove(&(at, h & HASH_MASK));
                                }
                                true
                            }
                            None => false,
                        };
                        proptest::prop_assert_eq!(x.remove(at, h), want);
                    }
                    _ => {
                        let want = m.first_key_value().map(|(&k, _)| k).filter(|k| k.0 <= at);
                        if let Some(k) = want {
                            let n = m.get_mut(&k).expect("present");
                            *n -= 1;
                            if *n == 0 {
                                m.remove(&k);
                            }
                        }
                        proptest::prop_assert_eq!(x.pop_due(at), want);
                    }
                }
                let total: u32 = m.values().sum();
                proptest::prop_assert_eq!(x.len(), total as usize);
                proptest::prop_assert_eq!(x.first(), m.first_key_value().map(|(&k, _)| k));
                proptest::prop_assert_eq!(
                    x.count_due(at, usize::MAX),
                    m.range(..=(at, u64::MAX)).map(|(_, &n)| n as usize).sum::<usize>()
                );
                if let Some((sat, sh)) = x.sample(at.wrapping_mul(31)) {
                    proptest::prop_assert!(m.contains_key(&(sat, sh)));
                }
            }
            let mut all = Vec::new();
            x.for_each(|at, h| all.push((at, h)));
            let want: Vec<(u64, u64)> = m
                .iter()
                .flat_map(|(&k, &n)| std::iter::repeat_n(k, n as usize))
                .collect();
            proptest::prop_assert_eq!(all, want);
        }
    }
}
