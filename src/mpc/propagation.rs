//! Trajectory sampling: pushes the particles of every candidate action sequence through
//! the batched [`Dynamics`] over the horizon and scores each candidate.
//!
//! Row layout (`E × R × ·`, member-major, `R = P·M`, `M = P_t / E`): particle `p = m·E + e`
//! of candidate `c` lives in member `e`'s row `c·M + m`, so TS-∞ (particle `p` on member
//! `p mod E`) needs no gather. TS-1 permutes each candidate's particles across the `P_t`
//! slots every step. Expectation keeps one row per candidate, copied to every member, and
//! moves it by the members' mean prediction.
//!
//! Never allocates after [`Rollout::new`]; never panics on bad model output (non-finite
//! values flow into the candidate's cost, which is then ranked worst).

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::config::Propagation;
use super::cost::Cost;
use super::dynamics::{Dynamics, DynamicsError};
use super::fastmath;
use super::noise::GaussianNoise;

/// Preallocated particle buffers for up to `max_candidates` candidates.
#[derive(Clone, Debug)]
pub struct Rollout {
    propagation: Propagation,
    state_dim: usize,
    action_dim: usize,
    ensemble_size: usize,
    /// Particles per candidate `P_t` (1 for Expectation).
    particles: usize,
    max_candidates: usize,
    /// Candidates of the last evaluation.
    candidates: usize,
    /// `E × R × S`, current particle states.
    states: Vec<f32>,
    /// `E × R × S`, TS-1 permutation target.
    scratch: Vec<f32>,
    /// `E × R × A`, this step's actions per row.
    actions: Vec<f32>,
    /// `E × R × S`, model mean and log-variance of `s' − s`.
    mean: Vec<f32>,
    logvar: Vec<f32>,
    /// `E × R`, summed per-step cost per row.
    row_cost: Vec<f32>,
    /// `P_t`, TS-1 permutation.
    perm: Vec<usize>,
    /// Particle noise: its own fast seeded stream, and one step's draws `E × R × S`.
    noise: GaussianNoise,
    eps: Vec<f32>,
    /// `(H+1) × E × R × S`: every step's particle states of the last evaluation, for
    /// showing plans (empty unless [`Rollout::enable_trace`] was called).
    trace: Vec<f32>,
    trace_horizon: usize,
}

