//! The PRNG behind the scripts' `math.random`: Redis replaces libc's `rand()` with its
//! own 48-bit linear congruential generator (`redisLrand48`, the `lrand48` recurrence),
//! so the same seed gives the same sequence on every platform.

/// `lrand48` state.
#[derive(Debug, Clone, Copy)]
pub struct Rand48 {
    x: u64,
}

const MASK: u64 = (1 << 48) - 1;
const A: u64 = 0x5_DEEC_E66D;
const C: u64 = 0xB;
/// `REDIS_LRAND48_MAX` (INT32_MAX).
const MAX: f64 = 2_147_483_647.0;

impl Default for Rand48 {
    /// The state before any `srand48` call.
    fn default() -> Rand48 {
        Rand48 {
            x: 0x1234_ABCD_330E,
        }
    }
}

impl Rand48 {
    /// `redisSrand48(seed)`.
    pub fn seed(&mut self, seed: i32) {
        self.x = (u64::from(seed as u32) << 16) | 0x330E;
    }

    /// `redisLrand48()`: the next 31-bit value.
    pub fn next_i32(&mut self) -> i32 {
        self.x = (A.wrapping_mul(self.x).wrapping_add(C)) & MASK;
        (self.x >> 17) as i32
    }

    /// A draw in [0, 1) as `math.random` computes it.
    pub fn next_f64(&mut self) -> f64 {
        f64::from(self.next_i32() % i32::MAX) / MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_matches_redis() {
        // Recorded from redis-server 7.0.15: a fresh server's first two draws, and
        // `math.randomseed(5)` followed by two draws.
        let mut r = Rand48::default();
        assert!(r.next_f64() < 1.0);
        assert_eq!((r.next_f64() * 100.0).floor() + 1.0, 85.0);
        r.seed(5);
        assert_eq!((r.next_f64() * 1000.0).floor() + 1.0, 525.0);
        assert_eq!(
            super::super::number::fmt_g(r.next_f64(), 14),
            "0.27285430173988"
        );
    }
}
