//! Sampling action sequences into preallocated `P × H × A` buffers: PETS truncated
//! normals, iCEM coloured noise and uniform random shooting.
//!
//! Every draw comes from the caller's seeded RNG. Never allocates after
//! [`ColoredNoise::new`]; every written action lies inside its bounds.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Truncation of the PETS normal, in standard deviations.
const TRUNCATION_SIGMAS: f32 = 2.0;
/// Rejection tries before falling back to clamping (acceptance is 95 % per try).
const MAX_REJECTION_TRIES: usize = 32;

/// A standard normal draw truncated to `[−2, 2]`.
pub fn truncated_standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    for _ in 0..MAX_REJECTION_TRIES {
        let z: f32 = rng.sample(StandardNormal);
        if z.abs() <= TRUNCATION_SIGMAS {
            return z;
        }
    }
    0.0
}

/// PETS variance constraint: `min(var, (lb − mean)²/4, (ub − mean)²/4)` so that
/// `mean ± 2σ` stays inside `[lb, ub]`.
pub fn constrained_variance(mean: f32, var: f32, (low, high): (f32, f32)) -> f32 {
    let to_low = (mean - low) / TRUNCATION_SIGMAS;
    let to_high = (high - mean) / TRUNCATION_SIGMAS;
    var.min(to_low * to_low).min(to_high * to_high).max(0.0)
}

/// PETS CEM samples: `out[p, h, a] = mean[h, a] + σ·z`, `z` truncated at 2σ, with the
/// variance constrained per coordinate.
///
/// Shapes: `mean`, `var` `H × A` (flat), `out` `count × H × A` (flat), `bounds` `A`.
pub fn fill_truncated_normal(
    rng: &mut ChaCha8Rng,
    mean: &[f32],
    var: &[f32],
    bounds: &[(f32, f32)],
    out: &mut [f32],
) {
    let width = mean.len();
    let action_dim = bounds.len();
    for sequence in out.chunks_exact_mut(width) {
        for (index, slot) in sequence.iter_mut().enumerate() {
            let bound = bounds[index % action_dim];
            let std = constrained_variance(mean[index], var[index], bound).sqrt();
            let value = mean[index] + std * truncated_standard_normal(rng);
            *slot = value.clamp(bound.0, bound.1);
        }
    }
}

/// Uniform samples inside the bounds. Shapes: `out` `count × H × A` (flat), `bounds` `A`.
pub fn fill_uniform(rng: &mut ChaCha8Rng, bounds: &[(f32, f32)], out: &mut [f32]) {
    let action_dim = bounds.len();
    for (index, slot) in out.iter_mut().enumerate() {
        let (low, high) = bounds[index % action_dim];
        let unit: f32 = rng.random();
        *slot = (low + unit * (high - low)).clamp(low, high);
    }
}

/// 1/f^β noise along the horizon without an FFT: white noise through Kasdin's (1995)
/// fractional-integration filter `h₀ = 1, h_k = h_{k−1}·(k − 1 + β/2)/k`, each step
/// rescaled to unit marginal variance. β = 0 is white, β = 2 a random walk.
#[derive(Clone, Debug)]
pub struct ColoredNoise {
    /// Filter taps, `H`.
    taps: Vec<f32>,
    /// `1/sqrt(Σ_{k≤t} h_k²)` per step, `H`.
    inv_norm: Vec<f32>,
    /// White noise of one sequence and channel, `H`.
    white: Vec<f32>,
}

impl ColoredNoise {
    pub fn new(horizon: usize, beta: f32) -> Self {
        let mut taps = vec![0.0f32; horizon];
        let mut inv_norm = vec![0.0f32; horizon];
        let mut tap = 1.0f32;
        let mut energy = 0.0f32;
        for k in 0..horizon {
            if k > 0 {
                tap *= (k as f32 - 1.0 + beta / 2.0) / k as f32;
            }
            taps[k] = tap;
            energy += tap * tap;
            inv_norm[k] = 1.0 / energy.sqrt();
        }
        Self {
            taps,
            inv_norm,
            white: vec![0.0; horizon],
        }
    }

    /// iCEM samples: `out[p, h, a] = clamp(mean[h, a] + sqrt(var[h, a])·n[p, h, a])` with
    /// `n` unit-variance coloured noise along `h`.
    ///
    /// Shapes: `mean`, `var` `H × A` (flat), `out` `count × H × A` (flat), `bounds` `A`.
    pub fn fill(
        &mut self,
        rng: &mut ChaCha8Rng,
        mean: &[f32],
        var: &[f32],
        bounds: &[(f32, f32)],
        out: &mut [f32],
    ) {
        let action_dim = bounds.len();
        let horizon = self.taps.len();
        for sequence in out.chunks_exact_mut(horizon * action_dim) {
            for (channel, &(low, high)) in bounds.iter().enumerate() {
                for w in self.white.iter_mut() {
                    *w = rng.sample(StandardNormal);
                }
                for t in 0..horizon {
                    let filtered: f32 = (0..=t).map(|k| self.taps[k] * self.white[t - k]).sum();
                    let index = t * action_dim + channel;
                    let value =
                        mean[index] + var[index].max(0.0).sqrt() * filtered * self.inv_norm[t];
                    sequence[index] = value.clamp(low, high);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn colored_noise_has_unit_variance_and_beta_sets_correlation() {
        let horizon = 8;
        let count = 4000;
        let mean = vec![0.0; horizon];
        let var = vec![1.0; horizon];
        let bounds = [(-100.0, 100.0)];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let lag_one = |beta: f32, rng: &mut ChaCha8Rng| {
            let mut noise = ColoredNoise::new(horizon, beta);
            let mut out = vec![0.0; count * horizon];
            noise.fill(rng, &mean, &var, &bounds, &mut out);
            let last_var: f32 = out
                .chunks(horizon)
                .map(|s| s[horizon - 1].powi(2))
                .sum::<f32>()
                / count as f32;
            assert!((last_var - 1.0).abs() < 0.1, "variance {last_var}");
            out.chunks(horizon).map(|s| s[3] * s[4]).sum::<f32>() / count as f32
        };
        let white = lag_one(0.0, &mut rng);
        let brown = lag_one(2.0, &mut rng);
        assert!(white.abs() < 0.08, "white lag-1 correlation {white}");
        assert!(brown > 0.7, "brown lag-1 correlation {brown}");
    }
}
