//! What the real-time planner gives up, measured with the true dynamics: MPC over
//! [`AnalyticDynamics`] wrapping the cart-pole's own `transition`, in-process on the
//! simulated plant for an episode from seeded starts, with the PETS paper's settings and
//! with the shipped real-time settings.
//!
//! The model is exact and deterministic (`E = 1`), so particles are set to 1 (they
//! would be identical copies) and no deadline applies: only the search differs.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::stats::time_us;
use crate::clock::Clock;
use crate::expert::rollout;
use crate::mpc::{AnalyticDynamics, MpcController, Planner, PlannerConfig, TaskCost};
use crate::plant::Plant;
use crate::plant::cartpole::{self, Cartpole, STATE_DIM};
use crate::task::Task;

/// Returns of one planner configuration over several seeded starts.
#[derive(Clone, Debug, Serialize)]
pub struct ReturnReport {
    pub label: String,
    pub config: PlannerConfig,
    pub seeds: u64,
    pub returns: Vec<f64>,
    pub mean_return: f64,
    pub min_return: f64,
    /// Wall time per control step (plan + plant step), µs: the exact model's cost, not
    /// the ensemble's.
    pub mean_plan_us: f64,
}

/// `config` with what only matters for a learned ensemble removed: one particle (the
/// exact model is deterministic) and no time budget (no clock moves in-process).
pub fn for_true_dynamics(config: PlannerConfig) -> PlannerConfig {
    PlannerConfig {
        particles: 1,
        budget_us: None,
        ..config
    }
}

/// The return of one `steps`-step cart-pole episode from the start drawn with `seed`,
/// planning with `config` (see [`for_true_dynamics`]) over the true dynamics.
pub fn true_dynamics_return(
    config: &PlannerConfig,
    seed: u64,
    steps: usize,
) -> anyhow::Result<f64> {
    let spec = &cartpole::SPEC;
    let bounds: Vec<(f32, f32)> = spec
        .actions
        .iter()
        .map(|a| (a.min as f32, a.max as f32))
        .collect();
    let config = PlannerConfig {
        seed: config.seed ^ seed,
        ..for_true_dynamics(config.clone())
    };
    let planner = Planner::new(config, STATE_DIM, bounds.len(), &bounds, 1)?;
    let dynamics = Box::new(AnalyticDynamics::new(
        cartpole::transition,
        STATE_DIM,
        bounds.len(),
    ));
    let cost = Box::new(TaskCost(Task::CartpoleSwingup));
    let mut controller = MpcController::new(planner, dynamics, cost, Clock::simulated())?;
    let mut plant = Cartpole::new();
    plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
    Ok(rollout(
        &mut plant,
        &mut controller,
        Task::CartpoleSwingup,
        steps,
    ))
}

/// Runs `config` from seeds `0..seeds`.
pub fn measure(label: &str, config: &PlannerConfig, seeds: u64) -> anyhow::Result<ReturnReport> {
    let clock = Clock::real();
    let steps = Task::CartpoleSwingup.episode_steps();
    let mut returns = Vec::new();
    let mut total_us = 0;
    for seed in 0..seeds {
        let (us, value) = time_us(&clock, || true_dynamics_return(config, seed, steps));
        returns.push(value?);
        total_us += us;
    }
    let n = returns.len().max(1) as f64;
    Ok(ReturnReport {
        label: label.to_owned(),
        config: for_true_dynamics(config.clone()),
        seeds,
        mean_return: returns.iter().sum::<f64>() / n,
        min_return: returns.iter().copied().fold(f64::INFINITY, f64::min),
        returns,
        mean_plan_us: total_us as f64 / (n * steps as f64),
    })
}

/// The paper's planner settings against the shipped real-time ones.
pub fn compare(seeds: u64) -> anyhow::Result<Vec<ReturnReport>> {
    let task = Task::CartpoleSwingup;
    Ok(vec![
        measure(
            "PETS paper (P400 K40 5it H25)",
            &PlannerConfig::pets_paper(task),
            seeds,
        )?,
        measure("real-time (shipped)", &PlannerConfig::for_task(task), seeds)?,
    ])
}
