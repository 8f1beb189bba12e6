//! The simulated sensors between the plant and the firmware: a delay line of whole
//! control steps (sensor latency) and additive Gaussian noise.
//!
//! Owns preallocated buffers only: `record` and `read` never allocate. Noise is drawn
//! from the simulator's one seeded RNG, one draw per channel per read, so runs repeat
//! exactly from their seed.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A delay line of `latency_steps + 1` state samples plus noise.
#[derive(Debug)]
pub struct Sensor {
    dim: usize,
    /// `slots × dim` samples; slot `oldest` is the one the firmware reads.
    ring: Vec<f64>,
    /// How many values each slot holds (a plant may report the wrong length).
    lens: Vec<usize>,
    oldest: usize,
    noise: Option<Normal<f64>>,
    out: Vec<f32>,
}

impl Sensor {
    /// `dim` state channels, samples delayed by `latency_steps` control steps, noise of
    /// standard deviation `noise_std` (0: none; must be finite and >= 0).
    pub fn new(dim: usize, latency_steps: usize, noise_std: f64) -> Self {
        let slots = latency_steps.saturating_add(1);
        Self {
            dim,
            ring: vec![0.0; slots * dim],
            lens: vec![0; slots],
            oldest: 0,
            noise: (noise_std > 0.0)
                .then(|| Normal::new(0.0, noise_std).ok())
                .flatten(),
            // One spare slot for the too-long marker.
            out: Vec::with_capacity(dim + 1),
        }
    }

    /// Every slot holds `state` (at start and after a reset: no stale history).
    pub fn fill(&mut self, state: &[f64]) {
        for _ in 0..self.lens.len() {
            self.record(state);
        }
    }

    /// The plant reached `state` (once per control step).
    pub fn record(&mut self, state: &[f64]) {
        let slot = self.oldest;
        let len = state.len().min(self.dim);
        self.ring[slot * self.dim..slot * self.dim + len].copy_from_slice(&state[..len]);
        self.lens[slot] = state.len();
        self.oldest = (slot + 1) % self.lens.len();
    }

    /// What failed sensors report: NaN on every channel (no draw from `rng`).
    pub fn read_failed(&mut self) -> &[f32] {
        self.out.clear();
        self.out.resize(self.dim, f32::NAN);
        &self.out
    }

    /// What the sensors report now: the state `latency_steps` steps ago, plus noise. A
    /// sample of the wrong length comes out shortened (the firmware flags it), or, when
    /// too long, with a NaN past the channels, so the firmware still sees the mismatch.
    pub fn read(&mut self, rng: &mut ChaCha8Rng) -> &[f32] {
        let slot = self.oldest;
        let len = self.lens[slot];
        self.out.clear();
        for &value in &self.ring[slot * self.dim..slot * self.dim + len.min(self.dim)] {
            let noise = self.noise.map_or(0.0, |n| n.sample(rng));
            self.out.push((value + noise) as f32);
        }
        if len > self.dim {
            self.out.push(f32::NAN);
        }
        &self.out
    }
}
