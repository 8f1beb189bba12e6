//! Uniformly random actions: PETS's first trial when there are no demonstrations.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::control::{ControlError, Controller, Observation};

/// Draws each action uniformly within the limits from a seeded RNG. Allocation-free.
pub struct RandomController {
    limits: Vec<(f32, f32)>,
    rng: ChaCha8Rng,
}

impl RandomController {
    pub fn new(limits: Vec<(f32, f32)>, seed: u64) -> Self {
        Self {
            limits,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Controller for RandomController {
    fn act(&mut self, _obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        for (out, &(lo, hi)) in action.iter_mut().zip(&self.limits) {
            *out = self.rng.random_range(lo..=hi);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "random"
    }
}
