//! How a `hashtable`-encoded set stores a member: the shared [`Table`] with an entry that
//! is just the member's bytes, inside the 32-byte table node when at most [`INLINE`]
//! bytes long (longer members get one more allocation).

use crate::types::table::{Entry, Table};

/// Longest member stored inside its node.
pub const INLINE: usize = 22;

/// A member's bytes: inline when short, else in their own allocation.
pub enum Key {
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
}

impl Entry for Key {
    fn key(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }

    fn heap_len(&self) -> usize {
        match self {
            Key::Inline { .. } => 0,
            Key::Heap(b) => b.len(),
        }
    }
}

/// The set's large encoding.
pub type MemberTable = Table<Key>;

impl Table<Key> {
    /// Adds `m`; false if it was already a member.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        self.upsert(m, |_| {}, || Key::new(m))
    }

    /// Removes `m`; false if it was not a member.
    pub fn remove_member(&mut self, m: &[u8]) -> bool {
        self.remove(m).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_stay_small() {
        // 32 bytes is an allocator size class (mimalloc and jemalloc alike).
        assert_eq!(MemberTable::NODE_SIZE, 32);
    }

    #[test]
    fn members_across_the_inline_boundary() {
        let mut t = MemberTable::default();
        let long = vec![b'x'; INLINE + 1];
        let exact = vec![b'y'; INLINE];
        for m in [&b""[..], b"a", &exact, &long] {
            assert!(t.insert(m));
            assert!(!t.insert(m));
            assert!(t.contains(m));
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.out_of_line_bytes(), INLINE + 1);
        assert!(t.remove_member(&long));
        assert!(!t.remove_member(&long));
        assert_eq!(t.out_of_line_bytes(), 0);
        assert!(!t.contains(&long));
        assert!(t.contains(&exact));
    }
}
