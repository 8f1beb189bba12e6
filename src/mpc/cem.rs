//! The anytime planner: PETS CEM, iCEM and random shooting over action sequences.
//!
//! Owns the sampling distribution (mean and variance `H × A`), the candidate and elite
//! buffers and the warm start between calls. Sees only [`Dynamics`] and [`Cost`].
//!
//! Real-time contract: after a warm-up call, [`Planner::plan`] never allocates (every
//! buffer is sized in [`Planner::new`]), never blocks, never panics on bad input; with a
//! deadline it never starts an iteration predicted to overrun it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::{ConfigError, Optimizer, PlannerConfig};
use super::cost::Cost;
use super::dynamics::Dynamics;
use super::outcome::{PlanError, PlanStats, StopReason};
use super::propagation::Rollout;
use super::sampling::{self, ColoredNoise};
use crate::clock::Clock;

/// Separates the particle-noise stream's seed from the sampling RNG's.
const NOISE_STREAM: u64 = 0x6e6f_6973_655f_7473;

mod latency;
mod view;

/// A sampling-based MPC planner with preallocated buffers.
#[derive(Clone, Debug)]
pub struct Planner {
    pub(crate) config: PlannerConfig,
    pub(crate) state_dim: usize,
    pub(crate) action_dim: usize,
    pub(crate) ensemble_size: usize,
    bounds: Vec<(f32, f32)>,
    rng: ChaCha8Rng,
    rollout: Rollout,
    noise: ColoredNoise,
    /// `H × A` sampling mean (the plan) and variance.
    mean: Vec<f32>,
    var: Vec<f32>,
    /// `H × A`, `(ub − lb)² / 16` per channel.
    init_var: Vec<f32>,
    /// `A`, bound midpoints.
    midpoint: Vec<f32>,
    /// `P × H × A` candidates and their costs `P`, ranking `P`.
    candidates: Vec<f32>,
    costs: Vec<f32>,
    order: Vec<usize>,
    /// `K × H × A` last elites (sorted, best first) and their costs `K`.
    elites: Vec<f32>,
    elite_costs: Vec<f32>,
    /// Whether `elites` holds elites of an earlier iteration or call.
    elites_valid: bool,
    /// Whether `mean` holds a plan to warm-start from.
    warm: bool,
    first_action: Vec<f32>,
    /// Deadline estimator: µs per candidate of the last measured iteration.
    us_per_candidate: Option<f64>,
    last_stats: Option<PlanStats>,
    /// `E × S`, `E × A`, `E × S`, `E × S` buffers of the latency prediction.
    latency_states: Vec<f32>,
    latency_actions: Vec<f32>,
    latency_mean: Vec<f32>,
    latency_logvar: Vec<f32>,
}

