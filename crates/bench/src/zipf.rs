//! Zipf-distributed ranks by rejection-inversion (W. Hörmann and G. Derflinger, "Rejection-
//! inversion to generate variates from monotone discrete distributions", 1996).
//!
//! Rank k in 1..=n has probability proportional to k^-s. The method samples a continuous
//! envelope by inverting its integral and accepts in O(1) expected time for any n and any
//! exponent s > 0, without tables, so a 10M-key keyspace costs nothing to set up.

/// A sampler of Zipf ranks `1..=n` with exponent `s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    threshold: f64,
}

impl Zipf {
    /// A sampler over `1..=n` (n >= 1) with exponent `s` (finite, > 0).
    pub fn new(n: u64, s: f64) -> Result<Zipf, String> {
        if n == 0 {
            return Err("zipf: the keyspace must not be empty".into());
        }
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("zipf: exponent must be a positive number, got {s}"));
        }
        let mut z = Zipf {
            n,
            s,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            threshold: 0.0,
        };
        // Integral of the envelope from the left edge of rank 1's cell, minus rank 1's mass,
        // so that a uniform draw below it always lands on rank 1.
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n as f64 + 0.5);
        // Points whose distance to their rank is below this threshold are accepted without
        // evaluating the exact test (the "squeeze" of the paper).
        z.threshold = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        Ok(z)
    }

    /// Draws one rank in `1..=n` from a uniform source `u01` in `[0, 1)`.
    #[inline]
    pub fn sample(&self, mut u01: impl FnMut() -> f64) -> u64 {
        loop {
            let u = self.h_integral_n + u01() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            // Round to the nearest rank; the float to int cast saturates, the clamp keeps
            // rounding noise at either end inside the support.
            let k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.threshold || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k;
            }
        }
    }

    /// The unnormalised mass function h(x) = x^-s.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// H(x) = integral of h from 1 to x = (x^(1-s) - 1) / (1-s), or ln x when s = 1,
    /// written so that it stays accurate as s approaches 1.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.s) * log_x) * log_x
    }

    /// The inverse of [`Self::h_integral`].
    fn h_integral_inverse(&self, y: f64) -> f64 {
        // t > -1 always holds mathematically; rounding can push it past, so clamp.
        let t = (y * (1.0 - self.s)).max(-1.0 + 1e-15);
        (ln1p_over_x(t) * y).exp()
    }
}

/// (e^x - 1) / x, continuous at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0)
    }
}

/// ln(1 + x) / x, continuous at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x / 3.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Exact probabilities of ranks 1..=n.
    fn pmf(n: u64, s: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = w.iter().sum();
        w.into_iter().map(|x| x / total).collect()
    }

    /// Pearson's chi-square statistic of `samples` draws against the exact pmf, with the
    /// first 200 ranks as their own bins and the tail grouped into bins of 100 ranks, plus
    /// the degrees of freedom.
    fn chi_square(n: u64, s: f64, samples: usize, seed: u64) -> (f64, usize) {
        let z = Zipf::new(n, s).unwrap();
        let mut rng = Rng::new(seed);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            let k = z.sample(|| rng.next_f64());
            assert!((1..=n).contains(&k), "rank {k} outside 1..={n}");
            counts[(k - 1) as usize] += 1;
        }
        let p = pmf(n, s);
        let mut bins: Vec<(f64, f64)> = Vec::new(); // (observed, expected)
        let head = 200.min(n as usize);
        for i in 0..head {
            bins.push((counts[i] as f64, p[i] * samples as f64));
        }
        for chunk_start in (head..n as usize).step_by(100) {
            let end = (chunk_start + 100).min(n as usize);
            let obs: u64 = counts[chunk_start..end].iter().sum();
            let exp: f64 = p[chunk_start..end].iter().sum::<f64>() * samples as f64;
            bins.push((obs as f64, exp));
        }
        let stat = bins.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
        (stat, bins.len() - 1)
    }

    /// Upper 0.1% critical value of chi-square with `df` degrees of freedom
    /// (Wilson-Hilferty approximation; z = 3.09 for p = 0.001).
    fn critical(df: usize) -> f64 {
        let k = df as f64;
        let a = 2.0 / (9.0 * k);
        k * (1.0 - a + 3.09 * a.sqrt()).powi(3)
    }

    #[test]
    fn matches_the_zipf_distribution_for_several_exponents() {
        for (i, s) in [0.5, 0.8, 0.99, 1.0, 1.2, 2.0].into_iter().enumerate() {
            let (stat, df) = chi_square(1000, s, 400_000, 42 + i as u64);
            assert!(
                stat < critical(df),
                "s={s}: chi2 {stat:.1} >= {:.1} (df {df})",
                critical(df)
            );
        }
    }

    #[test]
    fn the_test_detects_a_wrong_exponent() {
        // Draws with s = 0.9 judged against the pmf of s = 0.99 must fail: this shows the
        // chi-square test above has the power to catch a wrong sampler.
        let n = 1000;
        let z = Zipf::new(n, 0.9).unwrap();
        let mut rng = Rng::new(9);
        let samples = 400_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            counts[(z.sample(|| rng.next_f64()) - 1) as usize] += 1;
        }
        let p = pmf(n, 0.99);
        let stat: f64 = (0..200)
            .map(|i| {
                let e = p[i] * samples as f64;
                (counts[i] as f64 - e).powi(2) / e
            })
            .sum();
        assert!(stat > critical(199), "chi2 {stat:.1} unexpectedly small");
    }

    #[test]
    fn top_ranks_of_a_large_keyspace_match_theory() {
        // 10M ranks, as in scenario S5: compare the top-5 frequencies with the exact ones.
        let n = 10_000_000u64;
        let s = 0.99;
        let z = Zipf::new(n, s).unwrap();
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        let mut rng = Rng::new(5);
        let samples = 1_000_000;
        let mut top = [0u64; 5];
        for _ in 0..samples {
            let k = z.sample(|| rng.next_f64());
            assert!((1..=n).contains(&k));
            if k <= 5 {
                top[(k - 1) as usize] += 1;
            }
        }
        for (i, &c) in top.iter().enumerate() {
            let p = ((i + 1) as f64).powf(-s) / norm;
            let expected = p * samples as f64;
            let sd = (samples as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (c as f64 - expected).abs() < 5.0 * sd,
                "rank {}: {c} vs {expected:.0} ± {sd:.0}",
                i + 1
            );
        }
    }

    #[test]
    fn single_rank_and_bad_parameters() {
        let z = Zipf::new(1, 0.99).unwrap();
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            assert_eq!(z.sample(|| rng.next_f64()), 1);
        }
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(10, 0.0).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }
}
