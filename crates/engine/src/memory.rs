//! Memory accounting: what one key costs, in O(1), as the allocator will round it.
//!
//! The keyspace keeps a running byte count per database slice of every shard (node, key
//! bytes, value) and updates it on every insert, removal and mutable access (see
//! `keyspace::Guard`), so `MEMORY USAGE`, `MEMORY STATS` and the eviction loop read exact
//! numbers without walking anything. The numbers are estimates of the allocator's view:
//! each heap block is rounded up to mimalloc's size classes (eight-byte steps up to 64
//! bytes, then four classes per power of two), which is also close to jemalloc's.

use crate::dict::Dict;
use crate::keyspace::Entry;
use crate::value::Value;

/// Bytes the allocator hands out for a request of `n` bytes (0 for no allocation).
/// Blocks over 16 MiB are rounded to 4 KiB pages (mimalloc maps them directly).
/// The server's counting allocator counts with this function too, so `used_memory`
/// and the keyspace's accounting agree.
///
/// ```
/// use basalt_engine::memory::alloc_size;
/// assert_eq!(alloc_size(0), 0);
/// assert_eq!(alloc_size(3), 8);
/// assert_eq!(alloc_size(80), 80);
/// assert_eq!(alloc_size(81), 96);
/// ```
pub const fn alloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if n <= 64 {
        return (n + 7) & !7;
    }
    if n > 16 << 20 {
        return (n + 4095) & !4095;
    }
    // Four classes per doubling: round up to a quarter of the power of two below `n`.
    let top = usize::BITS - 1 - (n - 1).leading_zeros();
    let step = 1usize << (top - 2);
    (n + step - 1) & !(step - 1)
}

/// Bytes of one keyspace table node besides its key's bytes (chain link, value,
/// deadline, eviction metadata): the fixed per-key cost of the table. The
/// node and the key's name share one allocation, see [`node_bytes`].
pub const NODE_BYTES: usize = Dict::<Entry>::node_header_size();

/// Bytes of the single block holding one key's table node and its name.
///
/// ```
/// use basalt_engine::memory::node_bytes;
/// assert_eq!(node_bytes(16), 64);
/// ```
pub const fn node_bytes(key_len: usize) -> usize {
    alloc_size(Dict::<Entry>::node_size(key_len))
}

/// Bytes per key with a deadline in the per-database deadline index (a B-tree entry of
/// `(deadline, hash) -> count` at about two-thirds occupancy).
pub const EXPIRE_INDEX_BYTES: usize = 40;

/// Bytes per bucket of a keyspace table (one pointer).
pub const BUCKET_BYTES: usize = std::mem::size_of::<usize>();

/// Bytes one key costs in the table: its node, its name and its value.
pub fn entry_bytes(key_len: usize, value: &Value) -> usize {
    node_bytes(key_len) + value.mem_usage()
}

/// Freeing a value costs about one deallocation per this many elements or nodes: values
/// whose [`Value::free_effort`] is above it are handed to the background freeing thread
/// when a lazy-free directive asks for it (Redis's `LAZYFREE_THRESHOLD`).
pub const LAZYFREE_THRESHOLD: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(alloc_size(1), 8);
        assert_eq!(alloc_size(64), 64);
        assert_eq!(alloc_size(65), 80);
        assert_eq!(alloc_size(100), 112);
        assert_eq!(alloc_size(128), 128);
        assert_eq!(alloc_size(129), 160);
        assert_eq!(alloc_size(1000), 1024);
        assert_eq!(alloc_size(1 << 20), 1 << 20);
        assert_eq!(alloc_size((16 << 20) + 1), (16 << 20) + 4096);
        for n in 1..5000 {
            let a = alloc_size(n);
            assert!(a >= n && a <= n + n / 4 + 8, "{n} -> {a}");
            assert!(alloc_size(a) == a, "{n} -> {a} is not a class");
        }
    }

    #[test]
    fn node_and_key_share_one_small_block() {
        // A 16-byte key and its node fit the 64-byte class (they took 80 + 16 before
        // the key moved into the node and the stored hash went away).
        assert_eq!(NODE_BYTES, 48);
        assert_eq!(node_bytes(0), 48);
        assert_eq!(node_bytes(16), 64);
        assert_eq!(node_bytes(17), 80);
        assert_eq!(node_bytes(32), 80);
        assert_eq!(node_bytes(33), 96);
        // Keys of 255 bytes and more keep their length in the node.
        assert_eq!(Dict::<Entry>::node_size(254), 48 + 254);
        assert_eq!(Dict::<Entry>::node_size(255), 48 + 8 + 255);
    }
}
