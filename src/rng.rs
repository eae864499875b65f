//! The crate's one random number generator: every draw of the synthetic environment, of model
//! training (initial weights, shuffles, masks, dropout, validation splits) and of the bootstrap.
//!
//! Results are reported with their seed and must come out bit for bit the same on every machine,
//! thread count and crate upgrade, and a dependency's RNG may change its output between releases,
//! so the generator lives here, in two small published algorithms:
//!
//! * **SplitMix64** (Steele, Lea & Flood 2014) turns a seed and a stream into a 256-bit state;
//! * **xoshiro256\*\*** (Blackman & Vigna 2018) draws the numbers.
//!
//! Streams are independent: [`Rng::stream`]`(seed, name)` for named purposes (`"world"`,
//! `"split/internal"`, `"train-shuffle"`), [`Rng::indexed`]`(seed, b)` for numbered ones (bootstrap
//! resample `b`), so adding a split, a model or a resample never changes the draws of another.
//! Floats come from the top 53 bits, normals from Box–Muller (both values used, in a fixed order),
//! Laplace draws from the inverse CDF, bounded integers from Lemire's unbiased multiply-shift.

/// One step of SplitMix64: advances `state` and returns the mixed output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a stream name: a fixed, documented way to turn a name into a number.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// xoshiro256** with the samplers the crate needs. Its output for a given seed and stream is part
/// of the crate's contract: changing it changes every synthetic cohort, weight and interval.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    /// The second Box–Muller value, returned by the next `normal` call.
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator whose state is four SplitMix64 outputs from `seed`.
    pub fn from_seed(seed: u64) -> Rng {
        let mut state = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut state);
        }
        // SplitMix64 is a bijection of a counter, so four consecutive outputs are never all zero.
        debug_assert!(s.iter().any(|&w| w != 0));
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// The independent stream `name` of `seed` (e.g. `"world"`, `"split/internal"`).
    pub fn stream(seed: u64, name: &str) -> Rng {
        let mut state = seed ^ name_hash(name);
        Rng::from_seed(splitmix64(&mut state))
    }

    /// The independent stream number `index` of `seed` (e.g. a bootstrap resample).
    ///
    /// The seed is mixed once, then the index is mixed into it, so neighbouring seeds and
    /// neighbouring indices give unrelated states.
    pub fn indexed(seed: u64, index: u64) -> Rng {
        let mut sm = seed;
        let seed_key = splitmix64(&mut sm);
        let mut sm = index ^ 0xD1B5_4A32_D192_ED03;
        let index_key = splitmix64(&mut sm);
        Rng::from_seed(seed_key ^ index_key.rotate_left(17))
    }

    /// Next 64 uniformly distributed bits.
    #[inline]
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
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on the open interval (0, 1): the midpoint of a 2⁻⁵³ cell, never 0 or 1.
    pub fn open_uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), exactly unbiased (Lemire 2019: multiply, reject the
    /// rare low products that would favour some values).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Calls `take` with `count` uniform integers in `0..n` (`n > 0`): the bootstrap's draws.
    ///
    /// Each 64-bit output supplies two 32-bit words, high half first; a word `w` becomes
    /// `(w·n) >> 32` unless its low product bits fall below `2^32 mod n`, in which case it is
    /// rejected (Lemire 2019), so every value is exactly equally likely. A call starts on a fresh
    /// 64-bit output and discards an unused final half. Half the generator calls of [`Self::below`].
    #[inline]
    pub fn draw_below(&mut self, n: u32, count: usize, mut take: impl FnMut(u32)) {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        let mut remaining = count;
        while remaining > 0 {
            let x = self.next_u64();
            for word in [(x >> 32) as u32, x as u32] {
                if remaining == 0 {
                    break;
                }
                let m = u64::from(word) * u64::from(n);
                if (m as u32) >= threshold {
                    take((m >> 32) as u32);
                    remaining -= 1;
                }
            }
        }
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

    /// Normal with standard deviation `std`, truncated to ±2 std (I-JEPA's weight init).
    pub fn trunc_normal(&mut self, std: f64) -> f32 {
        loop {
            let z = self.normal();
            if z.abs() <= 2.0 {
                return (z * std) as f32;
            }
        }
    }

    /// Standardized Laplace (mean 0, variance 1: scale 1/√2) by the inverse CDF. Heavier tails
    /// than a normal, so the synthetic latent causes are non-Gaussian (docs/study.md, "The
    /// synthetic environment").
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

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.index(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_output() {
        // Reference values of SplitMix64 from seed 1234567 (from the authors' C code).
        let mut s = 1_234_567u64;
        let expected = [
            6_457_827_717_110_365_317u64,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for e in expected {
            assert_eq!(splitmix64(&mut s), e);
        }
    }

    #[test]
    fn xoshiro256starstar_matches_reference_output() {
        // State 1, 2, 3, 4: first outputs of the reference C implementation.
        let mut r = Rng {
            s: [1, 2, 3, 4],
            spare_normal: None,
        };
        let expected = [11_520u64, 0, 1_509_978_240, 1_215_971_899_390_074_240];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let first = |mut r: Rng| -> Vec<u64> { (0..4).map(|_| r.next_u64()).collect() };
        assert_eq!(first(Rng::stream(7, "a")), first(Rng::stream(7, "a")));
        assert_ne!(first(Rng::stream(7, "a")), first(Rng::stream(7, "b")));
        assert_ne!(first(Rng::stream(7, "a")), first(Rng::stream(8, "a")));
        assert_eq!(first(Rng::indexed(1, 0)), first(Rng::indexed(1, 0)));
        assert_ne!(first(Rng::indexed(1, 0)), first(Rng::indexed(1, 1)));
        assert_ne!(first(Rng::indexed(1, 0)), first(Rng::indexed(2, 0)));
    }

    #[test]
    fn bounded_integers_stay_in_range_and_cover_it() {
        let mut r = Rng::indexed(7, 3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[r.index(7)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
        let mut seen = [0usize; 5];
        r.draw_below(5, 5000, |v| seen[v as usize] += 1);
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
        // n = 3·2^30: a third of all words are rejected, the rest map uniformly.
        let mut hits = [0usize; 3];
        let mut drawn = 0;
        r.draw_below(3 << 30, 3000, |v| {
            hits[(v >> 30) as usize] += 1;
            drawn += 1;
        });
        assert_eq!(drawn, 3000);
        assert!(hits.iter().all(|&c| c > 850 && c < 1150), "{hits:?}");
        assert!(r.below(1) == 0);
    }

    #[test]
    fn samplers_have_the_documented_moments() {
        let mut r = Rng::from_seed(3);
        let n = 200_000;
        for sampler in [Rng::normal as fn(&mut Rng) -> f64, Rng::laplace] {
            let xs: Vec<f64> = (0..n).map(|_| sampler(&mut r)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(mean.abs() < 0.01, "mean {mean}");
            assert!((var - 1.0).abs() < 0.02, "variance {var}");
        }
        assert!((0..n).all(|_| (0.0..1.0).contains(&r.uniform())));
        assert!((0..1000).all(|_| r.trunc_normal(0.02).abs() <= 0.04));
        let v = r.unit_vector(5);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..50).collect();
        Rng::stream(1, "shuffle").shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
