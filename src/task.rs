//! Tasks: what the robot is asked to do, as typed definitions with their rewards.
//!
//! The rewards are exactly the benchmarks' (PETS cart-pole swing-up, Gymnasium
//! Pendulum-v1); planar pushing has a dense reward of its own ([`push_reward`]) and a
//! success test ([`push_succeeded`]); Gymnasium's InvertedPendulum-v5 (balance, served by
//! firmware-bridge/gym) a smooth form of its alive bonus ([`inverted_pendulum_reward`]). A reward scores the transition `(s_t, u_t) → s_{t+1}` from the state
//! reached and the action taken, as the PETS environments do. Pure functions: no
//! allocation, usable on the control thread and inside the planner.

use serde::{Deserialize, Serialize};

use crate::control::SuccessFn;

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
    /// Planar pushing: push the puck into the goal region. State `[pusher_x_m,
    /// pusher_y_m, puck_x_m, puck_y_m, pusher_vx, pusher_vy, puck_vx, puck_vy]` (m, m/s),
    /// action `[force_x_newtons, force_y_newtons]` in `[-5, 5]` each.
    PushToGoal,
    /// Gymnasium InvertedPendulum-v5 on MuJoCo: keep the pole up. The PETS cart-pole's
    /// bodies with the pole standing, a rail of ±1 m and a hinge stop at ±90° from
    /// upright; state and action in the cart-pole's convention (`theta = π` upright; the
    /// bridge adds π to MuJoCo's hinge angle), 25 Hz. Never terminates: the episode runs
    /// its steps whatever the pole does (Gymnasium ends it when |θ − π| > 0.2).
    InvertedPendulum,
}

impl Task {
    /// Reward for taking `action` and arriving in `next_state`.
    pub fn reward(self, next_state: &[f32], action: &[f32]) -> f32 {
        match self {
            Self::CartpoleSwingup => cartpole_reward(next_state, action),
            Self::PendulumSwingup => pendulum_reward(next_state, action),
            Self::PushToGoal => push_reward(next_state, action),
            Self::InvertedPendulum => inverted_pendulum_reward(next_state, action),
        }
    }

    /// [`Task::reward`] as a function pointer (a phase carries it to the control thread).
    pub const fn reward_fn(self) -> fn(&[f32], &[f32]) -> f32 {
        match self {
            Self::CartpoleSwingup => cartpole_reward,
            Self::PendulumSwingup => pendulum_reward,
            Self::PushToGoal => push_reward,
            Self::InvertedPendulum => inverted_pendulum_reward,
        }
    }

    /// The state test that completes the task early (a forward phase ends on it), if the
    /// task has one: the pusher's puck at rest in the goal. A swing-up has none: it must
    /// also balance for the trial's steps.
    pub const fn success_fn(self) -> Option<SuccessFn> {
        match self {
            Self::CartpoleSwingup | Self::PendulumSwingup | Self::InvertedPendulum => None,
            Self::PushToGoal => Some(push_succeeded),
        }
    }

