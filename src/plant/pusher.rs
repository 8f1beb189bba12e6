//! Planar pushing: a force-controlled point pusher and a puck (a disc) on a walled
//! table, seen from above.
//!
//! Owns the physical parameters ([`PusherParams`]), the pure one-period [`transition`]
//! and the simulated [`Pusher`] plant. Never allocates, never panics on bad input (a
//! short state yields NaN, a missing or non-finite force component is the safe 0 N).
//! Nothing moves unless pushed: the plant changes its state only in [`Plant::step`] and
//! on an explicit reset, never by itself.
//!
//! # Model
//!
//! State `s = [p_x, p_y, b_x, b_y, ṗ_x, ṗ_y, ḃ_x, ḃ_y]` (SI: m, m/s): `p` the pusher,
//! `b` the puck's centre, in the table frame (origin at the table's centre, walls at
//! `x = ±half_width_m`, `y = ±half_depth_m`). Action `u = [f_x, f_y]`: the force on the
//! pusher in newtons, each clamped to `±force_limit_newtons` (5 N), held over the
//! 0.1 s control period, integrated in `substeps` substeps of `h = 0.1 s / substeps`.
//!
//! Forces on the pusher (mass `m_p`, a point with a contact radius `r_p`) and on the
//! puck (mass `m_b`, radius `r_b`), with `g = 9.81 m/s²`:
//!
//! ```text
//! pusher:  m_p p̈ = u − c_p ṗ + F_c + W(p, ṗ, r_p)
//! puck:    m_b b̈ =              − F_c + W(b, ḃ, r_b) + friction
//! ```
//!
//! - `c_p ṗ` (N·s/m): the pusher's viscous damping (its drive's back-EMF).
//! - `F_c` (N), pusher–puck contact, a penalty spring-damper along the normal
//!   `n = (b − p)/|b − p|` with penetration `δ = r_p + r_b − |b − p|` (m) and normal
//!   closing speed `v_n = (ṗ − ḃ)·n` (m/s): `F_c = −max(0, k_c δ + d_c v_n)·n` when
//!   `δ > 0`, else 0 (`k_c` N/m, `d_c` N·s/m; never pulling; frictionless, so no torque
//!   and the puck's spin is not modelled).
//! - `W` (N), a wall, the same spring-damper per wall against the body's edge: e.g. for
//!   the wall at `x = +X`, `δ = x + r − X`, `W_x = −max(0, k_w δ + d_w ẋ)` when `δ > 0`.
//! - friction (N): Coulomb friction of the puck on the table, `|F| ≤ μ m_b g`, opposing
//!   the sliding velocity. Integrated implicitly so that the puck stops exactly and
//!   stays stopped (no creep, no chatter): per substep the velocity without friction
//!   `v* = ḃ + h·F/m_b` (F: contact and wall forces) is computed; if `|v*| ≤ μ g h` the
//!   friction impulse cancels it (`ḃ' = 0`: sticking, which also holds a puck at rest
//!   under any push weaker than `μ m_b g`), else `ḃ' = v* − μ g h·v*/|v*|`.
//!
//! The pusher's damping is implicit too (`ṗ' = (ṗ + h·F/m_p)/(1 + h c_p/m_p)`, stable
//! for any `h`), then both positions advance with the new velocities (semi-implicit
//! Euler). The spring-dampers are explicit; with the defaults the stiffest mode is
//! `√(k_c (1/m_p + 1/m_b)) ≈ 83 rad/s`, and `h = 4 ms` keeps `ω h ≈ 0.33`, well inside
//! semi-implicit Euler's stability bound of 2. With damping and force off the kinetic
//! energy is conserved through a contact up to the contact damper's loss (tested).
//!
//! Faults: a body in contact with a wall (penetration > 0) raises `FAULT_LIMIT`, as
//! the cart-pole's rail stops do.

use handful_protocol::FAULT_LIMIT;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{ActionSpec, Plant, PlantSpec, StateSpec};
use crate::task::Task;

