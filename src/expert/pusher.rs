//! The scripted pusher expert: go behind the puck as seen from the goal, push it in
//! along the line to the goal, stop.
//!
//! A velocity servo on the pusher: each mode picks a desired pusher velocity, and the
//! force is `m_p·k_v·(v* − ṗ) + c_p·v*` (the servo plus the drive's damping fed
//! forward), clamped to the force limit. It knows the geometry and the masses from
//! [`PusherParams`] and the goal from [`crate::task::PUSH_GOAL_M`]. [`Controller::act`]
//! never allocates and never panics: a short or non-finite observation is an error.

use crate::control::{ControlError, Controller, Observation};
use crate::plant::pusher::PusherParams;
use crate::task::PUSH_GOAL_M;

use super::read_state;

/// Tuning of [`PusherExpert`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PusherExpertParams {
    pub plant: PusherParams,
    /// Velocity servo gain, 1/s.
    pub velocity_gain_per_s: f64,
    /// Position gain of the approach, 1/s, and its top speed, m/s.
    pub approach_gain_per_s: f64,
    pub approach_speed_m_per_s: f64,
    /// Pushing speed: `push_gain_per_s` × the puck's distance to the goal, between
    /// `push_min_speed_m_per_s` and `push_max_speed_m_per_s`.
    pub push_gain_per_s: f64,
    pub push_min_speed_m_per_s: f64,
    pub push_max_speed_m_per_s: f64,
    /// Gap kept between pusher and puck at the point behind the puck, m.
    pub standoff_m: f64,
    /// The pusher counts as behind the puck within this of the push line, m (leaves
    /// the push at `push_exit_m`).
    pub push_enter_m: f64,
    pub push_exit_m: f64,
    /// The puck this close to the goal is in: stop pushing, m.
    pub done_m: f64,
}

impl Default for PusherExpertParams {
    fn default() -> Self {
        Self {
            plant: PusherParams::DEFAULT,
            velocity_gain_per_s: 10.0,
            approach_gain_per_s: 4.0,
            approach_speed_m_per_s: 0.5,
            push_gain_per_s: 2.0,
            push_min_speed_m_per_s: 0.05,
            push_max_speed_m_per_s: 0.25,
            standoff_m: 0.01,
            push_enter_m: 0.012,
            push_exit_m: 0.03,
            done_m: 0.015,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Approach,
    Push,
    Done,
}

/// Behind the puck, push it to the goal, stop (see the module docs).
#[derive(Clone, Debug)]
pub struct PusherExpert {
    params: PusherExpertParams,
    mode: Mode,
}

type Vec2 = [f64; 2];

fn sub(a: Vec2, b: Vec2) -> Vec2 {
    [a[0] - b[0], a[1] - b[1]]
}

fn dot(a: Vec2, b: Vec2) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}

fn norm(a: Vec2) -> f64 {
    dot(a, a).sqrt()
}

fn scale(a: Vec2, k: f64) -> Vec2 {
    [a[0] * k, a[1] * k]
}

fn add(a: Vec2, b: Vec2) -> Vec2 {
    [a[0] + b[0], a[1] + b[1]]
}

/// `a` shortened to at most `max` long.
fn limit(a: Vec2, max: f64) -> Vec2 {
    let n = norm(a);
    if n > max { scale(a, max / n) } else { a }
}

impl PusherExpert {
    pub fn new(params: PusherExpertParams) -> Self {
        Self {
            params,
            mode: Mode::Approach,
        }
    }

    /// The force `[f_x, f_y]` (N) for `state`, within the limits.
    pub fn action(&mut self, state: &[f64; 8]) -> Vec2 {
        let p = &self.params;
        let plant = &p.plant;
        let pusher = [state[0], state[1]];
        let puck = [state[2], state[3]];
        let pusher_v = [state[4], state[5]];
        let goal = [f64::from(PUSH_GOAL_M[0]), f64::from(PUSH_GOAL_M[1])];
        let to_goal = sub(goal, puck);
        let distance = norm(to_goal);
        if distance < p.done_m {
            self.mode = Mode::Done;
        } else if self.mode == Mode::Done && distance > 2.0 * p.done_m {
            self.mode = Mode::Approach;
        }
        let dir = if distance > 1e-9 {
            scale(to_goal, 1.0 / distance)
        } else {
            [1.0, 0.0]
        };
        let perp = [-dir[1], dir[0]];
        let contact = plant.pusher_radius_m + plant.puck_radius_m;
        // The pusher relative to the puck: along the push line (negative: behind) and
        // across it.
        let rel = sub(pusher, puck);
        let (along, across) = (dot(rel, dir), dot(rel, perp));
        let behind = sub(puck, scale(dir, contact + p.standoff_m));
        match self.mode {
            Mode::Approach if along < -0.5 * contact && across.abs() < p.push_enter_m => {
                self.mode = Mode::Push;
            }
            Mode::Push if across.abs() > p.push_exit_m || along > 0.0 => {
                self.mode = Mode::Approach;
            }
            _ => {}
        }
        let desired = match self.mode {
            Mode::Done => [0.0, 0.0],
            Mode::Push => {
                let speed = (p.push_gain_per_s * distance)
                    .clamp(p.push_min_speed_m_per_s, p.push_max_speed_m_per_s);
                // Along the line to the goal, steering back onto it.
                add(
                    scale(dir, speed),
                    scale(perp, -p.approach_gain_per_s * across),
                )
            }
            Mode::Approach => {
                // Not yet behind the puck: first round it on the side the pusher is on,
                // clear of it, then make for the point behind it.
                let clear = contact + 0.04;
                let target = if along > -0.5 * contact {
                    let side = if across >= 0.0 { 1.0 } else { -1.0 };
                    add(
                        puck,
                        add(scale(perp, side * clear), scale(dir, -0.5 * clear)),
                    )
                } else {
                    behind
                };
                limit(
                    scale(sub(target, pusher), p.approach_gain_per_s),
                    p.approach_speed_m_per_s,
                )
            }
        };
        let servo = plant.pusher_mass_kg * p.velocity_gain_per_s;
        let feedforward = plant.pusher_damping_n_s_per_m;
        let f = plant.force_limit_newtons;
        [0, 1].map(|axis| {
            (servo * (desired[axis] - pusher_v[axis]) + feedforward * desired[axis]).clamp(-f, f)
        })
    }
}

impl Controller for PusherExpert {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        let state = read_state::<8>(obs.state)?;
        let [fx, fy] = action else {
            return Err(ControlError::NotReady);
        };
        let [x, y] = self.action(&state);
        (*fx, *fy) = (x as f32, y as f32);
        Ok(())
    }

    fn reset(&mut self) {
        self.mode = Mode::Approach;
    }

    fn name(&self) -> &'static str {
        "pusher_expert"
    }
}
