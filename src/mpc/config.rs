//! Planner configuration: the raw, serde-deserializable settings with per-task defaults,
//! and their validation against the model's dimensions (done once, in
//! [`crate::mpc::Planner::new`]).
//!
//! Never read on the hot path except as plain copied numbers.

use serde::{Deserialize, Serialize};

use crate::task::Task;

/// Which sampling-based optimizer searches the action sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// PETS Cross-Entropy Method: truncated-normal samples, α-smoothed elite statistics.
    Cem,
    /// iCEM (Pinneri et al. 2020): coloured noise, elites kept between iterations and
    /// shifted between steps, population decaying across iterations.
    ICem,
    /// Baseline: one round of `population` uniform sequences, the best one wins.
    RandomShooting,
}

/// How particles move through the ensemble over the horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// Particle `p` stays on member `p mod E` for the whole horizon.
    TsInf,
    /// Every step each particle moves to a uniformly drawn member.
    Ts1,
    /// One deterministic particle per candidate: the ensemble's mean prediction.
    Expectation,
}

/// Planner settings. Missing keys take the [`Default`] (cart-pole PETS) values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerConfig {
    /// Planning horizon `H`, steps.
    pub horizon: usize,
    /// Candidate action sequences per iteration `P` (iCEM: the first iteration's).
    pub population: usize,
    /// Elites `K` kept per iteration.
    pub elites: usize,
    /// Maximum CEM iterations per call.
    pub iterations: usize,
    /// Particles per candidate `P_t`; a multiple of the ensemble size for TS-∞ / TS-1.
    pub particles: usize,
    /// Smoothing: new = α·old + (1 − α)·elite statistic.
    pub alpha: f32,
    /// Early stop when the largest per-coordinate variance falls below this.
    pub epsilon_variance: f32,
    pub propagation: Propagation,
    pub optimizer: Optimizer,
    /// Seed of the planner's ChaCha8 RNG.
    pub seed: u64,
    /// iCEM: exponent β of the 1/f^β noise along the horizon (0 white, 2 brown).
    pub noise_beta: f32,
    /// iCEM: fraction of the elites kept into the next iteration and the next step.
    pub keep_elites_fraction: f32,
    /// iCEM: population shrinks by this factor per iteration (never below 2K).
    pub population_decay: f32,
    /// Controller: planning time budget per tick from the tick's start, µs (None:
    /// unbounded, all iterations run).
    pub budget_us: Option<u64>,
    /// Controller: if > 0, plan from the state predicted this fraction of a period ahead
    /// under the command still being applied (latency compensation).
    pub latency_fraction: f32,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self::for_task(Task::CartpoleSwingup)
    }
}

impl PlannerConfig {
    /// The shipped per-task defaults: the real-time configurations for each task's loop
    /// (cart-pole 25 Hz, [`PlannerConfig::realtime_cartpole`]; pendulum 20 Hz,
    /// [`PlannerConfig::realtime_pendulum`]).
    pub fn for_task(task: Task) -> Self {
        match task {
            Task::CartpoleSwingup => Self::realtime_cartpole(),
            Task::PendulumSwingup => Self::realtime_pendulum(),
            Task::PushToGoal => Self::realtime_pusher(),
            Task::InvertedPendulum => Self::realtime_inverted_pendulum(),
        }
    }

    /// The PETS paper's settings: CEM, TS-∞, 5 iterations, α = 0.1 (cart-pole: H = 25,
    /// P = 400, K = 40, 20 particles; pendulum: H = 30, P = 200, K = 20). Seconds per
    /// action with the paper's network ([`EnsembleShape::PETS`]): not real-time here.
    pub fn pets_paper(task: Task) -> Self {
        let (horizon, population, elites, particles) = match task {
            Task::CartpoleSwingup => (25, 400, 40, 20),
            Task::PendulumSwingup => (30, 200, 20, 20),
            // Not in the paper: its cart-pole's search over the pusher's 2 s horizon.
            Task::PushToGoal => (20, 400, 40, 20),
            // Not in the paper: its cart-pole's, the same bodies.
            Task::InvertedPendulum => (25, 400, 40, 20),
        };
        Self {
            horizon,
            population,
            elites,
            iterations: 5,
            particles,
            alpha: 0.1,
            epsilon_variance: 1e-3,
            propagation: Propagation::TsInf,
            optimizer: Optimizer::Cem,
            seed: 0,
            noise_beta: 2.0,
            keep_elites_fraction: 0.3,
            population_decay: 1.25,
            budget_us: None,
            latency_fraction: 0.0,
        }
    }

