//! Simulated physics: the plants behind the simulated robot, and the analytic models
//! the planner and the expert use.
//!
//! A [`Plant`] owns its state in SI units (f64) and advances one control period per
//! [`Plant::step`]. Its [`PlantSpec`] is the ground truth the simulated firmware
//! announces (channels, limits, period); the host's calibration is checked against it at
//! the handshake. Plants never touch I/O, clocks or threads.
//!
//! Start states. [`Plant::reset`] draws the start of an episode from the task's start
//! distribution with the simulator's `ChaCha8Rng::seed_from_u64(seed)` (the same seed,
//! the same start); [`Plant::set_state`] sets it exactly (the simulator's reset to a
//! given state, `CAP_RESET_TO`, which refuses a state at a plant limit):
//!
//! | plant | at power-up ([`cartpole::Cartpole::new`], [`pendulum::Pendulum::new`], [`pusher::Pusher::new`]) | `reset` draws |
//! | --- | --- | --- |
//! | cart-pole `[x, θ, ẋ, θ̇]` | at rest hanging at the rail's centre, all 0 | each coordinate independently from N(0, 0.1²), as PETS |
//! | pendulum `[θ, θ̇]` (θ = 0 upright) | hanging at rest, `[π, 0]` | θ ~ U(−π, π), θ̇ ~ U(−1, 1) rad/s, as Gymnasium Pendulum-v1 |
//! | pusher `[p_x, p_y, b_x, b_y, ṗ_x, ṗ_y, ḃ_x, ḃ_y]` (pusher, puck) | at rest, pusher at (−0.25, 0) m, puck at (0, 0) m | each position coordinate from N(start, 0.02²) m about those starts, at rest |

pub mod cartpole;
pub mod pendulum;
pub mod pusher;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::task::Task;

/// One action channel of a plant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
    pub safe: f64,
}

/// One state channel of a plant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateSpec {
    pub name: &'static str,
    pub unit: &'static str,
}

/// What a plant is: its channels, limits and control period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlantSpec {
    pub robot_id: &'static str,
    pub task: Task,
    pub control_period_us: u32,
    pub states: &'static [StateSpec],
    pub actions: &'static [ActionSpec],
}

/// A simulated physical system.
pub trait Plant: Send {
    fn spec(&self) -> &'static PlantSpec;
    /// The current state, `spec().states.len()` values in SI units.
    fn state(&self) -> &[f64];
    /// Draws a new start state from the task's start distribution.
    fn reset(&mut self, rng: &mut ChaCha8Rng);
    /// Sets the state exactly (tests, replay).
    fn set_state(&mut self, state: &[f64]);
    /// Advances one control period applying `action` (already clamped by the firmware;
    /// the plant clamps again to its physical limits).
    fn step(&mut self, action: &[f64]);
    /// `FAULT_*` bits the plant raises now (e.g. `FAULT_LIMIT` on a rail stop).
    fn fault_flags(&self) -> u32;
}

/// A pure one-period transition `(state, action, next)` behind a pointer: a plant's
/// `transition`, or a closure over its [`PlantParams`].
pub type TransitionFn = dyn Fn(&[f64], &[f64], &mut [f64]) + Send + Sync;

/// The plants the simulator can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PlantKind {
    Cartpole,
    Pendulum,
    Pusher,
}

impl PlantKind {
    pub fn build(self) -> Box<dyn Plant> {
        match self {
            Self::Cartpole => Box::new(cartpole::Cartpole::new()),
            Self::Pendulum => Box::new(pendulum::Pendulum::new()),
            Self::Pusher => Box::new(pusher::Pusher::new()),
        }
    }

    pub fn spec(self) -> &'static PlantSpec {
        match self {
            Self::Cartpole => &cartpole::SPEC,
            Self::Pendulum => &pendulum::SPEC,
            Self::Pusher => &pusher::SPEC,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Cartpole => "cartpole",
            Self::Pendulum => "pendulum",
            Self::Pusher => "pusher",
        }
    }

    /// The simulated plant whose benchmark task is `task`; the inverted pendulum's is
    /// the cart-pole (the same bodies, standing: its `[plant]` gives the 1 m rail; the
    /// MuJoCo hinge stop at ±90° is not modelled).
    pub fn for_task(task: Task) -> Option<Self> {
        if task == Task::InvertedPendulum {
            return Some(Self::Cartpole);
        }
        [Self::Cartpole, Self::Pendulum, Self::Pusher]
            .into_iter()
            .find(|kind| kind.spec().task == task)
    }
}

/// A plant's physical parameters: the physics the simulator integrates and the analytic
/// model (the expert, `mpc-true`) assumes. From a calibration's `[plant]` table
/// ([`crate::calib`]); the defaults are the benchmarks' (PETS, Gymnasium; the pusher's own table).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "plant", rename_all = "snake_case")]
pub enum PlantParams {
    Cartpole(cartpole::CartpoleParams),
    Pendulum(pendulum::PendulumParams),
    Pusher(pusher::PusherParams),
}

impl PlantParams {
    /// The benchmark's parameters for `kind`.
    pub fn default_for(kind: PlantKind) -> Self {
        match kind {
            PlantKind::Cartpole => Self::Cartpole(cartpole::CartpoleParams::PETS),
            PlantKind::Pendulum => Self::Pendulum(pendulum::PendulumParams::GYMNASIUM),
            PlantKind::Pusher => Self::Pusher(pusher::PusherParams::DEFAULT),
        }
    }

    pub fn kind(&self) -> PlantKind {
        match self {
            Self::Cartpole(_) => PlantKind::Cartpole,
            Self::Pendulum(_) => PlantKind::Pendulum,
            Self::Pusher(_) => PlantKind::Pusher,
        }
    }

    /// A simulated plant with these parameters, at rest in its initial state.
    pub fn build(&self) -> Box<dyn Plant> {
        match *self {
            Self::Cartpole(p) => Box::new(cartpole::Cartpole::with_params(p)),
            Self::Pendulum(p) => Box::new(pendulum::Pendulum::with_params(p)),
            Self::Pusher(p) => Box::new(pusher::Pusher::with_params(p)),
        }
    }

    /// The pure one-period transition with these parameters (see [`transition`]).
    /// Allocation-free.
    pub fn transition(&self, state: &[f64], action: &[f64], next: &mut [f64]) {
        match self {
            Self::Cartpole(p) => p.transition(state, action, next),
            Self::Pendulum(p) => p.transition(state, action, next),
            Self::Pusher(p) => p.transition(state, action, next),
        }
    }
}

/// The pure one-control-period transition of `kind` from `state` under `action` (the
/// planner's analytic model and the expert's linearisation use it). Allocation-free.
pub fn transition(kind: PlantKind, state: &[f64], action: &[f64], next: &mut [f64]) {
    match kind {
        PlantKind::Cartpole => cartpole::transition(state, action, next),
        PlantKind::Pendulum => pendulum::transition(state, action, next),
        PlantKind::Pusher => pusher::transition(state, action, next),
    }
}