/// Channels, limits and period of the simulated pusher.
pub static SPEC: PlantSpec = PlantSpec {
    robot_id: "pusher-sim",
    task: Task::PushToGoal,
    control_period_us: 100_000,
    states: &[
        StateSpec {
            name: "pusher_x",
            unit: "m",
        },
        StateSpec {
            name: "pusher_y",
            unit: "m",
        },
        StateSpec {
            name: "puck_x",
            unit: "m",
        },
        StateSpec {
            name: "puck_y",
            unit: "m",
        },
        StateSpec {
            name: "pusher_vx",
            unit: "m/s",
        },
        StateSpec {
            name: "pusher_vy",
            unit: "m/s",
        },
        StateSpec {
            name: "puck_vx",
            unit: "m/s",
        },
        StateSpec {
            name: "puck_vy",
            unit: "m/s",
        },
    ],
    actions: &[
        ActionSpec {
            name: "force_x",
            unit: "N",
            min: -5.0,
            max: 5.0,
            safe: 0.0,
        },
        ActionSpec {
            name: "force_y",
            unit: "N",
            min: -5.0,
            max: 5.0,
            safe: 0.0,
        },
    ],
};

/// Number of state channels.
pub const STATE_DIM: usize = 8;
/// Number of action channels `[f_x, f_y]`.
pub const ACTION_DIM: usize = 2;

/// Where an episode starts (the mean of [`Plant::reset`]'s draw), metres.
pub const PUSHER_START_M: [f64; 2] = [-0.25, 0.0];
/// Where the puck starts (the mean of [`Plant::reset`]'s draw), metres.
pub const PUCK_START_M: [f64; 2] = [0.0, 0.0];
/// Standard deviation of each start coordinate about its mean, metres.
pub const START_NOISE_M: f64 = 0.02;

/// Physical parameters of the pusher. [`PusherParams::DEFAULT`] is the shipped table.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PusherParams {
    pub pusher_mass_kg: f64,
    /// The pusher's contact radius (a fingertip).
    pub pusher_radius_m: f64,
    pub pusher_damping_n_s_per_m: f64,
    pub puck_mass_kg: f64,
    pub puck_radius_m: f64,
    /// Coulomb friction coefficient of the puck on the table.
    pub friction_coefficient: f64,
    pub gravity_m_per_s2: f64,
    /// Pusher–puck penalty spring and damper.
    pub contact_stiffness_n_per_m: f64,
    pub contact_damping_n_s_per_m: f64,
    /// Body–wall penalty spring and damper.
    pub wall_stiffness_n_per_m: f64,
    pub wall_damping_n_s_per_m: f64,
    /// Walls at `x = ±half_width_m` and `y = ±half_depth_m`.
    pub half_width_m: f64,
    pub half_depth_m: f64,
    /// Force clamp `[−limit, limit]` per axis.
    pub force_limit_newtons: f64,
    pub control_period_s: f64,
    pub substeps: u32,
}

impl PusherParams {
    /// The shipped table: a 1 m × 0.8 m table, a 0.5 kg pusher, a 0.2 kg puck of 5 cm
    /// radius sliding at μ = 0.3 (it stops from 0.5 m/s in about 4 cm).
    pub const DEFAULT: Self = Self {
        pusher_mass_kg: 0.5,
        pusher_radius_m: 0.01,
        pusher_damping_n_s_per_m: 5.0,
        puck_mass_kg: 0.2,
        puck_radius_m: 0.05,
        friction_coefficient: 0.3,
        gravity_m_per_s2: 9.81,
        contact_stiffness_n_per_m: 1000.0,
        contact_damping_n_s_per_m: 2.0,
        wall_stiffness_n_per_m: 2000.0,
        wall_damping_n_s_per_m: 5.0,
        half_width_m: 0.5,
        half_depth_m: 0.4,
        force_limit_newtons: 5.0,
        control_period_s: 0.1,
        substeps: 25,
    };

    /// Kinetic energy of both bodies, joules.
    pub fn kinetic_energy_joules(&self, state: &[f64; STATE_DIM]) -> f64 {
        let [_, _, _, _, pvx, pvy, bvx, bvy] = *state;
        0.5 * self.pusher_mass_kg * (pvx * pvx + pvy * pvy)
            + 0.5 * self.puck_mass_kg * (bvx * bvx + bvy * bvy)
    }