    /// The real-time cart-pole configuration (40 ms period, 2 cores, one intra-op
    /// thread, a trainer on the other core), with [`EnsembleShape::for_task`]'s model:
    /// iCEM with coloured noise, warm-started elites, a decaying population and an
    /// anytime cut-off. `bench plan` measures its latency and its return with the true
    /// dynamics against [`PlannerConfig::pets_paper`].
    pub fn realtime_cartpole() -> Self {
        Self::realtime(Task::CartpoleSwingup, &REALTIME_CARTPOLE)
    }

    /// The real-time pendulum configuration (50 ms period, same machine budget as the
    /// cart-pole's: one intra-op thread, a trainer on the other core), with
    /// [`EnsembleShape::for_task`]'s model: the cart-pole's iCEM search over a 25-step
    /// (1.25 s) horizon and a 30 ms anytime cut-off, instead of the PETS paper's CEM
    /// (P 200 × 20 particles × H 30 × 5 iterations, about 0.5 s per plan here). `bench
    /// plan` measures its latency against the period and its return with the true
    /// dynamics against [`PlannerConfig::pets_paper`].
    pub fn realtime_pendulum() -> Self {
        Self::realtime(Task::PendulumSwingup, &REALTIME_PENDULUM)
    }

    /// The real-time pusher configuration (100 ms period): the cart-pole's iCEM search
    /// over a 20-step (2 s) horizon with a 50 ms anytime cut-off, half the period.
    pub fn realtime_pusher() -> Self {
        Self::realtime(Task::PushToGoal, &REALTIME_PUSHER)
    }

    /// The real-time inverted-pendulum configuration (40 ms period): the cart-pole's
    /// numbers, the same bodies at the same rate; balancing needs no longer horizon than
    /// swinging up.
    pub fn realtime_inverted_pendulum() -> Self {
        Self::realtime(Task::InvertedPendulum, &REALTIME_CARTPOLE)
    }

    fn realtime(task: Task, numbers: &RealtimeNumbers) -> Self {
        Self {
            horizon: numbers.horizon,
            population: numbers.population,
            elites: numbers.elites,
            iterations: numbers.iterations,
            particles: numbers.particles,
            optimizer: Optimizer::ICem,
            noise_beta: numbers.noise_beta,
            keep_elites_fraction: numbers.keep_elites_fraction,
            population_decay: numbers.population_decay,
            budget_us: Some(numbers.budget_us),
            ..Self::pets_paper(task)
        }
    }

