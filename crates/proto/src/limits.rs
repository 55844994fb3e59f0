//! The named limits the request decoder enforces, with Redis 7.0's defaults.
//!
//! They exist so a client cannot make the server allocate or scan without bound; the server
//! maps them to its config directives (`proto-max-bulk-len`, ...) and may change them at run
//! time with [`crate::RequestDecoder::set_limits`].

/// Redis's `PROTO_INLINE_MAX_SIZE`: longest inline request or `*N`/`$N` line.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;

/// Redis's `PROTO_MBULK_BIG_ARG`: from this bulk length on, the decoder reports through
/// [`crate::RequestDecoder::wanted_capacity`] how much the read buffer should grow.
pub const PROTO_MBULK_BIG_ARG: usize = 32 * 1024;

/// Limits on what one client request may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk argument (`proto-max-bulk-len`), default 512 MiB.
    pub max_bulk_len: u64,
    /// Largest argument count of a multibulk request, default `i32::MAX` as in Redis 7.
    pub max_multibulk_len: u64,
    /// Longest inline request and longest `*N`/`$N` line, default 64 KiB
    /// ([`PROTO_INLINE_MAX_SIZE`]).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as u64,
            max_inline_len: PROTO_INLINE_MAX_SIZE,
        }
    }
}
