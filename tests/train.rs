//! The trainer: analytic gradients against finite differences, learning a known system
//! (the pendulum), determinism and refusals, and the ONNX export read back by ONNX
//! Runtime and by the official checker.
//!
//! The export tests need `bash models/setup.sh` (runtime and .venv); without it they FAIL
//! with that fix, they do not skip.

mod export;
mod gradient;
mod learning;

use handful::plant::pendulum;
use handful::train::Transitions;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// `rows` pendulum transitions from states and torques drawn uniformly over the
/// box θ ∈ [−π, π], θ̇ ∈ [−6, 6], u ∈ [−2, 2] (inside the ±8 rad/s speed clip, so the
/// dynamics are smooth), with Gaussian noise of
/// standard deviation `noise` added to the next state.
pub fn pendulum_transitions(rows: usize, noise: f64, seed: u64) -> Transitions {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise).expect("finite noise");
    let mut states = Array2::zeros((rows, 2));
    let mut actions = Array2::zeros((rows, 1));
    let mut next_states = Array2::zeros((rows, 2));
    for r in 0..rows {
        let s = [
            rng.random_range(-std::f64::consts::PI..std::f64::consts::PI),
            rng.random_range(-6.0..6.0),
        ];
        let u = [rng.random_range(-2.0..2.0)];
        let mut next = [0.0; 2];
        pendulum::transition(&s, &u, &mut next);
        for j in 0..2 {
            states[[r, j]] = s[j] as f32;
            next_states[[r, j]] = (next[j] + normal.sample(&mut rng)) as f32;
        }
        actions[[r, 0]] = u[0] as f32;
    }
    Transitions::new(states, actions, next_states).expect("valid transitions")
}