    /// Checks the settings against the model and the action bounds.
    pub fn validate(
        &self,
        action_dim: usize,
        bounds: &[(f32, f32)],
        ensemble_size: usize,
    ) -> Result<(), ConfigError> {
        let positive = [
            ("horizon", self.horizon),
            ("population", self.population),
            ("elites", self.elites),
            ("iterations", self.iterations),
            ("particles", self.particles),
            ("ensemble_size", ensemble_size),
            ("action_dim", action_dim),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero { key });
        }
        // Sizes a settings file may ask for are refused by name before the planner
        // allocates for them (fuzzing found `particles = 530000` aborting on a failed
        // 7 GB allocation instead).
        let sizes = [
            ("horizon", self.horizon, MAX_HORIZON),
            ("population", self.population, MAX_POPULATION),
            ("particles", self.particles, MAX_PARTICLES),
        ];
        for (key, value, max) in sizes {
            if value > max {
                return Err(ConfigError::TooLarge { key, value, max });
            }
        }
        let products = [
            (
                "population × particles",
                self.population * self.particles,
                MAX_ROLLOUT_ROWS,
            ),
            (
                "horizon × population",
                self.horizon * self.population,
                MAX_CANDIDATE_STEPS,
            ),
        ];
        for (key, value, max) in products {
            if value > max {
                return Err(ConfigError::TooLarge { key, value, max });
            }
        }
        if self.elites > self.population {
            return Err(ConfigError::TooManyElites {
                elites: self.elites,
                population: self.population,
            });
        }
        let sampled = self.propagation != Propagation::Expectation;
        if sampled && !self.particles.is_multiple_of(ensemble_size) {
            return Err(ConfigError::ParticlesNotMultiple {
                particles: self.particles,
                ensemble_size,
            });
        }
        let fractions = [
            ("alpha", self.alpha, 0.0, 1.0),
            ("keep_elites_fraction", self.keep_elites_fraction, 0.0, 1.0),
            ("latency_fraction", self.latency_fraction, 0.0, 1.0),
        ];
        for (key, value, lo, hi) in fractions {
            if !(lo..hi + f32::EPSILON).contains(&value) {
                return Err(ConfigError::OutOfRange { key, value });
            }
        }
        if !(self.epsilon_variance >= 0.0 && self.epsilon_variance.is_finite()) {
            return Err(ConfigError::OutOfRange {
                key: "epsilon_variance",
                value: self.epsilon_variance,
            });
        }
        if !(self.population_decay >= 1.0 && self.population_decay.is_finite()) {
            return Err(ConfigError::OutOfRange {
                key: "population_decay",
                value: self.population_decay,
            });
        }
        if !(0.0..=4.0).contains(&self.noise_beta) {
            return Err(ConfigError::OutOfRange {
                key: "noise_beta",
                value: self.noise_beta,
            });
        }
        if bounds.len() != action_dim {
            return Err(ConfigError::BoundsLength {
                got: bounds.len(),
                action_dim,
            });
        }
        for (index, &(low, high)) in bounds.iter().enumerate() {
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err(ConfigError::Bounds { index, low, high });
            }
        }
        Ok(())
    }
}

/// Largest horizon a planner takes (steps; the shipped ones plan 20–30).
pub const MAX_HORIZON: usize = 10_000;
/// Largest population (the shipped planners sample 80, the PETS paper's 400).
pub const MAX_POPULATION: usize = 1_000_000;
/// Largest particle count per candidate (the shipped planners use 5, the paper 20).
pub const MAX_PARTICLES: usize = 10_000;
/// Largest `population × particles`: the rollout's rows, each a few state-sized
/// buffers (2²⁰ rows of a 32-channel state: about 0.7 GB). The paper's cart-pole: 8,000.
pub const MAX_ROLLOUT_ROWS: usize = 1 << 20;
/// Largest `horizon × population`: the candidate sequences' steps (2²⁴ steps of a
/// 16-channel action: 1 GB). The paper's cart-pole: 10,000.
pub const MAX_CANDIDATE_STEPS: usize = 1 << 24;

/// The numbers of a real-time configuration ([`PlannerConfig::realtime_cartpole`],
/// [`PlannerConfig::realtime_pendulum`]), in one place.
struct RealtimeNumbers {
    horizon: usize,
    population: usize,
    elites: usize,
    iterations: usize,
    particles: usize,
    noise_beta: f32,
    keep_elites_fraction: f32,
    population_decay: f32,
    budget_us: u64,
}

const REALTIME_CARTPOLE: RealtimeNumbers = RealtimeNumbers {
    horizon: 20,
    population: 80,
    elites: 10,
    iterations: 3,
    particles: 5,
    noise_beta: 2.0,
    keep_elites_fraction: 0.3,
    // Constant population: the ensemble's batch size N stays fixed, so ONNX Runtime
    // never rebuilds its tensors for a new N on the control thread.
    population_decay: 1.0,
    budget_us: 25_000,
};

