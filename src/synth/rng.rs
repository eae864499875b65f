//! The synthetic environment's own random number generator, so that a cohort generated from a
//! seed never changes with a crate upgrade.
//!
//! xoshiro256** (Blackman & Vigna, 2018) seeded through SplitMix64; floats from the top 53 bits;
//! normals by Box–Muller (both values used, in a fixed order); Laplace by its inverse CDF. Streams
//! are derived from the seed and a name, so adding a split or resizing one never changes another.

/// SplitMix64: expands one 64-bit seed into well-mixed words (the seeding xoshiro's authors advise).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// FNV-1a of a stream name: a fixed, documented way to turn a name into a number.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// xoshiro256** with the samplers the generator needs.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    /// The second Box–Muller value, returned by the next `normal` call.
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator seeded from `seed` alone.
    pub fn new(seed: u64) -> Rng {
        let mut sm = SplitMix64::new(seed);
        let s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// The independent stream `name` of `seed` (e.g. `"world"`, `"split/internal"`).
    pub fn stream(seed: u64, name: &str) -> Rng {
        Rng::new(SplitMix64::new(seed ^ name_hash(name)).next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform on [0, 1), a multiple of 2⁻⁵³.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on the open interval (0, 1): the midpoint of a 2⁻⁵³ cell, never 0 or 1.
    pub fn open_uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift with rejection; `n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// `true` with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal by Box–Muller.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let r = (-2.0 * self.open_uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// Standardized Laplace (mean 0, variance 1: scale 1/√2) by the inverse CDF. Heavier tails
    /// than a normal, so the latent causes are non-Gaussian as PAPER.md asks.
    pub fn laplace(&mut self) -> f64 {
        let u = self.open_uniform() - 0.5;
        let b = std::f64::consts::FRAC_1_SQRT_2;
        -b * u.signum() * (1.0 - 2.0 * u.abs()).ln()
    }

    /// A vector of `dim` standard normals scaled to unit Euclidean norm: a uniform direction.
    pub fn unit_vector(&mut self, dim: usize) -> Vec<f64> {
        loop {
            let v: Vec<f64> = (0..dim).map(|_| self.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-12 {
                return v.into_iter().map(|x| x / norm).collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // Reference values of SplitMix64 seeded with 1234567 (from the published C code).
        let mut sm = SplitMix64::new(1_234_567);
        assert_eq!(sm.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(sm.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(7, "a").next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::stream(7, "a").next_u64(),
            Rng::stream(7, "b").next_u64()
        );
        assert_ne!(
            Rng::stream(7, "a").next_u64(),
            Rng::stream(8, "a").next_u64()
        );
    }

    #[test]
    fn samplers_have_the_documented_moments() {
        let mut r = Rng::new(3);
        let n = 200_000;
        for sampler in [Rng::normal as fn(&mut Rng) -> f64, Rng::laplace] {
            let xs: Vec<f64> = (0..n).map(|_| sampler(&mut r)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(mean.abs() < 0.01, "mean {mean}");
            assert!((var - 1.0).abs() < 0.02, "variance {var}");
        }
        let u: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!(r.below(1) == 0 && (0..1000).all(|_| r.below(7) < 7));
    }

    #[test]
    fn unit_vectors_have_unit_norm() {
        let v = Rng::new(1).unit_vector(5);
        let norm: f64 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-12);
    }
}
