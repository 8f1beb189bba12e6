//! Tasks: what the robot is asked to do, as typed definitions with their rewards.
//!
//! The rewards are exactly the benchmarks' (PETS cart-pole swing-up, Gymnasium
//! Pendulum-v1). A reward scores the transition `(s_t, u_t) → s_{t+1}` from the state
//! reached and the action taken, as the PETS environments do. Pure functions: no
//! allocation, usable on the control thread and inside the planner.

use serde::{Deserialize, Serialize};

/// Cart-pole pole length in metres (PETS benchmark).
pub const CARTPOLE_POLE_LENGTH_M: f32 = 0.6;

/// The tasks handful knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// PETS cart-pole swing-up. State `[x_m, theta_rad, x_dot_m_per_s, theta_dot_rad_per_s]`,
    /// `theta = 0` hanging down; action `[u]` in `[-3, 3]` (force = 100·u newtons).
    CartpoleSwingup,
    /// Gymnasium Pendulum-v1. State `[theta_rad, theta_dot_rad_per_s]`, `theta = 0`
    /// upright; action `[torque_newton_metres]` in `[-2, 2]`.
    PendulumSwingup,
}

impl Task {
    /// Reward for taking `action` and arriving in `next_state`.
    pub fn reward(self, next_state: &[f32], action: &[f32]) -> f32 {
        match self {
            Self::CartpoleSwingup => cartpole_reward(next_state, action),
            Self::PendulumSwingup => pendulum_reward(next_state, action),
        }
    }

    /// [`Task::reward`] as a function pointer (a phase carries it to the control thread).
    pub const fn reward_fn(self) -> fn(&[f32], &[f32]) -> f32 {
        match self {
            Self::CartpoleSwingup => cartpole_reward,
            Self::PendulumSwingup => pendulum_reward,
        }
    }

    /// Steps per trial in the benchmark.
    pub const fn episode_steps(self) -> usize {
        match self {
            Self::CartpoleSwingup | Self::PendulumSwingup => 200,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::CartpoleSwingup => "cartpole_swingup",
            Self::PendulumSwingup => "pendulum_swingup",
        }
    }
}

/// Pole tip position `(x, y)` in metres: `(x − l·sin θ, −l·cos θ)`.
pub fn cartpole_tip_m(state: &[f32]) -> (f32, f32) {
    let (x, theta) = (state[0], state[1]);
    (
        x - CARTPOLE_POLE_LENGTH_M * theta.sin(),
        -CARTPOLE_POLE_LENGTH_M * theta.cos(),
    )
}

/// PETS: `exp(−‖tip − (0, l)‖² / l²) − 0.01·‖u‖²`.
pub fn cartpole_reward(next_state: &[f32], action: &[f32]) -> f32 {
    let (tip_x, tip_y) = cartpole_tip_m(next_state);
    let l = CARTPOLE_POLE_LENGTH_M;
    let dist_sq = tip_x * tip_x + (tip_y - l) * (tip_y - l);
    let effort: f32 = action.iter().map(|u| u * u).sum();
    (-dist_sq / (l * l)).exp() - 0.01 * effort
}

/// The cart-pole's rest: pole hanging still below a cart still at the centre of the rail,
/// where the demonstrations start. `exp(−‖tip − (0, −l)‖² / l² − x²) − 0.01·(ẋ² + 0.1·θ̇²)
/// − 0.01·‖u‖²`: 1 at rest, falling off with distance from it. A backward phase's reward.
pub fn cartpole_rest_reward(next_state: &[f32], action: &[f32]) -> f32 {
    if next_state.len() < 4 {
        return f32::NAN;
    }
    let (tip_x, tip_y) = cartpole_tip_m(next_state);
    let l = CARTPOLE_POLE_LENGTH_M;
    let x = next_state[0];
    let dist_sq = tip_x * tip_x + (tip_y + l) * (tip_y + l);
    let (x_dot, theta_dot) = (next_state[2], next_state[3]);
    let effort: f32 = action.iter().map(|u| u * u).sum();
    (-dist_sq / (l * l) - x * x).exp()
        - 0.01 * (x_dot * x_dot + 0.1 * theta_dot * theta_dot)
        - 0.01 * effort
}

/// Whether the cart-pole is at rest: cart within 0.1 m of the centre and slower than
/// 0.2 m/s, pole within 0.2 rad of hanging and slower than 0.5 rad/s.
pub fn cartpole_at_rest(state: &[f32]) -> bool {
    state.len() >= 4
        && state[0].abs() < 0.1
        && wrap_angle_rad(state[1]).abs() < 0.2
        && state[2].abs() < 0.2
        && state[3].abs() < 0.5
}

/// Angle wrapped into `[−π, π)`.
pub fn wrap_angle_rad(theta: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    (theta + PI).rem_euclid(TAU) - PI
}

/// Gymnasium Pendulum-v1: `−(θ² + 0.1·θ̇² + 0.001·u²)` with θ wrapped to `[−π, π)`.
/// Gymnasium scores the state the step starts from; here the state reached is scored,
/// which is the same sum over a trial shifted by one step.
pub fn pendulum_reward(next_state: &[f32], action: &[f32]) -> f32 {
    let theta = wrap_angle_rad(next_state[0]);
    let theta_dot = next_state[1];
    let u = action[0];
    -(theta * theta + 0.1 * theta_dot * theta_dot + 0.001 * u * u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cartpole_reward_is_one_upright_and_small_hanging() {
        let upright = [0.0, std::f32::consts::PI, 0.0, 0.0];
        assert!((cartpole_reward(&upright, &[0.0]) - 1.0).abs() < 1e-6);
        let hanging = [0.0, 0.0, 0.0, 0.0];
        // tip at (0, -0.6): distance² 1.44 / 0.36 = 4 → e^-4.
        assert!((cartpole_reward(&hanging, &[1.0]) - ((-4.0f32).exp() - 0.01)).abs() < 1e-6);
    }

    #[test]
    fn pendulum_reward_wraps_the_angle() {
        let r = pendulum_reward(&[2.0 * std::f32::consts::PI + 0.5, 1.0], &[2.0]);
        assert!((r + (0.25 + 0.1 + 0.004)).abs() < 1e-5);
    }
}