const REALTIME_PENDULUM: RealtimeNumbers = RealtimeNumbers {
    horizon: 25,
    budget_us: 30_000,
    ..REALTIME_CARTPOLE
};

const REALTIME_PUSHER: RealtimeNumbers = RealtimeNumbers {
    budget_us: 50_000,
    ..REALTIME_CARTPOLE
};

/// The size of a dynamics ensemble: what the planner's budget was measured with and
/// what a trainer should build (`ensemble_size` members, each an MLP of
/// `hidden_layers` swish layers of `hidden_units`, inputs `S + A`, outputs `2·S`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleShape {
    pub ensemble_size: usize,
    pub hidden_layers: usize,
    pub hidden_units: usize,
}

/// `5 × 3×64`: members × hidden layers × units.
impl std::fmt::Display for EnsembleShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} × {}×{}",
            self.ensemble_size, self.hidden_layers, self.hidden_units
        )
    }
}

/// A planner's anytime budget as a person reads it: `25000 µs`, or `no budget`.
pub fn budget_text(budget_us: Option<u64>) -> String {
    budget_us.map_or_else(|| "no budget".to_owned(), |us| format!("{us} µs"))
}

impl EnsembleShape {
    /// The PETS paper's cart-pole network as this project benchmarks it: 5 members of
    /// 3 hidden layers of 500 swish units (mbrl-lib's cart-pole config uses 4 × 200).
    pub const PETS: Self = Self {
        ensemble_size: 5,
        hidden_layers: 3,
        hidden_units: 500,
    };

    /// The shipped real-time model per task, sized so that a plan of
    /// [`PlannerConfig::for_task`] fits the task's control period on one core.
    pub const fn for_task(task: Task) -> Self {
        match task {
            Task::CartpoleSwingup
            | Task::PendulumSwingup
            | Task::PushToGoal
            | Task::InvertedPendulum => Self {
                ensemble_size: 5,
                hidden_layers: 3,
                hidden_units: 64,
            },
        }
    }

    /// Layer widths `[S + A, H, …, H, 2·S]`.
    pub fn layer_sizes(&self, state_dim: usize, action_dim: usize) -> Vec<usize> {
        let mut sizes = vec![state_dim + action_dim];
        sizes.extend(std::iter::repeat_n(self.hidden_units, self.hidden_layers));
        sizes.push(2 * state_dim);
        sizes
    }

    /// Multiply-add flops of the whole ensemble per row: `2·E·Σ in·out` over the MLP
    /// layers (activations, standardisation and the log-variance clamp not counted).
    pub fn flops_per_row(&self, state_dim: usize, action_dim: usize) -> u64 {
        let sizes = self.layer_sizes(state_dim, action_dim);
        let macs: usize = sizes.windows(2).map(|w| w[0] * w[1]).sum();
        2 * (self.ensemble_size * macs) as u64
    }
}

/// Why a planner configuration was rejected.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("`{key}` must be at least 1")]
    Zero { key: &'static str },
    #[error("`{key}` = {value} exceeds {max}, more than a planner can hold in memory")]
    TooLarge {
        key: &'static str,
        value: usize,
        max: usize,
    },
    #[error("`elites` ({elites}) exceeds `population` ({population})")]
    TooManyElites { elites: usize, population: usize },
    #[error("`particles` ({particles}) must be a multiple of the ensemble size ({ensemble_size})")]
    ParticlesNotMultiple {
        particles: usize,
        ensemble_size: usize,
    },
    #[error("`{key}` = {value} is out of range")]
    OutOfRange { key: &'static str, value: f32 },
    #[error("{got} action bounds given for {action_dim} action channels")]
    BoundsLength { got: usize, action_dim: usize },
    #[error("action bound {index} is [{low}, {high}], expected finite with low < high")]
    Bounds { index: usize, low: f32, high: f32 },
}