impl Rollout {
    /// Buffers for `max_candidates` candidates of `particles` particles each; the
    /// particle noise is seeded with `noise_seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        propagation: Propagation,
        state_dim: usize,
        action_dim: usize,
        ensemble_size: usize,
        particles: usize,
        max_candidates: usize,
        noise_seed: u64,
    ) -> Self {
        let particles = match propagation {
            Propagation::Expectation => 1,
            Propagation::TsInf | Propagation::Ts1 => particles.max(ensemble_size),
        };
        let rows_total =
            ensemble_size * Self::rows_for(propagation, particles, ensemble_size, max_candidates);
        Self {
            propagation,
            state_dim,
            action_dim,
            ensemble_size,
            particles,
            max_candidates,
            candidates: 0,
            states: vec![0.0; rows_total * state_dim],
            scratch: vec![0.0; rows_total * state_dim],
            actions: vec![0.0; rows_total * action_dim],
            mean: vec![0.0; rows_total * state_dim],
            logvar: vec![0.0; rows_total * state_dim],
            row_cost: vec![0.0; rows_total],
            perm: (0..particles).collect(),
            noise: GaussianNoise::new(noise_seed),
            eps: vec![0.0; rows_total * state_dim],
            trace: Vec::new(),
            trace_horizon: 0,
        }
    }

    /// Keeps every step's particle states from now on, for horizons up to `horizon`
    /// (allocates here, once).
    pub fn enable_trace(&mut self, horizon: usize) {
        self.trace = vec![0.0; (horizon + 1) * self.states.len()];
        self.trace_horizon = horizon;
    }

    /// The mean and standard deviation over candidate `candidate`'s particles of its
    /// predicted state at `step` (`0..=H`) in the last evaluation, written to `mean` and
    /// `std` (`S` each, at most 32). `false` without a trace or for an index out of
    /// range. Allocation-free.
    pub fn trace_stats(
        &self,
        candidate: usize,
        step: usize,
        mean: &mut [f32],
        std: &mut [f32],
    ) -> bool {
        let (s_dim, e_count, rows) = (self.state_dim, self.ensemble_size, self.rows_per_member());
        if self.trace.is_empty()
            || step > self.trace_horizon
            || candidate >= self.candidates
            || s_dim > 32
            || mean.len() < s_dim
            || std.len() < s_dim
        {
            return false;
        }
        let per_member = rows / self.candidates.max(1);
        let base = step * e_count * rows * s_dim;
        let (mut sum, mut sq) = ([0.0f64; 32], [0.0f64; 32]);
        let mut count = 0.0f64;
        for e in 0..e_count {
            for m in 0..per_member {
                let at = base + (e * rows + candidate * per_member + m) * s_dim;
                for (k, v) in self.trace[at..at + s_dim].iter().enumerate() {
                    sum[k] += f64::from(*v);
                    sq[k] += f64::from(*v) * f64::from(*v);
                }
                count += 1.0;
            }
        }
        let count = count.max(1.0);
        for k in 0..s_dim {
            let mu = sum[k] / count;
            mean[k] = mu as f32;
            std[k] = (sq[k] / count - mu * mu).max(0.0).sqrt() as f32;
        }
        true
    }

    fn record_trace(&mut self, step: usize, total: usize) {
        if step > self.trace_horizon || self.trace.is_empty() {
            return;
        }
        let n = total * self.state_dim;
        self.trace[step * n..(step + 1) * n].copy_from_slice(&self.states[..n]);
    }

    fn rows_for(
        propagation: Propagation,
        particles: usize,
        ensemble: usize,
        candidates: usize,
    ) -> usize {
        match propagation {
            Propagation::Expectation => candidates,
            Propagation::TsInf | Propagation::Ts1 => candidates * (particles / ensemble),
        }
    }

    /// Rows per member `R` an evaluation of `candidates` candidates passes to the model.
    pub fn rows_for_candidates(&self, candidates: usize) -> usize {
        Self::rows_for(
            self.propagation,
            self.particles,
            self.ensemble_size,
            candidates.min(self.max_candidates),
        )
    }

    /// Rows per member `R` for the last evaluation.
    pub fn rows_per_member(&self) -> usize {
        Self::rows_for(
            self.propagation,
            self.particles,
            self.ensemble_size,
            self.candidates,
        )
    }

    /// Candidates scored by the last evaluation.
    pub fn candidates(&self) -> usize {
        self.candidates
    }

    /// Particles per candidate actually propagated (1 for Expectation).
    pub fn particles(&self) -> usize {
        self.particles
    }

    /// Final particle states of the last evaluation, `E × R × S` in the documented layout.
    pub fn final_states(&self) -> Option<ArrayView3<'_, f32>> {
        let (e, r, s) = (self.ensemble_size, self.rows_per_member(), self.state_dim);
        ArrayView3::from_shape((e, r, s), &self.states[..e * r * s]).ok()
    }

    /// Scores `count` candidates: `costs[c]` = mean over the candidate's particles of the
    /// summed per-step cost (raw: may be NaN or infinite).
    ///
    /// Shapes: `state` `S`, `sequences` `count × H × A` (flat), `costs` `≥ count`.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        state: &[f32],
        sequences: &[f32],
        horizon: usize,
        count: usize,
        dynamics: &mut dyn Dynamics,
        cost: &dyn Cost,
        rng: &mut ChaCha8Rng,
        costs: &mut [f32],
    ) -> Result<(), DynamicsError> {
        let count = count.min(self.max_candidates).min(costs.len());
        self.candidates = count;
        let (s_dim, a_dim, e_count) = (self.state_dim, self.action_dim, self.ensemble_size);
        let rows = self.rows_per_member();
        let total = e_count * rows;
        let per_member = rows / count.max(1);
        for row in self.states[..total * s_dim].chunks_exact_mut(s_dim) {
            row.copy_from_slice(state);
        }
        self.row_cost[..total].fill(0.0);
        self.record_trace(0, total);
        let noisy = dynamics.is_probabilistic() && self.propagation != Propagation::Expectation;
        for t in 0..horizon {
            self.write_actions(sequences, horizon, t, count, rows, per_member);
            if self.propagation == Propagation::Ts1 && t > 0 {
                self.permute(rng, count, rows, per_member);
            }
            let shape_s = (e_count, rows, s_dim);
            let states = ArrayView3::from_shape(shape_s, &self.states[..total * s_dim]);
            let actions =
                ArrayView3::from_shape((e_count, rows, a_dim), &self.actions[..total * a_dim]);
            let mean = ArrayViewMut3::from_shape(shape_s, &mut self.mean[..total * s_dim]);
            let logvar = ArrayViewMut3::from_shape(shape_s, &mut self.logvar[..total * s_dim]);
            let (Ok(states), Ok(actions), Ok(mean), Ok(logvar)) = (states, actions, mean, logvar)
            else {
                return Err(DynamicsError::Shape {
                    got: [e_count, rows, s_dim],
                    expected: [e_count, rows, s_dim],
                });
            };
            match dynamics.predict(states, actions, mean, logvar) {
                Ok(()) | Err(DynamicsError::NonFinite) => {}
                Err(other) => return Err(other),
            }
            self.step_states(total, rows, noisy);
            self.record_trace(t + 1, total);
            let scored = if self.propagation == Propagation::Expectation {
                rows
            } else {
                total
            };
            let next = ArrayView2::from_shape((scored, s_dim), &self.states[..scored * s_dim]);
            let acts = ArrayView2::from_shape((scored, a_dim), &self.actions[..scored * a_dim]);
            if let (Ok(next), Ok(acts)) = (next, acts) {
                cost.cost(
                    next,
                    acts,
                    ArrayViewMut1::from(&mut self.row_cost[..scored]),
                );
            }
        }
        let scored = if self.propagation == Propagation::Expectation {
            rows
        } else {
            total
        };
        costs[..count].fill(0.0);
        for (row, value) in self.row_cost[..scored].iter().enumerate() {
            costs[(row % rows) / per_member] += value;
        }
        let scale = 1.0 / self.particles as f32;
        for c in &mut costs[..count] {
            *c *= scale;
        }
        Ok(())
    }

    /// Row `(e, c·M + m)` gets candidate `c`'s action at step `t`, for every member
    /// `e` (Expectation: `M = 1`). Shapes: `sequences` `count × H × A`.
    fn write_actions(
        &mut self,
        sequences: &[f32],
        horizon: usize,
        t: usize,
        count: usize,
        rows: usize,
        per_member: usize,
    ) {
        let a_dim = self.action_dim;
        let block = rows * a_dim;
        for member in self.actions[..self.ensemble_size * block].chunks_exact_mut(block) {
            let per_candidate = per_member * a_dim;
            for (c, slots) in member
                .chunks_exact_mut(per_candidate)
                .take(count)
                .enumerate()
            {
                let start = (c * horizon + t) * a_dim;
                let action = &sequences[start..start + a_dim];
                if a_dim == 1 {
                    slots.fill(action[0]);
                } else {
                    for slot in slots.chunks_exact_mut(a_dim) {
                        slot.copy_from_slice(action);
                    }
                }
            }
        }
    }

    /// `s ← s + μ + σ·ε` (TS, ε from the fast noise stream; `σ = exp(lv / 2)`, NaN for
    /// a non-finite `lv`), or `s ← s + mean_e μ_e` on every member (Expectation).
    fn step_states(&mut self, total: usize, rows: usize, noisy: bool) {
        let s_dim = self.state_dim;
        if self.propagation == Propagation::Expectation {
            let inv_e = 1.0 / self.ensemble_size as f32;
            for r in 0..rows {
                for k in 0..s_dim {
                    let delta: f32 = (0..self.ensemble_size)
                        .map(|e| self.mean[(e * rows + r) * s_dim + k])
                        .sum::<f32>()
                        * inv_e;
                    for e in 0..self.ensemble_size {
                        self.states[(e * rows + r) * s_dim + k] += delta;
                    }
                }
            }
            return;
        }
        let n = total * s_dim;
        let (states, mean) = (&mut self.states[..n], &self.mean[..n]);
        if !noisy {
            for (s, mu) in states.iter_mut().zip(mean) {
                *s += *mu;
            }
            return;
        }
        let eps = &mut self.eps[..n];
        self.noise.fill(eps);
        for (((s, mu), lv), e) in states
            .iter_mut()
            .zip(mean)
            .zip(&self.logvar[..n])
            .zip(&*eps)
        {
            let sigma = fastmath::exp(0.5 * *lv);
            let sigma = if lv.is_finite() { sigma } else { f32::NAN };
            *s += *mu + sigma * *e;
        }
    }

    /// TS-1: each candidate's particles move to a uniformly permuted slot, so each lands
    /// on a uniformly drawn member. Slot `j` is member `j mod E`, row `c·M + j / E`.
    fn permute(&mut self, rng: &mut ChaCha8Rng, count: usize, rows: usize, per_member: usize) {
        let (s_dim, e_count) = (self.state_dim, self.ensemble_size);
        let row_of =
            |c: usize, slot: usize| (slot % e_count) * rows + c * per_member + slot / e_count;
        for c in 0..count {
            for i in (1..self.particles).rev() {
                let j = rng.random_range(0..=i);
                self.perm.swap(i, j);
            }
            for slot in 0..self.particles {
                let (from, to) = (row_of(c, slot), row_of(c, self.perm[slot]));
                self.scratch[to * s_dim..(to + 1) * s_dim]
                    .copy_from_slice(&self.states[from * s_dim..(from + 1) * s_dim]);
            }
        }
        std::mem::swap(&mut self.states, &mut self.scratch);
    }
}
