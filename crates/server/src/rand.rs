//! Randomness for commands that pick members (SPOP, SRANDMEMBER, HRANDFIELD,
//! ZRANDMEMBER, ...): the engine draws none of its own, so the server hands it a generator.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest number of picks a negative-count random command serves
/// (`SRANDMEMBER s -9223372036854775807` would exhaust the machine in Redis 7.0);
/// beyond it Basalt answers `ERR value is out of range`.
pub const MAX_RANDOM_PICKS: u64 = 1 << 22;

static SEED: OnceLock<u64> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator for one command: a xorshift64* stream started from the process seed and a
/// per-command counter, so concurrent commands never share state and need no lock.
pub fn command_rng() -> impl FnMut() -> u64 {
    let seed = *SEED
        .get_or_init(|| crate::server::unix_us() ^ u64::from(std::process::id()).rotate_left(32));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = splitmix64(seed ^ splitmix64(n)) | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::command_rng;

    #[test]
    fn streams_differ_between_commands() {
        let mut a = command_rng();
        let mut b = command_rng();
        assert_ne!((a(), a()), (b(), b()));
    }
}
