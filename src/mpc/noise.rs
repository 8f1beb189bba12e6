//! Fast seeded Gaussian noise for particle propagation: eight independent xoshiro128++
//! streams stepped side by side (structure of arrays, so the update vectorises) feeding
//! a branch-free Box–Muller transform with [`super::fastmath`].
//!
//! Deterministic: the same seed and the same sequence of `fill` lengths give the same
//! numbers. Never allocates (the state is inline), never panics.

use rand::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

use super::fastmath;

const LANES: usize = 8;

/// A standard-normal generator: `LANES` xoshiro128++ streams seeded by SplitMix64.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    s0: [u32; LANES],
    s1: [u32; LANES],
    s2: [u32; LANES],
    s3: [u32; LANES],
}

impl GaussianNoise {
    pub fn new(seed: u64) -> Self {
        let mut seeder = SplitMix64::seed_from_u64(seed);
        let mut lanes = [[0u32; LANES]; 4];
        for word in lanes.iter_mut().flatten() {
            *word = seeder.next_u32();
        }
        // An all-zero xoshiro state never leaves zero; one set bit per lane avoids it.
        for word in &mut lanes[0] {
            *word |= 1;
        }
        let [s0, s1, s2, s3] = lanes;
        Self { s0, s1, s2, s3 }
    }

    /// One xoshiro128++ step of every lane.
    // Indexing the four state arrays in lockstep is what lets the loop vectorise.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn next(&mut self) -> [u32; LANES] {
        let mut out = [0u32; LANES];
        for l in 0..LANES {
            let (s0, s1, s2, s3) = (self.s0[l], self.s1[l], self.s2[l], self.s3[l]);
            out[l] = s0.wrapping_add(s3).rotate_left(7).wrapping_add(s0);
            let t = s1 << 9;
            let s2 = s2 ^ s0;
            let s3 = s3 ^ s1;
            self.s1[l] = s1 ^ s2;
            self.s0[l] = s0 ^ s3;
            self.s2[l] = s2 ^ t;
            self.s3[l] = s3.rotate_left(11);
        }
        out
    }

    /// `2·LANES` standard normals: Box–Muller on pairs of 24-bit uniforms, the angle
    /// drawn as a quadrant (2 bits) plus an offset in `[−π/4, π/4)`.
    #[allow(clippy::needless_range_loop)] // lanes in lockstep, as in `next`
    #[inline(always)]
    fn block(&mut self, out: &mut [f32; 2 * LANES]) {
        let a = self.next();
        let b = self.next();
        let (first, second) = out.split_at_mut(LANES);
        for l in 0..LANES {
            // u ∈ (0, 1]: never 0, so ln is finite.
            let u = ((a[l] >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
            let radius = (-2.0 * fastmath::ln(u)).sqrt();
            let offset =
                ((b[l] >> 8) as f32 * (1.0 / 16_777_216.0) - 0.5) * std::f32::consts::FRAC_PI_2;
            let (s, c) = fastmath::sin_cos_reduced(offset);
            let (s, c) = fastmath::rotate_quadrant(s, c, (a[l] & 3) as i32);
            first[l] = radius * c;
            second[l] = radius * s;
        }
    }

    /// Fills `out` with independent standard normals.
    pub fn fill(&mut self, out: &mut [f32]) {
        let mut chunks = out.chunks_exact_mut(2 * LANES);
        for chunk in &mut chunks {
            let mut block = [0.0f32; 2 * LANES];
            self.block(&mut block);
            chunk.copy_from_slice(&block);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut block = [0.0f32; 2 * LANES];
            self.block(&mut block);
            rest.copy_from_slice(&block[..rest.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_tails_and_determinism() {
        let mut noise = GaussianNoise::new(5);
        let mut out = vec![0.0f32; 1_000_003];
        noise.fill(&mut out);
        let n = out.len() as f64;
        let mean = out.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = out.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n;
        let kurt = out.iter().map(|&x| f64::from(x).powi(4)).sum::<f64>() / n;
        let beyond_2 = out.iter().filter(|x| x.abs() > 2.0).count() as f64 / n;
        let lag1 = out.windows(2).map(|w| f64::from(w[0] * w[1])).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.005 && (var - 1.0).abs() < 0.005,
            "{mean} {var}"
        );
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        assert!((beyond_2 - 0.0455).abs() < 0.002, "P(|z| > 2) = {beyond_2}");
        assert!(lag1.abs() < 0.005, "lag-1 correlation {lag1}");
        assert!(out.iter().all(|x| x.is_finite()));
        let again = |seed| {
            let mut g = GaussianNoise::new(seed);
            let mut v = [0.0f32; 37];
            g.fill(&mut v);
            v
        };
        assert_eq!(again(9), again(9));
        assert_ne!(again(9), again(10));
    }
}
