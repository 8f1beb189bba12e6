//! What the real-time planner gives up, measured with the true dynamics: MPC over
//! [`AnalyticDynamics`] wrapping the plant's own `transition` (cart-pole, pendulum),
//! in-process on the simulated plant for an episode from seeded starts, with the PETS
//! paper's settings and with the shipped real-time settings.
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
use crate::plant::{self, PlantKind};
use crate::task::Task;

/// Returns of one planner configuration over several seeded starts.
#[derive(Clone, Debug, Serialize)]
pub struct ReturnReport {
    pub task: Task,
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

/// The return of one `steps`-step episode of `kind` from the start drawn with `seed`,
/// planning with `config` (see [`for_true_dynamics`]) over the true dynamics.
pub fn true_dynamics_return(
    kind: PlantKind,
    config: &PlannerConfig,
    seed: u64,
    steps: usize,
) -> anyhow::Result<f64> {
    let spec = kind.spec();
    let state_dim = spec.states.len();
    let bounds: Vec<(f32, f32)> = spec
        .actions
        .iter()
        .map(|a| (a.min as f32, a.max as f32))
        .collect();
    let config = PlannerConfig {
        seed: config.seed ^ seed,
        ..for_true_dynamics(config.clone())
    };
    let planner = Planner::new(config, state_dim, bounds.len(), &bounds, 1)?;
    let transition: crate::mpc::Transition = match kind {
        PlantKind::Cartpole => plant::cartpole::transition,
        PlantKind::Pendulum => plant::pendulum::transition,
        PlantKind::Pusher => plant::pusher::transition,
    };
    let dynamics = Box::new(AnalyticDynamics::new(transition, state_dim, bounds.len()));
    let cost = Box::new(TaskCost(spec.task));
    let mut controller = MpcController::new(planner, dynamics, cost, Clock::simulated())?;
    let mut plant = kind.build();
    plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
    Ok(rollout(&mut *plant, &mut controller, spec.task, steps))
}

/// Runs `config` on `kind` from seeds `0..seeds`.
pub fn measure(
    kind: PlantKind,
    label: &str,
    config: &PlannerConfig,
    seeds: u64,
) -> anyhow::Result<ReturnReport> {
    let clock = Clock::real();
    let task = kind.spec().task;
    let steps = task.episode_steps();
    let mut returns = Vec::new();
    let mut total_us = 0;
    for seed in 0..seeds {
        let (us, value) = time_us(&clock, || true_dynamics_return(kind, config, seed, steps));
        returns.push(value?);
        total_us += us;
    }
    let n = returns.len().max(1) as f64;
    Ok(ReturnReport {
        task,
        label: label.to_owned(),
        config: for_true_dynamics(config.clone()),
        seeds,
        mean_return: returns.iter().sum::<f64>() / n,
        min_return: returns.iter().copied().fold(f64::INFINITY, f64::min),
        returns,
        mean_plan_us: total_us as f64 / (n * steps as f64),
    })
}

/// The paper's planner settings against the shipped real-time ones, for every task.
pub fn compare(seeds: u64) -> anyhow::Result<Vec<ReturnReport>> {
    let mut out = Vec::new();
    for kind in [PlantKind::Cartpole, PlantKind::Pendulum] {
        let task = kind.spec().task;
        let paper = PlannerConfig::pets_paper(task);
        let label = format!(
            "PETS paper (P{} K{} {}it H{})",
            paper.population, paper.elites, paper.iterations, paper.horizon
        );
        out.push(measure(kind, &label, &paper, seeds)?);
        out.push(measure(
            kind,
            "real-time (shipped)",
            &PlannerConfig::for_task(task),
            seeds,
        )?);
    }
    Ok(out)
}