impl Planner {
    /// Validates `config` and allocates every buffer. `bounds[a] = (low, high)`.
    pub fn new(
        config: PlannerConfig,
        state_dim: usize,
        action_dim: usize,
        bounds: &[(f32, f32)],
        ensemble_size: usize,
    ) -> Result<Self, ConfigError> {
        config.validate(action_dim, bounds, ensemble_size)?;
        if state_dim == 0 {
            return Err(ConfigError::Zero { key: "state_dim" });
        }
        let (h, p, k) = (config.horizon, config.population, config.elites);
        let width = h * action_dim;
        let midpoint: Vec<f32> = bounds.iter().map(|(l, u)| 0.5 * (l + u)).collect();
        let init_var: Vec<f32> = (0..width)
            .map(|i| bounds[i % action_dim])
            .map(|(l, u)| (u - l) * (u - l) / 16.0)
            .collect();
        let mean = (0..width).map(|i| midpoint[i % action_dim]).collect();
        let rollout = Rollout::new(
            config.propagation,
            state_dim,
            action_dim,
            ensemble_size,
            config.particles,
            p,
            config.seed ^ NOISE_STREAM,
        );
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            noise: ColoredNoise::new(h, config.noise_beta),
            rollout,
            bounds: bounds.to_vec(),
            mean,
            var: init_var.clone(),
            init_var,
            first_action: midpoint.clone(),
            midpoint,
            candidates: vec![0.0; p * width],
            costs: vec![0.0; p],
            order: (0..p).collect(),
            elites: vec![0.0; k * width],
            elite_costs: vec![f32::MAX; k],
            elites_valid: false,
            warm: false,
            us_per_candidate: None,
            last_stats: None,
            latency_states: vec![0.0; ensemble_size * state_dim],
            latency_actions: vec![0.0; ensemble_size * action_dim],
            latency_mean: vec![0.0; ensemble_size * state_dim],
            latency_logvar: vec![0.0; ensemble_size * state_dim],
            config,
            state_dim,
            action_dim,
            ensemble_size,
        })
    }

    /// Plans from `state`, running as many iterations as the configuration and the
    /// optional `(clock, deadline_us)` allow, and leaves the command in
    /// [`Planner::first_action`]. With no iteration run (deadline already too close), the
    /// command is the warm-started plan's first step.
    ///
    /// Real-time contract: allocation-free after the first call; the deadline is checked
    /// before each iteration against the previous iterations' measured cost per
    /// candidate (the very first iteration of a planner, with nothing measured, runs).
    pub fn plan(
        &mut self,
        state: &[f32],
        dynamics: &mut dyn Dynamics,
        cost: &dyn Cost,
        deadline: Option<(&Clock, u64)>,
    ) -> Result<PlanStats, PlanError> {
        self.check_inputs(state, dynamics)?;
        let started_us = deadline.map(|(clock, _)| clock.now_us());
        self.warm_start();
        let width = self.config.horizon * self.action_dim;
        let max_iterations = match self.config.optimizer {
            Optimizer::RandomShooting => 1,
            Optimizer::Cem | Optimizer::ICem => self.config.iterations,
        };
        let mut stats = PlanStats::empty(max_of(&self.var), StopReason::IterationLimit);
        for iteration in 0..max_iterations {
            if self.config.optimizer != Optimizer::RandomShooting
                && max_of(&self.var) < self.config.epsilon_variance
            {
                stats.stop = StopReason::Converged;
                break;
            }
            let (total, kept) = self.population(iteration);
            let iteration_start_us = deadline.map(|(clock, _)| clock.now_us());
            if let (Some((_, deadline_us)), Some(now_us), Some(per)) =
                (deadline, iteration_start_us, self.us_per_candidate)
                && now_us as f64 + per * total as f64 > deadline_us as f64
            {
                stats.stop = StopReason::Deadline;
                if iteration == 0 {
                    // One slow iteration (a preempted core) must not stall planning for
                    // good: halve the estimate so a later call probes again.
                    self.us_per_candidate = Some(per * 0.5);
                }
                break;
            }
            self.sample(total, kept);
            let horizon = self.config.horizon;
            self.rollout.evaluate(
                state,
                &self.candidates[..total * width],
                horizon,
                total,
                dynamics,
                cost,
                &mut self.rng,
                &mut self.costs,
            )?;
            self.select_elites(total);
            self.update_distribution();
            stats.iterations += 1;
            stats.samples_evaluated += total as u64;
            stats.best_cost = stats.best_cost.min(self.elite_costs[0]);
            let k = self.config.elites as f32;
            stats.elite_mean_cost = self.elite_costs.iter().map(|c| c / k).sum();
            stats.max_variance = max_of(&self.var);
            if let (Some((clock, _)), Some(start)) = (deadline, iteration_start_us) {
                let spent = clock.now_us().saturating_sub(start) as f64;
                self.us_per_candidate = Some(spent / total as f64);
            }
        }
        if let (Some((clock, _)), Some(start)) = (deadline, started_us) {
            stats.elapsed_us = clock.now_us().saturating_sub(start);
        }
        self.write_first_action(stats.iterations > 0);
        self.warm = true;
        self.last_stats = Some(stats);
        if stats.iterations > 0 && stats.best_cost >= f32::MAX {
            return Err(PlanError::NoFiniteCandidate);
        }
        Ok(stats)
    }

    /// Every row count per member `N` this planner's calls pass to
    /// [`Dynamics::predict`], ascending and distinct: each iteration's rollout batch
    /// (iCEM's decaying population gives one per iteration) and, when
    /// `latency_fraction > 0`, the single row of [`Planner::predicted_state_at_latency`].
    /// Prepare each ([`Dynamics::prepare`]) before the first real-time call. Allocates.
    pub fn batch_rows(&self) -> Vec<usize> {
        let max_iterations = match self.config.optimizer {
            Optimizer::RandomShooting => 1,
            Optimizer::Cem | Optimizer::ICem => self.config.iterations,
        };
        let mut rows: Vec<usize> = (0..max_iterations)
            .map(|iteration| {
                self.rollout
                    .rows_for_candidates(self.population(iteration).0)
            })
            .collect();
        if self.config.latency_fraction > 0.0 {
            rows.push(1);
        }
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    fn check_inputs(&self, state: &[f32], dynamics: &dyn Dynamics) -> Result<(), PlanError> {
        if state.len() != self.state_dim {
            return Err(PlanError::StateDim {
                got: state.len(),
                expected: self.state_dim,
            });
        }
        if state.iter().any(|v| !v.is_finite()) {
            return Err(PlanError::NonFiniteState);
        }
        let got = (
            dynamics.state_dim(),
            dynamics.action_dim(),
            dynamics.ensemble_size(),
        );
        if got != (self.state_dim, self.action_dim, self.ensemble_size) {
            return Err(PlanError::ModelMismatch {
                got_state: got.0,
                got_action: got.1,
                got_ensemble: got.2,
                state: self.state_dim,
                action: self.action_dim,
                ensemble: self.ensemble_size,
            });
        }
        Ok(())
    }

    /// Shifts the previous plan (and iCEM's elites) one step; the new last step is the
    /// bounds' midpoint. Resets the variance to `(ub − lb)² / 16`.
    fn warm_start(&mut self) {
        let a = self.action_dim;
        if self.warm {
            shift_one_step(&mut self.mean, &self.midpoint);
            let width = self.config.horizon * a;
            if self.elites_valid {
                for elite in self.elites.chunks_exact_mut(width) {
                    shift_one_step(elite, &self.midpoint);
                }
            }
        } else {
            for (i, m) in self.mean.iter_mut().enumerate() {
                *m = self.midpoint[i % a];
            }
        }
        self.var.copy_from_slice(&self.init_var);
    }

    /// `(total candidates, kept elites among them)` for an iteration.
    fn population(&self, iteration: usize) -> (usize, usize) {
        let (p, k) = (self.config.population, self.config.elites);
        match self.config.optimizer {
            Optimizer::Cem | Optimizer::RandomShooting => (p, 0),
            Optimizer::ICem => {
                let decay = self.config.population_decay.powi(iteration as i32);
                let total = ((p as f32 / decay).round() as usize).max(2 * k).min(p);
                let kept = if self.elites_valid {
                    ((self.config.keep_elites_fraction * k as f32).ceil() as usize).min(k)
                } else {
                    0
                };
                (total, kept.min(total))
            }
        }
    }

    fn sample(&mut self, total: usize, kept: usize) {
        let width = self.config.horizon * self.action_dim;
        let out = &mut self.candidates[..total * width];
        match self.config.optimizer {
            Optimizer::Cem => sampling::fill_truncated_normal(
                &mut self.rng,
                &self.mean,
                &self.var,
                &self.bounds,
                out,
            ),
            Optimizer::RandomShooting => sampling::fill_uniform(&mut self.rng, &self.bounds, out),
            Optimizer::ICem => {
                out[..kept * width].copy_from_slice(&self.elites[..kept * width]);
                let fresh = &mut out[kept * width..];
                self.noise
                    .fill(&mut self.rng, &self.mean, &self.var, &self.bounds, fresh);
            }
        }
    }

    /// Non-finite costs become `f32::MAX`; the `K` lowest (ties by index) are copied,
    /// best first, into the elite buffers.
    fn select_elites(&mut self, total: usize) {
        let k = self.config.elites;
        let width = self.config.horizon * self.action_dim;
        for c in &mut self.costs[..total] {
            if !c.is_finite() {
                *c = f32::MAX;
            }
        }
        let order = &mut self.order[..total];
        for (i, slot) in order.iter_mut().enumerate() {
            *slot = i;
        }
        let costs = &self.costs;
        let by_cost = |a: &usize, b: &usize| costs[*a].total_cmp(&costs[*b]).then(a.cmp(b));
        if k < total {
            order.select_nth_unstable_by(k - 1, by_cost);
        }
        order[..k].sort_unstable_by(by_cost);
        for (rank, &index) in order[..k].iter().enumerate() {
            self.elites[rank * width..(rank + 1) * width]
                .copy_from_slice(&self.candidates[index * width..(index + 1) * width]);
            self.elite_costs[rank] = self.costs[index];
        }
        self.elites_valid = true;
    }

    /// CEM: `new = α·old + (1 − α)·elite statistic` for mean and (population) variance.
    /// Random shooting: the plan is the best sequence.
    fn update_distribution(&mut self) {
        let width = self.config.horizon * self.action_dim;
        if self.config.optimizer == Optimizer::RandomShooting {
            self.mean.copy_from_slice(&self.elites[..width]);
            return;
        }
        let (k, alpha) = (self.config.elites as f32, self.config.alpha);
        for i in 0..width {
            let elite_mean = self.elites.iter().skip(i).step_by(width).sum::<f32>() / k;
            let elite_var = self
                .elites
                .iter()
                .skip(i)
                .step_by(width)
                .map(|v| (v - elite_mean) * (v - elite_mean))
                .sum::<f32>()
                / k;
            self.mean[i] = alpha * self.mean[i] + (1.0 - alpha) * elite_mean;
            self.var[i] = alpha * self.var[i] + (1.0 - alpha) * elite_var;
        }
    }

    /// Mean of the last elites' first actions (random shooting: the best one's), or the
    /// plan's first step when no iteration ran.
    fn write_first_action(&mut self, iterated: bool) {
        let a = self.action_dim;
        let width = self.config.horizon * a;
        if !iterated {
            self.first_action.copy_from_slice(&self.mean[..a]);
            return;
        }
        if self.config.optimizer == Optimizer::RandomShooting {
            self.first_action.copy_from_slice(&self.elites[..a]);
            return;
        }
        let k = self.config.elites as f32;
        for (j, out) in self.first_action.iter_mut().enumerate() {
            *out = self.elites.iter().skip(j).step_by(width).sum::<f32>() / k;
        }
    }
}

/// `seq[t] ← seq[t + 1]`, last step ← `fill`. Shapes: `seq` `H × A`, `fill` `A`.
fn shift_one_step(seq: &mut [f32], fill: &[f32]) {
    let a = fill.len();
    let n = seq.len();
    seq.copy_within(a.., 0);
    seq[n - a..].copy_from_slice(fill);
}

fn max_of(values: &[f32]) -> f32 {
    values.iter().copied().fold(f32::MIN, f32::max)
}
