//! Thresholds (defaults as redis-server 7.0.15 reports them) that switch collections between their compact and large encodings,
//! mirroring Redis's `*-max-listpack-*` / `set-max-intset-entries` directives.
//!
//! The server owns the configured values and passes a copy to every write, so the
//! engine never reads configuration on its own.

/// Encoding thresholds (Redis 7.0 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingLimits {
    /// `hash-max-listpack-entries`
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`
    pub hash_max_listpack_value: usize,
    /// `set-max-intset-entries`
    pub set_max_intset_entries: usize,
    /// `set-max-listpack-entries` (a Redis 7.2 directive; Basalt defaults it to 0, which
    /// keeps 7.0's behaviour: small non-integer sets use the hashtable encoding)
    pub set_max_listpack_entries: usize,
    /// `set-max-listpack-value`
    pub set_max_listpack_value: usize,
    /// `zset-max-listpack-entries`
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size` (negative: size class -1..-5 = 4..64 KiB per node)
    pub list_max_listpack_size: i64,
    /// `list-compress-depth`
    pub list_compress_depth: i64,
    /// `stream-node-max-bytes`: a stream node (Redis's listpack) is closed once its
    /// listpack size plus the next entry's field and value bytes would reach this
    /// (0: no limit but Redis's 1 GiB).
    pub stream_node_max_bytes: u64,
    /// `stream-node-max-entries`: entries (deleted ones included) per stream node
    /// (0: no limit).
    pub stream_node_max_entries: u64,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 0,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}
