//! The module's own deterministic random number generator.
//!
//! Bootstrap intervals are reported with their seed and must come out digit for digit the same on
//! every machine, thread count and crate upgrade. A dependency's RNG may change its output between
//! releases, so the generator lives here, in two small published algorithms:
//!
//! * **SplitMix64** (Steele, Lea & Flood 2014) turns a (seed, stream) pair into a 256-bit state;
//! * **xoshiro256\*\*** (Blackman & Vigna 2018) draws the numbers.
//!
//! Every bootstrap resample `b` gets its own stream, [`ResampleRng::for_stream`]`(seed, b)`, so a
//! resample's draws do not depend on which thread runs it or on how many resamples came before.

/// One step of SplitMix64: advances `state` and returns the mixed output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator seeded through SplitMix64; the stream of numbers is part of the
/// module's contract (changing it changes every reported bootstrap interval).
#[derive(Debug, Clone)]
pub struct ResampleRng {
    s: [u64; 4],
}

impl ResampleRng {
    /// Generator for `stream` (e.g. the resample index) under the user's `seed`.
    ///
    /// The seed is mixed once, then the stream index is mixed into it, so neighbouring seeds and
    /// neighbouring streams give unrelated states.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut sm = seed;
        let seed_key = splitmix64(&mut sm);
        let mut sm = stream ^ 0xD1B5_4A32_D192_ED03;
        let stream_key = splitmix64(&mut sm);
        let mut state = seed_key ^ stream_key.rotate_left(17);
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut state);
        }
        // SplitMix64 is a bijection of a counter, so four consecutive outputs are never all zero.
        debug_assert!(s.iter().any(|&w| w != 0));
        Self { s }
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

    /// Uniform `f64` in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
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
        let mut r = ResampleRng { s: [1, 2, 3, 4] };
        let expected = [11_520u64, 0, 1_509_978_240, 1_215_971_899_390_074_240];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = {
            let mut r = ResampleRng::for_stream(1, 0);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let a2: Vec<u64> = {
            let mut r = ResampleRng::for_stream(1, 0);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = ResampleRng::for_stream(1, 1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = ResampleRng::for_stream(2, 0);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = ResampleRng::for_stream(7, 3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            let v = r.below(7) as usize;
            seen[v] += 1;
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
        for _ in 0..1000 {
            let u = r.unit_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