    /// Penetration of a body of `radius_m` at `(x, y)` into the deepest wall (m; ≤ 0:
    /// no contact).
    pub fn wall_penetration_m(&self, x: f64, y: f64, radius_m: f64) -> f64 {
        let px = x.abs() + radius_m - self.half_width_m;
        let py = y.abs() + radius_m - self.half_depth_m;
        px.max(py)
    }

    /// Whether either body touches a wall in `state`.
    pub fn at_wall(&self, state: &[f64; STATE_DIM]) -> bool {
        self.wall_penetration_m(state[0], state[1], self.pusher_radius_m) > 0.0
            || self.wall_penetration_m(state[2], state[3], self.puck_radius_m) > 0.0
    }

    /// Wall force (N) on a body of `radius_m` at `pos` with velocity `vel`.
    fn wall_force(&self, pos: [f64; 2], vel: [f64; 2], radius_m: f64) -> [f64; 2] {
        let limits = [self.half_width_m, self.half_depth_m];
        let (k, d) = (self.wall_stiffness_n_per_m, self.wall_damping_n_s_per_m);
        std::array::from_fn(|axis| {
            let (x, v, limit) = (pos[axis], vel[axis], limits[axis]);
            let high = x + radius_m - limit;
            let low = -limit - (x - radius_m);
            if high > 0.0 {
                -(k * high + d * v).max(0.0)
            } else if low > 0.0 {
                (k * low - d * v).max(0.0)
            } else {
                0.0
            }
        })
    }

    /// Contact force (N) on the puck from the pusher (the pusher feels its opposite).
    fn contact_force_on_puck(&self, s: &[f64; STATE_DIM]) -> [f64; 2] {
        let (dx, dy) = (s[2] - s[0], s[3] - s[1]);
        let dist = (dx * dx + dy * dy).sqrt();
        let penetration = self.pusher_radius_m + self.puck_radius_m - dist;
        if penetration <= 0.0 {
            return [0.0, 0.0];
        }
        // Coincident centres: push along +x rather than divide by zero.
        let n = if dist > 1e-9 {
            [dx / dist, dy / dist]
        } else {
            [1.0, 0.0]
        };
        let closing = (s[4] - s[6]) * n[0] + (s[5] - s[7]) * n[1];
        let magnitude = (self.contact_stiffness_n_per_m * penetration
            + self.contact_damping_n_s_per_m * closing)
            .max(0.0);
        [magnitude * n[0], magnitude * n[1]]
    }

    /// One substep of `h` seconds under `force` on the pusher (see the module docs).
    fn substep(&self, s: &mut [f64; STATE_DIM], force: [f64; 2], h: f64) {
        let contact = self.contact_force_on_puck(s);
        let pusher_wall = self.wall_force([s[0], s[1]], [s[4], s[5]], self.pusher_radius_m);
        let puck_wall = self.wall_force([s[2], s[3]], [s[6], s[7]], self.puck_radius_m);
        let (mp, mb) = (self.pusher_mass_kg, self.puck_mass_kg);
        let damping = 1.0 + h * self.pusher_damping_n_s_per_m / mp;
        for axis in 0..2 {
            let f = force[axis] - contact[axis] + pusher_wall[axis];
            s[4 + axis] = (s[4 + axis] + h * f / mp) / damping;
        }
        let free = [
            s[6] + h * (contact[0] + puck_wall[0]) / mb,
            s[7] + h * (contact[1] + puck_wall[1]) / mb,
        ];
        let speed = (free[0] * free[0] + free[1] * free[1]).sqrt();
        let stop = self.friction_coefficient * self.gravity_m_per_s2 * h;
        if speed <= stop {
            s[6] = 0.0;
            s[7] = 0.0;
        } else {
            let keep = 1.0 - stop / speed;
            s[6] = free[0] * keep;
            s[7] = free[1] * keep;
        }
        for axis in 0..4 {
            s[axis] += h * s[4 + axis];
        }
    }

