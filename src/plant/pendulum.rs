//! Gymnasium Pendulum-v1: a uniform rod on a torque-driven pivot, integrated exactly as
//! Gymnasium does (semi-implicit Euler, speed clip).
//!
//! Owns the pendulum parameters ([`PendulumParams`]), the pure one-period
//! [`transition`] and the simulated [`Pendulum`] plant. `θ = 0` is upright, not wrapped.
//! Never allocates, never panics on bad input (a short state yields NaN, a missing or
//! non-finite torque is the safe torque 0). The pendulum raises no faults.
//!
//! One step of `dt = 0.05 s` with torque `u` clamped to `[−2, 2]`:
//!
//! ```text
//! θ̇' = clip(θ̇ + (3g/(2l)·sin θ + 3/(m l²)·u)·dt, −8, 8)      θ' = θ + θ̇'·dt
//! ```
//!
//! which is the rod `(m l²/3)·θ̈ = m g (l/2) sin θ + u` with energy
//! `E = (m l²/6)·θ̇² + m g (l/2)·cos θ` (the expert pumps it to `m g l/2`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{ActionSpec, Plant, PlantSpec, StateSpec};
use crate::task::Task;

/// Channels, limits and period of the simulated pendulum.
pub static SPEC: PlantSpec = PlantSpec {
    robot_id: "pendulum-sim",
    task: Task::PendulumSwingup,
    control_period_us: 50_000,
    states: &[
        StateSpec {
            name: "pole_angle",
            unit: "rad",
        },
        StateSpec {
            name: "pole_angular_velocity",
            unit: "rad/s",
        },
    ],
    actions: &[ActionSpec {
        name: "torque",
        unit: "N*m",
        min: -2.0,
        max: 2.0,
        safe: 0.0,
    }],
};

/// Number of state channels `[θ, θ̇]`.
pub const STATE_DIM: usize = 2;

/// Physical parameters of the pendulum. [`PendulumParams::GYMNASIUM`] is Pendulum-v1.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PendulumParams {
    pub gravity_m_per_s2: f64,
    pub mass_kg: f64,
    pub length_m: f64,
    pub timestep_s: f64,
    pub max_speed_rad_per_s: f64,
    pub max_torque_newton_metres: f64,
}

impl PendulumParams {
    /// Gymnasium Pendulum-v1 (`g = 10`).
    pub const GYMNASIUM: Self = Self {
        gravity_m_per_s2: 10.0,
        mass_kg: 1.0,
        length_m: 1.0,
        timestep_s: 0.05,
        max_speed_rad_per_s: 8.0,
        max_torque_newton_metres: 2.0,
    };

    /// Rod inertia about the pivot, `m l²/3`.
    pub fn inertia_kg_m2(&self) -> f64 {
        self.mass_kg * self.length_m * self.length_m / 3.0
    }

    /// Energy `(m l²/6)·θ̇² + m g (l/2)·cos θ`; `m g l/2` upright at rest.
    pub fn energy_joules(&self, theta_rad: f64, theta_dot_rad_per_s: f64) -> f64 {
        0.5 * self.inertia_kg_m2() * theta_dot_rad_per_s * theta_dot_rad_per_s
            + self.mass_kg * self.gravity_m_per_s2 * 0.5 * self.length_m * theta_rad.cos()
    }

    /// One Gymnasium step of `state` under `torque` (clamped; non-finite acts as 0).
    pub fn step_state(&self, state: &mut [f64; STATE_DIM], torque_newton_metres: f64) {
        let limit = self.max_torque_newton_metres;
        let u = if torque_newton_metres.is_finite() {
            torque_newton_metres.clamp(-limit, limit)
        } else {
            0.0
        };
        let [theta, theta_dot] = *state;
        let (g, m, l, dt) = (
            self.gravity_m_per_s2,
            self.mass_kg,
            self.length_m,
            self.timestep_s,
        );
        let accel = 3.0 * g / (2.0 * l) * theta.sin() + 3.0 / (m * l * l) * u;
        let max_speed = self.max_speed_rad_per_s;
        let new_theta_dot = (theta_dot + accel * dt).clamp(-max_speed, max_speed);
        *state = [theta + new_theta_dot * dt, new_theta_dot];
    }

    /// The pure transition with these parameters; see [`transition`].
    pub fn transition(&self, state: &[f64], action: &[f64], next: &mut [f64]) {
        let Some(&[theta, theta_dot]) = state.get(..STATE_DIM) else {
            next.iter_mut().for_each(|v| *v = f64::NAN);
            return;
        };
        let mut s = [theta, theta_dot];
        self.step_state(&mut s, action.first().copied().unwrap_or(0.0));
        next.iter_mut().zip(s).for_each(|(n, v)| *n = v);
    }
}

impl Default for PendulumParams {
    fn default() -> Self {
        Self::GYMNASIUM
    }
}

/// The pure Pendulum-v1 transition: one 0.05 s period from `state` `[θ, θ̇]` under
/// `action` `[torque]`, written to `next`; the same code path as
/// [`Pendulum::step`](Plant::step). Allocation-free. A state shorter than 2 fills
/// `next` with NaN; a missing or non-finite torque acts as 0.
pub fn transition(state: &[f64], action: &[f64], next: &mut [f64]) {
    PendulumParams::GYMNASIUM.transition(state, action, next);
}

/// The simulated pendulum plant.
#[derive(Clone, Debug)]
pub struct Pendulum {
    params: PendulumParams,
    state: [f64; STATE_DIM],
}

impl Pendulum {
    /// Pendulum-v1, hanging down at rest.
    pub fn new() -> Self {
        Self::with_params(PendulumParams::GYMNASIUM)
    }

    /// A pendulum with other parameters, hanging down at rest.
    pub fn with_params(params: PendulumParams) -> Self {
        Self {
            params,
            state: [std::f64::consts::PI, 0.0],
        }
    }

    /// The parameters this plant integrates with.
    pub fn params(&self) -> &PendulumParams {
        &self.params
    }
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

impl Plant for Pendulum {
    fn spec(&self) -> &'static PlantSpec {
        &SPEC
    }

    fn state(&self) -> &[f64] {
        &self.state
    }

    /// `θ ~ U(−π, π)`, `θ̇ ~ U(−1, 1)`, as Gymnasium.
    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        use std::f64::consts::PI;
        self.state = [rng.random_range(-PI..=PI), rng.random_range(-1.0..=1.0)];
    }

    /// Ignores (with a warning) a state of the wrong length or with non-finite values.
    fn set_state(&mut self, state: &[f64]) {
        match <[f64; STATE_DIM]>::try_from(state) {
            Ok(s) if s.iter().all(|v| v.is_finite()) => self.state = s,
            _ => tracing::warn!(len = state.len(), "pendulum: ignoring invalid set_state"),
        }
    }

    fn step(&mut self, action: &[f64]) {
        let u = action.first().copied().unwrap_or(0.0);
        self.params.step_state(&mut self.state, u);
    }

    fn fault_flags(&self) -> u32 {
        0
    }
}
