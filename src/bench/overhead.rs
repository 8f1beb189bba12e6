//! Planner overhead without a model: the PETS-size search (P 400 × 20 particles, H 25,
//! 5 iterations, TS-∞) over a toy ensemble whose `predict` only fills its outputs, so
//! what is timed is the planner's own work (sampling, particle noise, the per-row cost,
//! elite selection).
//!
//! Bench-only code: allocates freely, reads the real clock through [`Clock`].

use ndarray::{ArrayView3, ArrayViewMut3};
use serde::Serialize;

use super::stats::{LatencySummary, thread_cpu_us, time_us};
use crate::clock::Clock;
use crate::mpc::{
    ConfigError, Dynamics, DynamicsError, Planner, PlannerConfig, Propagation, TaskCost,
};
use crate::plant::cartpole::STATE_DIM;
use crate::task::Task;

/// A probabilistic `E = 5` ensemble that predicts a constant change and log-variance:
/// as cheap as a model can be, so the planner's overhead is what remains.
pub struct ToyEnsemble;

impl Dynamics for ToyEnsemble {
    fn state_dim(&self) -> usize {
        STATE_DIM
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn ensemble_size(&self) -> usize {
        5
    }
    fn is_probabilistic(&self) -> bool {
        true
    }
    fn predict(
        &mut self,
        _states: ArrayView3<'_, f32>,
        _actions: ArrayView3<'_, f32>,
        mut mean: ArrayViewMut3<'_, f32>,
        mut logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError> {
        mean.fill(0.01);
        logvar.fill(-6.0);
        Ok(())
    }
}

/// Planner overhead of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    pub label: String,
    pub population: usize,
    pub particles: usize,
    pub horizon: usize,
    pub iterations: usize,
    /// Rows (particle steps) the planner pushed through the toy model per plan.
    pub rows_per_plan: u64,
    /// Wall time per plan (inflated when other processes share the cores).
    pub latency: LatencySummary,
    /// Thread CPU time per plan: the planner's own cost, robust to a loaded machine.
    pub cpu: LatencySummary,
    /// Nanoseconds of planner CPU time per particle step (p50 CPU time / rows).
    pub ns_per_row: f64,
}

/// Times `plans` plans (after 2 warm-up plans) of `config` over [`ToyEnsemble`].
pub fn measure(
    label: &str,
    config: PlannerConfig,
    plans: usize,
) -> Result<OverheadReport, ConfigError> {
    let clock = Clock::real();
    let bounds = [(-3.0f32, 3.0f32)];
    let mut model = ToyEnsemble;
    let cost = TaskCost(Task::CartpoleSwingup);
    let state = [0.0f32; STATE_DIM];
    let mut planner = Planner::new(config.clone(), STATE_DIM, 1, &bounds, 5)?;
    let mut samples = Vec::with_capacity(plans);
    let mut cpu_samples = Vec::with_capacity(plans);
    let mut rows = 0;
    for i in 0..plans + 2 {
        let cpu_start = thread_cpu_us();
        let (elapsed_us, stats) = time_us(&clock, || planner.plan(&state, &mut model, &cost, None));
        let cpu_us = thread_cpu_us().saturating_sub(cpu_start);
        if let Ok(stats) = stats {
            rows = stats.samples_evaluated * config.particles as u64 * config.horizon as u64;
        }
        if i >= 2 {
            samples.push(elapsed_us);
            cpu_samples.push(cpu_us);
        }
    }
    let latency = LatencySummary::from_samples(&samples);
    let cpu = LatencySummary::from_samples(&cpu_samples);
    Ok(OverheadReport {
        label: label.to_owned(),
        population: config.population,
        particles: config.particles,
        horizon: config.horizon,
        iterations: config.iterations,
        rows_per_plan: rows,
        ns_per_row: cpu.p50_us as f64 * 1e3 / rows.max(1) as f64,
        latency,
        cpu,
    })
}

/// The configuration measured by the issue: P 400 × 20 particles, H 25, 5 iterations.
pub fn pets_overhead_config() -> PlannerConfig {
    PlannerConfig {
        propagation: Propagation::TsInf,
        epsilon_variance: 0.0,
        ..PlannerConfig::pets_paper(Task::CartpoleSwingup)
    }
}