    /// One control period from `state` under `force` (each component clamped to the
    /// limit; a non-finite component is the safe 0 N).
    pub fn step_state(&self, state: &mut [f64; STATE_DIM], force: [f64; 2]) {
        let limit = self.force_limit_newtons;
        let force = force.map(|f| {
            if f.is_finite() {
                f.clamp(-limit, limit)
            } else {
                0.0
            }
        });
        let substeps = self.substeps.max(1);
        let h = self.control_period_s / f64::from(substeps);
        for _ in 0..substeps {
            self.substep(state, force, h);
        }
    }

    /// The pure transition with these parameters; see [`transition`].
    pub fn transition(&self, state: &[f64], action: &[f64], next: &mut [f64]) {
        let Some(s) = state.get(..STATE_DIM) else {
            next.iter_mut().for_each(|v| *v = f64::NAN);
            return;
        };
        let mut s: [f64; STATE_DIM] = std::array::from_fn(|i| s[i]);
        let force = [
            action.first().copied().unwrap_or(0.0),
            action.get(1).copied().unwrap_or(0.0),
        ];
        self.step_state(&mut s, force);
        next.iter_mut().zip(s).for_each(|(n, v)| *n = v);
    }
}

impl Default for PusherParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The pure pusher transition: one 0.1 s control period from `state` (8 values) under
/// `action` `[f_x, f_y]`, written to `next`; the same code path as
/// [`Pusher::step`](Plant::step), contacts and walls included. Allocation-free. A state
/// shorter than 8 fills `next` with NaN; a missing or non-finite force acts as 0.
pub fn transition(state: &[f64], action: &[f64], next: &mut [f64]) {
    PusherParams::DEFAULT.transition(state, action, next);
}

/// The simulated pusher plant.
#[derive(Clone, Debug)]
pub struct Pusher {
    params: PusherParams,
    state: [f64; STATE_DIM],
}

impl Pusher {
    /// The shipped table, pusher and puck at rest at their start positions.
    pub fn new() -> Self {
        Self::with_params(PusherParams::DEFAULT)
    }

    /// A pusher with other parameters, at rest at the start positions.
    pub fn with_params(params: PusherParams) -> Self {
        let [px, py] = PUSHER_START_M;
        let [bx, by] = PUCK_START_M;
        Self {
            params,
            state: [px, py, bx, by, 0.0, 0.0, 0.0, 0.0],
        }
    }

    /// The parameters this plant integrates with.
    pub fn params(&self) -> &PusherParams {
        &self.params
    }
}

impl Default for Pusher {
    fn default() -> Self {
        Self::new()
    }
}

impl Plant for Pusher {
    fn spec(&self) -> &'static PlantSpec {
        &SPEC
    }

    fn state(&self) -> &[f64] {
        &self.state
    }

    /// Pusher and puck at rest near their start positions: each position coordinate
    /// `~ N(start, 0.02²)`, velocities 0.
    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        let [px, py] = PUSHER_START_M;
        let [bx, by] = PUCK_START_M;
        for (v, start) in self.state.iter_mut().zip([px, py, bx, by]) {
            *v = start + START_NOISE_M * rng.sample::<f64, _>(StandardNormal);
        }
        self.state[4..].iter_mut().for_each(|v| *v = 0.0);
    }

    /// Ignores (with a warning) a state of the wrong length or with non-finite values.
    fn set_state(&mut self, state: &[f64]) {
        match <[f64; STATE_DIM]>::try_from(state) {
            Ok(s) if s.iter().all(|v| v.is_finite()) => self.state = s,
            _ => tracing::warn!(len = state.len(), "pusher: ignoring invalid set_state"),
        }
    }

    fn step(&mut self, action: &[f64]) {
        let force = [
            action.first().copied().unwrap_or(0.0),
            action.get(1).copied().unwrap_or(0.0),
        ];
        self.params.step_state(&mut self.state, force);
    }

    fn fault_flags(&self) -> u32 {
        if self.params.at_wall(&self.state) {
            FAULT_LIMIT
        } else {
            0
        }
    }
}