    /// Steps per trial in the benchmark (the pusher's: 10 s at 10 Hz; the expert needs
    /// 3–5 s; the inverted pendulum's 8 s at 25 Hz, where Gymnasium's episode is 1000
    /// steps: a pole that stays up for 8 s under MPC stays up).
    pub const fn episode_steps(self) -> usize {
        match self {
            Self::CartpoleSwingup | Self::PendulumSwingup | Self::InvertedPendulum => 200,
            Self::PushToGoal => 100,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::CartpoleSwingup => "cartpole_swingup",
            Self::PendulumSwingup => "pendulum_swingup",
            Self::PushToGoal => "push_to_goal",
            Self::InvertedPendulum => "inverted_pendulum",
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

/// Gymnasium InvertedPendulum-v5's bound: the pole within this of upright is alive.
pub const INVERTED_PENDULUM_ALIVE_RAD: f32 = 0.2;

/// The inverted pendulum's reward, for the planner: `exp(−(φ / 0.2)²) − 0.1·x²` with
/// `φ = θ − π` wrapped to `[−π, π)` (0 upright) and `x` the cart (m). Gymnasium's reward
/// is 1 a step while |φ| ≤ 0.2 and the episode ends past it; a robot has no end, and a
/// step function gives the planner no slope, so this is its smooth form: 1 upright, e⁻¹
/// at the bound, near 0 fallen; the small cart term keeps the cart off the rail's stops
/// at ±1 m (at most 0.1 a step). NaN for a state shorter than 2.
pub fn inverted_pendulum_reward(next_state: &[f32], _action: &[f32]) -> f32 {
    let Some(&[x, theta]) = next_state.get(..2) else {
        return f32::NAN;
    };
    let phi = wrap_angle_rad(theta - std::f32::consts::PI) / INVERTED_PENDULUM_ALIVE_RAD;
    (-phi * phi).exp() - 0.1 * x * x
}

/// Whether the pole is within Gymnasium's alive bound, `|θ − π| ≤ 0.2` (wrapped).
pub fn inverted_pendulum_alive(state: &[f32]) -> bool {
    state.len() >= 2
        && wrap_angle_rad(state[1] - std::f32::consts::PI).abs() <= INVERTED_PENDULUM_ALIVE_RAD
}

/// The centre of the pusher task's goal region on the table, metres.
pub const PUSH_GOAL_M: [f32; 2] = [0.25, 0.15];
/// The goal region's radius: the puck's centre within this of [`PUSH_GOAL_M`], metres.
pub const PUSH_GOAL_RADIUS_M: f32 = 0.05;
/// The puck counts as at rest below this speed, m/s.
pub const PUSH_REST_SPEED_M_PER_S: f32 = 0.05;

/// The pusher's dense reward: `−(‖p − b‖ + 2·‖b − g‖ + 0.001·‖u‖²)` with `p` the pusher,
/// `b` the puck's centre, `g` the goal (m) and `u` the force (N): approach the puck,
/// bring it to the goal (weighted twice, so pushing it away to reach it never pays), and
/// a small effort penalty (at most 0.05 a step at the 5 N limits, against distances of
/// tenths of metres). NaN for a state shorter than 4.
pub fn push_reward(next_state: &[f32], action: &[f32]) -> f32 {
    let Some(&[px, py, bx, by]) = next_state.get(..4) else {
        return f32::NAN;
    };
    let to_puck = ((bx - px) * (bx - px) + (by - py) * (by - py)).sqrt();
    let [gx, gy] = PUSH_GOAL_M;
    let to_goal = ((gx - bx) * (gx - bx) + (gy - by) * (gy - by)).sqrt();
    let effort: f32 = action.iter().map(|u| u * u).sum();
    -(to_puck + 2.0 * to_goal + 0.001 * effort)
}

/// The pusher task succeeds when the puck's centre is within [`PUSH_GOAL_RADIUS_M`] of
/// the goal and it is nearly at rest (slower than [`PUSH_REST_SPEED_M_PER_S`]).
pub fn push_succeeded(state: &[f32]) -> bool {
    let Some(&[_, _, bx, by, _, _, bvx, bvy]) = state.get(..8) else {
        return false;
    };
    let [gx, gy] = PUSH_GOAL_M;
    let (dx, dy) = (bx - gx, by - gy);
    let r = PUSH_GOAL_RADIUS_M;
    let v = PUSH_REST_SPEED_M_PER_S;
    dx * dx + dy * dy < r * r && bvx * bvx + bvy * bvy < v * v
}

/// Where the pusher task's demonstrations start (pusher, then puck), metres: the mean of
/// the simulator's reset.
pub const PUSH_START_M: [f32; 4] = [-0.25, 0.0, 0.0, 0.0];

/// The pusher's rest: both bodies back where the demonstrations start (a backward
/// phase's reward). `−(‖p − p₀‖ + ‖b − b₀‖ + 0.1·(‖ṗ‖ + ‖ḃ‖) + 0.001·‖u‖²)`, 0 at rest
/// there. NaN for a state shorter than 8.
pub fn push_rest_reward(next_state: &[f32], action: &[f32]) -> f32 {
    let Some(&[px, py, bx, by, pvx, pvy, bvx, bvy]) = next_state.get(..8) else {
        return f32::NAN;
    };
    let [p0x, p0y, b0x, b0y] = PUSH_START_M;
    let pusher = ((px - p0x) * (px - p0x) + (py - p0y) * (py - p0y)).sqrt();
    let puck = ((bx - b0x) * (bx - b0x) + (by - b0y) * (by - b0y)).sqrt();
    let speed = (pvx * pvx + pvy * pvy).sqrt() + (bvx * bvx + bvy * bvy).sqrt();
    let effort: f32 = action.iter().map(|u| u * u).sum();
    -(pusher + puck + 0.1 * speed + 0.001 * effort)
}

/// Whether the pusher task is at rest where its demonstrations start: pusher and puck
/// each within 4 cm of their start positions and slower than 5 cm/s.
pub fn push_at_rest(state: &[f32]) -> bool {
    let Some(&[px, py, bx, by, pvx, pvy, bvx, bvy]) = state.get(..8) else {
        return false;
    };
    let [p0x, p0y, b0x, b0y] = PUSH_START_M;
    let near = |dx: f32, dy: f32| dx * dx + dy * dy < 0.04 * 0.04;
    let slow = |vx: f32, vy: f32| vx * vx + vy * vy < 0.05 * 0.05;
    near(px - p0x, py - p0y) && near(bx - b0x, by - b0y) && slow(pvx, pvy) && slow(bvx, bvy)
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
    fn push_reward_is_zero_only_with_the_pusher_on_the_puck_at_the_goal() {
        let [gx, gy] = PUSH_GOAL_M;
        let at_goal = [gx, gy, gx, gy, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(push_reward(&at_goal, &[0.0, 0.0]), 0.0);
        assert!(push_succeeded(&at_goal));
        let moving = [gx, gy, gx, gy, 0.0, 0.0, 0.1, 0.0];
        assert!(!push_succeeded(&moving));
        let start = [-0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let expected = 0.25 + 2.0 * (gx * gx + gy * gy).sqrt() + 0.001 * 25.0;
        assert!((push_reward(&start, &[5.0, 0.0]) + expected).abs() < 1e-6);
        assert!(!push_succeeded(&start));
        assert!(push_at_rest(&start));
        assert_eq!(push_rest_reward(&start, &[0.0, 0.0]), 0.0);
        assert!(push_reward(&[0.0; 3], &[0.0, 0.0]).is_nan());
        assert!(!push_succeeded(&[0.0; 3]));
        assert!(Task::PushToGoal.success_fn().is_some_and(|f| f(&at_goal)));
        assert!(Task::CartpoleSwingup.success_fn().is_none());
    }

    #[test]
    fn inverted_pendulum_reward_is_one_upright_falls_off_past_gymnasiums_bound() {
        use std::f32::consts::PI;
        let r = |x: f32, theta: f32| inverted_pendulum_reward(&[x, theta, 0.0, 0.0], &[3.0]);
        assert_eq!(r(0.0, PI), 1.0);
        assert_eq!(r(0.0, -PI), r(0.0, PI));
        assert!((r(0.0, PI + 0.2) - (-1.0f32).exp()).abs() < 1e-6);
        assert!((r(0.0, PI - 0.2) - r(0.0, PI + 0.2)).abs() < 1e-6);
        assert!(r(0.0, PI + 0.6) < 1e-3);
        assert!(r(0.0, 0.0) < 1e-30);
        assert!((r(1.0, PI) - 0.9).abs() < 1e-6);
        assert!(inverted_pendulum_alive(&[0.0, PI + 0.19, 0.0, 0.0]));
        assert!(!inverted_pendulum_alive(&[0.0, PI - 0.21, 0.0, 0.0]));
        assert!(inverted_pendulum_alive(&[0.0, 3.0 * PI, 0.0, 0.0]));
        assert!(inverted_pendulum_reward(&[0.0], &[0.0]).is_nan());
        assert_eq!(
            Task::InvertedPendulum.reward(&[0.0, PI, 0.0, 0.0], &[1.0]),
            1.0
        );
    }

    #[test]
    fn pendulum_reward_wraps_the_angle() {
        let r = pendulum_reward(&[2.0 * std::f32::consts::PI + 0.5, 1.0], &[2.0]);
        assert!((r + (0.25 + 0.1 + 0.004)).abs() < 1e-5);
    }
}
