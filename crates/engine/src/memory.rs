//! Memory accounting: what one key costs, in O(1), as the allocator will round it.
//!
//! The keyspace keeps a running byte count per database slice of every shard (node, key
//! bytes, value) and updates it on every insert, removal and mutable access (see
//! `keyspace::Guard`), so `MEMORY USAGE`, `MEMORY STATS` and the eviction loop read exact
//! numbers without walking anything. The numbers are estimates of the allocator's view:
//! each heap block is rounded up to mimalloc's size classes (8 and 16 bytes, then
//! sixteen-byte steps up to 64, then four classes per power of two: blocks are 16-byte
//! aligned from 16 bytes up), which are also jemalloc's, except keyspace nodes served by
//! the node slab at their exact size (`slab.rs`).

use crate::dict;
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
/// assert_eq!(alloc_size(9), 16);
/// assert_eq!(alloc_size(17), 32);
/// assert_eq!(alloc_size(40), 48);
/// assert_eq!(alloc_size(80), 80);
/// assert_eq!(alloc_size(81), 96);
/// ```
pub const fn alloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if n <= 8 {
        return 8;
    }
    if n <= 64 {
        return (n + 15) & !15;
    }
    if n > 16 << 20 {
        return (n + 4095) & !4095;
    }
    // Four classes per doubling: round up to a quarter of the power of two below `n`.
    let top = usize::BITS - 1 - (n - 1).leading_zeros();
    let step = 1usize << (top - 2);
    (n + step - 1) & !(step - 1)
}

/// Bytes of every keyspace table node besides its deadline, value and key (chain link
/// and header: kind, deadline flag, LRU clock, eviction word); see `dict.rs`.
pub const NODE_BYTES: usize = dict::NODE_HEADER_BYTES;

/// Bytes a deadline adds to a key's node.
pub const DEADLINE_BYTES: usize = 8;

/// Bytes of the single block holding one key's table node, name and (short) value: an
/// integer, a string of up to 44 bytes or a `raw` one of up to 255 bytes (see
/// `dict::raw_inline`) lives in the block, any other value as a 24-byte `Value` whose
/// heap parts come on top (see [`entry_bytes`]).
///
/// Blocks of 65..=256 bytes that fall between the allocator's size classes come from the
/// node slab at their size rounded up to 8 bytes ([`crate::slab::block_bytes`]).
///
/// ```
/// use basalt_engine::memory::node_bytes;
/// // A 16-byte key with a 32-byte string: one 64-byte block; with a deadline, a 72-byte
/// // slab block (an 80-byte allocator class otherwise).
/// assert_eq!(node_bytes(16, 32, false), 64);
/// assert_eq!(node_bytes(16, 32, true), 72);
/// ```
pub const fn node_bytes(key_len: usize, payload: usize, ttl: bool) -> usize {
    crate::slab::block_bytes(dict::block_size(ttl, payload, key_len))
}

/// Bytes per key with a deadline in the per-database deadline index (`expires.rs`: an
/// 4-byte entry in its slot's ring, with the ring's spare capacity), besides
/// [`EXPIRE_SLOT_BYTES`] per slot of deadlines.
pub const EXPIRE_INDEX_BYTES: usize = crate::expires::ENTRY_BYTES;

/// Bytes per slot (1,024 ms of deadlines) of the deadline index.
pub const EXPIRE_SLOT_BYTES: usize = crate::expires::SLOT_BYTES;

/// Bytes per bucket of a keyspace table (one pointer).
pub const BUCKET_BYTES: usize = std::mem::size_of::<usize>();

/// Bytes one key without a deadline costs in the table: its node, its name and its
/// value (the same as [`entry_bytes_with`] without a deadline).
pub fn entry_bytes(key_len: usize, value: &Value) -> usize {
    entry_bytes_with(key_len, value, false)
}

/// Bytes one key costs in the table with or without a deadline: its block
/// ([`node_bytes`]) and, for values not kept in the block, what they hold outside it.
pub fn entry_bytes_with(key_len: usize, value: &Value, ttl: bool) -> usize {
    let heap = if dict::stored_whole(value, key_len, ttl) {
        value.mem_usage()
    } else {
        0
    };
    node_bytes(key_len, dict::payload_size(value, key_len, ttl), ttl) + heap
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
        assert_eq!(alloc_size(24), 32);
        assert_eq!(alloc_size(56), 64);
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
            assert!(a >= n && a <= n + n / 4 + 15, "{n} -> {a}");
            assert!(alloc_size(a) == a, "{n} -> {a} is not a class");
        }
    }

    #[test]
    fn node_key_and_short_value_share_one_small_block() {
        use crate::value::StrValue;
        assert_eq!(NODE_BYTES, 16);
        // The issue's shape: a 16-byte key and a 32-byte string, one 64-byte block.
        let v32 = Value::Str(StrValue::from_bytes(&[b'v'; 32]));
        assert_eq!(entry_bytes(16, &v32), 64);
        assert_eq!(entry_bytes_with(16, &v32, true), 72);
        // Integers take 8 bytes in the block; 44-byte strings are the longest inline.
        // (16 + 8 + 16 = 40 bytes: the 48-byte class.)
        assert_eq!(entry_bytes(16, &Value::Str(StrValue::Int(7))), 48);
        let v44 = Value::Str(StrValue::from_bytes(&[b'v'; 44]));
        assert_eq!(entry_bytes(16, &v44), 80);
        // Longer strings are `raw`: up to 255 bytes in the block after a length byte
        // (16 + 1 + 45 + 16 = 78: the 80-byte class), longer ones a 24-byte Value in the
        // block and the buffer outside.
        let v45 = Value::Str(StrValue::from_bytes(&[b'v'; 45]));
        assert_eq!(entry_bytes(16, &v45), 80);
        let v100 = Value::Str(StrValue::from_bytes(&[b'v'; 100]));
        assert_eq!(entry_bytes(10, &v100), 128);
        let v255 = Value::Str(StrValue::from_bytes(&[b'v'; 255]));
        assert_eq!(entry_bytes(16, &v255), alloc_size(16 + 1 + 255 + 16));
        let v256 = Value::Str(StrValue::from_bytes(&[b'v'; 256]));
        assert_eq!(entry_bytes(16, &v256), 64 + alloc_size(256));
        // A 24-byte inline string is not confused with a whole value.
        let v24 = Value::Str(StrValue::from_bytes(&[b'v'; 24]));
        assert_eq!(entry_bytes(16, &v24), 64);
        // Keys of 255 bytes and more keep their length in the node.
        assert_eq!(dict::block_size(false, 0, 254), 16 + 254);
        assert_eq!(dict::block_size(false, 0, 255), 16 + 8 + 255);
    }
}
