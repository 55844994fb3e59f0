//! Key choice: which key index in `[0, keyspace)` the next request touches, and how an index
//! is spelled (`<prefix><n>`, optionally zero-padded).
//!
//! Zipf ranks are scrambled through a keyed bijection so the hot keys are spread over the
//! keyspace instead of being `key:0`, `key:1`, ... (which would all sit in neighbouring
//! hash buckets of some servers and flatter them).

use crate::rng::Rng;
use crate::zipf::Zipf;

/// How keys are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPattern {
    /// Every key equally likely.
    Uniform,
    /// Zipf with the given exponent: the k-th most popular key has weight k^-alpha.
    Zipf(f64),
    /// Each connection walks its own stripe of the keyspace in order; together the
    /// connections cover every key once before any repeats.
    Sequential,
    /// Normal around the middle of the keyspace, standard deviation keyspace/6, clamped.
    Gaussian,
}

impl std::str::FromStr for KeyPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "uniform" | "random" => Ok(KeyPattern::Uniform),
            "sequential" | "seq" => Ok(KeyPattern::Sequential),
            "gaussian" | "normal" => Ok(KeyPattern::Gaussian),
            _ => {
                if let Some(a) = lower.strip_prefix("zipf:") {
                    let alpha: f64 = a
                        .parse()
                        .map_err(|_| format!("bad zipf exponent {a:?} (expected zipf:0.99)"))?;
                    if !(alpha.is_finite() && alpha > 0.0) {
                        return Err(format!("zipf exponent must be > 0, got {alpha}"));
                    }
                    Ok(KeyPattern::Zipf(alpha))
                } else {
                    Err(format!(
                        "unknown key pattern {s:?} (uniform, zipf:ALPHA, sequential, gaussian)"
                    ))
                }
            }
        }
    }
}

impl std::fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPattern::Uniform => write!(f, "uniform"),
            KeyPattern::Zipf(a) => write!(f, "zipf:{a}"),
            KeyPattern::Sequential => write!(f, "sequential"),
            KeyPattern::Gaussian => write!(f, "gaussian"),
        }
    }
}

/// A keyed permutation of `[0, n)`: a bijection on the smallest power of two covering n,
/// restricted to `[0, n)` by cycle walking (re-applying it until the value falls inside).
#[derive(Debug, Clone)]
pub struct Scramble {
    n: u64,
    bits: u32,
    mask: u64,
    key: u64,
}

impl Scramble {
    /// A permutation of `[0, n)` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Scramble {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(1);
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        Scramble {
            n,
            bits,
            mask,
            key: crate::rng::SplitMix64::new(seed).next_u64(),
        }
    }

    /// One round of a bijection on `bits`-bit integers: xor with a key, multiply by an odd
    /// constant (invertible modulo 2^bits) and xor-shift (invertible), all masked.
    fn round(&self, mut x: u64) -> u64 {
        let shift = self.bits.div_ceil(2).max(1);
        for r in 0..3u64 {
            x ^= self.key.rotate_left(r as u32 * 21) & self.mask;
            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1) & self.mask;
            x ^= x >> shift;
        }
        x
    }

    /// The image of `i < n`.
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = self.round(i);
        // The domain is at most twice n, so this loop runs twice on average.
        while x >= self.n {
            x = self.round(x);
        }
        x
    }
}

/// Draws key indexes for one connection.
#[derive(Debug, Clone)]
pub struct KeyGen {
    keyspace: u64,
    kind: KeyKind,
}

#[derive(Debug, Clone)]
enum KeyKind {
    Uniform,
    Zipf(Zipf, Scramble),
    Sequential { next: u64, stride: u64 },
    Gaussian,
}

impl KeyGen {
    /// A generator for connection `conn` of `conns` over `[0, keyspace)`.
    pub fn new(
        pattern: &KeyPattern,
        keyspace: u64,
        seed: u64,
        conn: u64,
        conns: u64,
    ) -> Result<KeyGen, String> {
        if keyspace == 0 {
            return Err("the keyspace must hold at least one key".into());
        }
        let kind = match pattern {
            KeyPattern::Uniform => KeyKind::Uniform,
            KeyPattern::Zipf(a) => {
                KeyKind::Zipf(Zipf::new(keyspace, *a)?, Scramble::new(keyspace, seed))
            }
            KeyPattern::Sequential => KeyKind::Sequential {
                next: conn % keyspace,
                stride: conns.max(1),
            },
            KeyPattern::Gaussian => KeyKind::Gaussian,
        };
        Ok(KeyGen { keyspace, kind })
    }

