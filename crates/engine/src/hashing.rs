//! The hash function for elements inside collections (hash fields, set members, zset
//! members), seeded once per process so clients cannot aim for collisions.
//!
//! The server calls [`seed`] at startup with a value it drew; tests that never call it
//! get a fixed seed, so they stay deterministic. Keys use the keyspace's own hasher.

use std::hash::BuildHasher;
use std::sync::OnceLock;

static STATE: OnceLock<foldhash::fast::FixedState> = OnceLock::new();

/// Sets the process-wide seed; only the first call has an effect.
pub fn seed(s: u64) {
    let _ = STATE.set(foldhash::fast::FixedState::with_seed(s));
}

/// Hash of an element's bytes, for [`crate::dict::Dict`] and other tables.
pub fn hash_bytes(b: &[u8]) -> u64 {
    STATE
        .get_or_init(|| foldhash::fast::FixedState::with_seed(0x5EED))
        .hash_one(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_bytes_hash_equal() {
        assert_eq!(super::hash_bytes(b"abc"), super::hash_bytes(b"abc"));
        assert_ne!(super::hash_bytes(b"abc"), super::hash_bytes(b"abd"));
    }
}