    /// The next key index.
    #[inline]
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        match &mut self.kind {
            KeyKind::Uniform => rng.below(self.keyspace),
            KeyKind::Zipf(z, scramble) => scramble.apply(z.sample(|| rng.next_f64()) - 1),
            KeyKind::Sequential { next, stride } => {
                let k = *next;
                *next += *stride;
                if *next >= self.keyspace {
                    *next %= self.keyspace;
                }
                k
            }
            KeyKind::Gaussian => {
                let n = self.keyspace as f64;
                let x = n / 2.0 + rng.normal() * n / 6.0;
                (x.max(0.0) as u64).min(self.keyspace - 1)
            }
        }
    }
}

/// Writes `<prefix><index>` into `out` (cleared first), the index zero-padded to `pad`
/// digits.
#[inline]
pub fn format_key(out: &mut Vec<u8>, prefix: &[u8], index: u64, pad: usize) {
    out.clear();
    out.extend_from_slice(prefix);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = index;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    for _ in len..pad {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse() {
        assert_eq!("uniform".parse::<KeyPattern>(), Ok(KeyPattern::Uniform));
        assert_eq!(
            "ZIPF:0.99".parse::<KeyPattern>(),
            Ok(KeyPattern::Zipf(0.99))
        );
        assert_eq!(
            "sequential".parse::<KeyPattern>(),
            Ok(KeyPattern::Sequential)
        );
        assert_eq!("gaussian".parse::<KeyPattern>(), Ok(KeyPattern::Gaussian));
        assert!("zipf:-1".parse::<KeyPattern>().is_err());
        assert!("zipf:x".parse::<KeyPattern>().is_err());
        assert!("lognormal".parse::<KeyPattern>().is_err());
    }

    #[test]
    fn scramble_is_a_permutation() {
        for n in [1u64, 2, 3, 7, 1000, 1024, 1025, 65_537] {
            let s = Scramble::new(n, 11);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = s.apply(i);
                assert!(j < n);
                assert!(!seen[j as usize], "n={n}: {j} hit twice");
                seen[j as usize] = true;
            }
        }
    }

    #[test]
    fn scramble_spreads_neighbours() {
        // The ten hottest Zipf ranks must not map to ten adjacent keys.
        let s = Scramble::new(1_000_000, 3);
        let mut img: Vec<u64> = (0..10).map(|i| s.apply(i)).collect();
        img.sort_unstable();
        assert!(img[9] - img[0] > 1000, "{img:?}");
    }

    #[test]
    fn sequential_stripes_cover_the_keyspace_once() {
        let conns = 3;
        let n = 10;
        let mut rng = Rng::new(0);
        let mut seen = vec![0; n as usize];
        for c in 0..conns {
            let mut g = KeyGen::new(&KeyPattern::Sequential, n, 0, c, conns).unwrap();
            // Each connection's share of one pass over the keyspace.
            let share = n / conns + u64::from(c < n % conns);
            for _ in 0..share {
                seen[g.next(&mut rng) as usize] += 1;
            }
        }
        assert_eq!(seen, vec![1; n as usize]);
    }

    #[test]
    fn gaussian_is_centered_and_clamped() {
        let n = 1000;
        let mut g = KeyGen::new(&KeyPattern::Gaussian, n, 0, 0, 1).unwrap();
        let mut rng = Rng::new(4);
        let mut sum = 0u64;
        let draws = 50_000;
        let mut within_one_sd = 0;
        for _ in 0..draws {
            let k = g.next(&mut rng);
            assert!(k < n);
            sum += k;
            if (334..=666).contains(&k) {
                within_one_sd += 1;
            }
        }
        let mean = sum as f64 / draws as f64;
        assert!((mean - 500.0).abs() < 5.0, "mean {mean}");
        // About 68% of a normal distribution lies within one standard deviation.
        let frac = within_one_sd as f64 / draws as f64;
        assert!((0.66..0.70).contains(&frac), "{frac}");
    }

    #[test]
    fn zipf_keys_are_in_range_and_skewed() {
        let n = 10_000;
        let mut g = KeyGen::new(&KeyPattern::Zipf(0.99), n, 8, 0, 1).unwrap();
        let mut rng = Rng::new(8);
        let mut counts = vec![0u32; n as usize];
        for _ in 0..100_000 {
            counts[g.next(&mut rng) as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Under Zipf 0.99 over 10k keys the hottest key takes about 10% of the draws;
        // under a uniform choice it would take about 0.03%.
        assert!(counts[0] > 8_000, "hottest key drawn {} times", counts[0]);
    }

    #[test]
    fn keys_are_formatted_with_padding() {
        let mut out = Vec::new();
        format_key(&mut out, b"key:", 42, 0);
        assert_eq!(out, b"key:42");
        format_key(&mut out, b"key:", 42, 6);
        assert_eq!(out, b"key:000042");
        format_key(&mut out, b"", 0, 0);
        assert_eq!(out, b"0");
        format_key(&mut out, b"k", u64::MAX, 3);
        assert_eq!(out, format!("k{}", u64::MAX).as_bytes());
    }
}
