//! The PETS cart-pole: a capsule cart on a rail with a capsule pole on a hinge, the
//! physics of the MuJoCo `cartpole.xml` of the PETS benchmark, integrated with RK4.
//!
//! Owns the rigid-body model ([`CartpoleParams`]), the pure one-period [`transition`]
//! and the simulated [`Cartpole`] plant. Never allocates, never panics on bad input
//! (a short state yields NaN, a missing or non-finite action is the safe action 0).
//!
//! # Model
//!
//! Generalised coordinates `q = (x, θ)`: cart position on the rail (`+x`) and hinge
//! angle about `+y`, `θ = 0` hanging down, not wrapped. The pole's centre of mass sits
//! `l_c = 0.3 m` from the hinge at `p = (x − l_c sin θ, −l_c cos θ)` (in the x–z plane),
//! so `ṗ = (ẋ − l_c cos θ·θ̇, l_c sin θ·θ̇)`. With cart mass `M`, pole mass `m`, pole
//! inertia `I_c` about its centre of mass (transverse axis) and `J = I_c + m l_c²`:
//!
//! ```text
//! T = ½ (M + m) ẋ² − m l_c cos θ · ẋ θ̇ + ½ J θ̇²        V = −m g l_c cos θ
//! ```
//!
//! Lagrange's equations `d/dt ∂L/∂q̇ − ∂L/∂q = τ − D` with `L = T − V` give
//! `M(q) q̈ = τ − C(q, q̇) − G(q) − D(q̇)`:
//!
//! ```text
//! M(q) = [ M + m        −m l_c cos θ ]   C = [ m l_c sin θ · θ̇² ]   G = [ 0             ]
//!        [ −m l_c cos θ   J          ]       [ 0                 ]       [ m g l_c sin θ ]
//! τ = [ 100·u, 0 ]      D = [ b_x ẋ, b_θ θ̇ ]   (MuJoCo joint damping, 1 on both joints)
//! ```
//!
//! `det M = (M + m) J − m² l_c² cos² θ > 0` for every θ, so the 2×2 solve never fails.
//! Total energy `E = T + V` obeys `dE/dt = 100·u·ẋ − b_x ẋ² − b_θ θ̇²`: conserved with
//! damping and force off (tested), decaying with damping on.
//!
//! Masses and inertia come from the capsules at density 1000 kg/m³ as MuJoCo computes
//! them (`inertiafromgeom`): a capsule is a cylinder plus two hemispheres, each
//! hemisphere shifted from its own centre of mass (`3r/8` from its flat face) to the
//! capsule's centre: `I = m_cyl (3r² + L²)/12 + m_sph (2r²/5 + h² + 3hr/4)`, `h = L/2`,
//! `m_sph` the mass of the whole sphere.
//!
//! Integration: classic RK4, `timestep_s = 0.02`, two substeps per 0.04 s control
//! period (frame_skip 2), force held over the period. The rail stops at ±2.5 m are hard
//! stops applied after each substep: `x` is clamped and the cart velocity into the stop
//! zeroed (an inelastic stop; the impulse on the pole is neglected). [`transition`]
//! includes the stops so the analytic model matches the plant.

use handful_protocol::FAULT_LIMIT;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{ActionSpec, Plant, PlantSpec, StateSpec};
use crate::task::Task;

/// Channels, limits and period of the simulated cart-pole.
pub static SPEC: PlantSpec = PlantSpec {
    robot_id: "cartpole-sim",
    task: Task::CartpoleSwingup,
    control_period_us: 40_000,
    states: &[
        StateSpec {
            name: "cart_position",
            unit: "m",
        },
        StateSpec {
            name: "pole_angle",
            unit: "rad",
        },
        StateSpec {
            name: "cart_velocity",
            unit: "m/s",
        },
        StateSpec {
            name: "pole_angular_velocity",
            unit: "rad/s",
        },
    ],
    actions: &[ActionSpec {
        name: "force",
        unit: "100N",
        min: -3.0,
        max: 3.0,
        safe: 0.0,
    }],
};

/// Number of state channels `[x, θ, ẋ, θ̇]`.
pub const STATE_DIM: usize = 4;
const DENSITY_KG_PER_M3: f64 = 1000.0;
const PI: f64 = std::f64::consts::PI;

/// Mass of a capsule of `radius_m` and cylinder length `length_m` at density 1000.
pub const fn capsule_mass_kg(radius_m: f64, length_m: f64) -> f64 {
    let cylinder_m3 = PI * radius_m * radius_m * length_m;
    let sphere_m3 = 4.0 / 3.0 * PI * radius_m * radius_m * radius_m;
    DENSITY_KG_PER_M3 * (cylinder_m3 + sphere_m3)
}

/// Moment of inertia of that capsule about a transverse axis through its centre.
pub const fn capsule_transverse_inertia_kg_m2(radius_m: f64, length_m: f64) -> f64 {
    let r = radius_m;
    let h = length_m / 2.0;
    let cylinder_kg = DENSITY_KG_PER_M3 * PI * r * r * length_m;
    let sphere_kg = DENSITY_KG_PER_M3 * 4.0 / 3.0 * PI * r * r * r;
    cylinder_kg * (3.0 * r * r + length_m * length_m) / 12.0
        + sphere_kg * (0.4 * r * r + h * h + 0.75 * h * r)
}

/// Physical parameters of the cart-pole. [`CartpoleParams::PETS`] is the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CartpoleParams {
    pub cart_mass_kg: f64,
    pub pole_mass_kg: f64,
    /// Hinge to the pole's centre of mass.
    pub pole_com_m: f64,
    /// Pole inertia about its centre of mass, transverse axis.
    pub pole_inertia_com_kg_m2: f64,
    pub gravity_m_per_s2: f64,
    pub slider_damping_n_s_per_m: f64,
    pub hinge_damping_n_m_s_per_rad: f64,
    /// Force per unit of action (the motor gear).
    pub force_per_unit_newtons: f64,
    /// Action clamp `[−limit, limit]` in action units.
    pub action_limit: f64,
    pub timestep_s: f64,
    pub substeps: u32,
    /// Hard rail stops at `±rail_limit_m`.
    pub rail_limit_m: f64,
}

/// The pole's radius (its capsule's) in the PETS model.
pub const POLE_RADIUS_M: f64 = 0.049;
/// The PETS pole's length (its capsule's cylinder, hinge to tip).
pub const PETS_POLE_LENGTH_M: f64 = 0.6;

impl CartpoleParams {
    /// The PETS benchmark's cart-pole.
    pub const PETS: Self = Self {
        cart_mass_kg: capsule_mass_kg(0.1, 0.2),
        pole_mass_kg: capsule_mass_kg(POLE_RADIUS_M, PETS_POLE_LENGTH_M),
        pole_com_m: PETS_POLE_LENGTH_M / 2.0,
        pole_inertia_com_kg_m2: capsule_transverse_inertia_kg_m2(POLE_RADIUS_M, PETS_POLE_LENGTH_M),
        gravity_m_per_s2: 9.81,
        slider_damping_n_s_per_m: 1.0,
        hinge_damping_n_m_s_per_rad: 1.0,
        force_per_unit_newtons: 100.0,
        action_limit: 3.0,
        timestep_s: 0.02,
        substeps: 2,
        rail_limit_m: 2.5,
    };

    /// These parameters with a pole `length_m` long (its centre of mass half way) of
    /// `mass_kg`: a capsule of the PETS radius whose inertia scales with its mass, so
    /// the PETS length and mass give the PETS pole exactly.
    pub fn with_pole(self, length_m: f64, mass_kg: f64) -> Self {
        let capsule_kg = capsule_mass_kg(POLE_RADIUS_M, length_m);
        Self {
            pole_mass_kg: mass_kg,
            pole_com_m: length_m / 2.0,
            pole_inertia_com_kg_m2: capsule_transverse_inertia_kg_m2(POLE_RADIUS_M, length_m)
                * (mass_kg / capsule_kg),
            ..self
        }
    }

    /// The pole's length, hinge to tip (twice the centre of mass).
    pub fn pole_length_m(&self) -> f64 {
        2.0 * self.pole_com_m
    }

    /// Pole inertia about the hinge, `J = I_c + m l_c²`.
    pub fn pole_inertia_hinge_kg_m2(&self) -> f64 {
        self.pole_inertia_com_kg_m2 + self.pole_mass_kg * self.pole_com_m * self.pole_com_m
    }

    /// Total mechanical energy `T + V` of `state` (zero potential at the hinge height).
    pub fn energy_joules(&self, state: &[f64; STATE_DIM]) -> f64 {
        let [_, theta, x_dot, theta_dot] = *state;
        let (m, lc) = (self.pole_mass_kg, self.pole_com_m);
        let kinetic = 0.5 * (self.cart_mass_kg + m) * x_dot * x_dot
            - m * lc * theta.cos() * x_dot * theta_dot
            + 0.5 * self.pole_inertia_hinge_kg_m2() * theta_dot * theta_dot;
        kinetic - m * self.gravity_m_per_s2 * lc * theta.cos()
    }

    /// Accelerations `(ẍ, θ̈)` from `M(q) q̈ = τ − C − G − D` under `force_newtons`.
    pub fn accelerations(&self, state: &[f64; STATE_DIM], force_newtons: f64) -> (f64, f64) {
        let [_, theta, x_dot, theta_dot] = *state;
        let (m, lc) = (self.pole_mass_kg, self.pole_com_m);
        let (sin, cos) = theta.sin_cos();
        let m11 = self.cart_mass_kg + m;
        let m12 = -m * lc * cos;
        let m22 = self.pole_inertia_hinge_kg_m2();
        let rhs1 = force_newtons
            - m * lc * sin * theta_dot * theta_dot
            - self.slider_damping_n_s_per_m * x_dot;
        let rhs2 =
            -m * self.gravity_m_per_s2 * lc * sin - self.hinge_damping_n_m_s_per_rad * theta_dot;
        let det = m11 * m22 - m12 * m12;
        (
            (m22 * rhs1 - m12 * rhs2) / det,
            (m11 * rhs2 - m12 * rhs1) / det,
        )
    }

    fn derivative(&self, s: &[f64; STATE_DIM], force_newtons: f64) -> [f64; STATE_DIM] {
        let (x_ddot, theta_ddot) = self.accelerations(s, force_newtons);
        [s[2], s[3], x_ddot, theta_ddot]
    }

    /// One RK4 substep followed by the rail stops.
    fn substep(&self, s: &mut [f64; STATE_DIM], force_newtons: f64) {
        let dt = self.timestep_s;
        let add = |a: &[f64; STATE_DIM], k: &[f64; STATE_DIM], h: f64| {
            std::array::from_fn::<f64, STATE_DIM, _>(|i| a[i] + h * k[i])
        };
        let k1 = self.derivative(s, force_newtons);
        let k2 = self.derivative(&add(s, &k1, dt / 2.0), force_newtons);
        let k3 = self.derivative(&add(s, &k2, dt / 2.0), force_newtons);
        let k4 = self.derivative(&add(s, &k3, dt), force_newtons);
        for i in 0..STATE_DIM {
            s[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        if s[0] >= self.rail_limit_m {
            s[0] = self.rail_limit_m;
            s[2] = s[2].min(0.0);
        } else if s[0] <= -self.rail_limit_m {
            s[0] = -self.rail_limit_m;
            s[2] = s[2].max(0.0);
        }
    }

    /// One control period from `state` under action `u` (clamped to the action limit;
    /// non-finite `u` is the safe action 0).
    pub fn step_state(&self, state: &mut [f64; STATE_DIM], u: f64) {
        let u = if u.is_finite() {
            u.clamp(-self.action_limit, self.action_limit)
        } else {
            0.0
        };
        let force_newtons = self.force_per_unit_newtons * u;
        for _ in 0..self.substeps {
            self.substep(state, force_newtons);
        }
    }

    /// Whether `x_m` is at (or past) a rail stop.
    pub fn at_rail_stop(&self, x_m: f64) -> bool {
        x_m.abs() >= self.rail_limit_m
    }

    /// The pure transition with these parameters; see [`transition`].
    pub fn transition(&self, state: &[f64], action: &[f64], next: &mut [f64]) {
        let Some(s) = state.get(..STATE_DIM) else {
            next.iter_mut().for_each(|v| *v = f64::NAN);
            return;
        };
        let mut s: [f64; STATE_DIM] = std::array::from_fn(|i| s[i]);
        self.step_state(&mut s, action.first().copied().unwrap_or(0.0));
        next.iter_mut().zip(s).for_each(|(n, v)| *n = v);
    }
}

impl Default for CartpoleParams {
    fn default() -> Self {
        Self::PETS
    }
}

/// The pure PETS cart-pole transition: one 0.04 s control period from `state`
/// `[x, θ, ẋ, θ̇]` under `action` `[u]`, written to `next` — the same code path as
/// [`Cartpole::step`](Plant::step), rail stops included. Allocation-free. A state
/// shorter than 4 fills `next` with NaN; a missing or non-finite action acts as 0.
pub fn transition(state: &[f64], action: &[f64], next: &mut [f64]) {
    CartpoleParams::PETS.transition(state, action, next);
}

/// The simulated cart-pole plant.
#[derive(Clone, Debug)]
pub struct Cartpole {
    params: CartpoleParams,
    state: [f64; STATE_DIM],
}

impl Cartpole {
    /// The PETS cart-pole at rest, hanging down at the origin.
    pub fn new() -> Self {
        Self::with_params(CartpoleParams::PETS)
    }

    /// A cart-pole with other parameters (e.g. damping off for energy tests).
    pub fn with_params(params: CartpoleParams) -> Self {
        Self {
            params,
            state: [0.0; STATE_DIM],
        }
    }

    /// The parameters this plant integrates with.
    pub fn params(&self) -> &CartpoleParams {
        &self.params
    }
}

impl Default for Cartpole {
    fn default() -> Self {
        Self::new()
    }
}

impl Plant for Cartpole {
    fn spec(&self) -> &'static PlantSpec {
        &SPEC
    }

    fn state(&self) -> &[f64] {
        &self.state
    }

    /// Every coordinate ~ N(0, 0.1²), as PETS.
    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        for v in &mut self.state {
            *v = 0.1 * rng.sample::<f64, _>(StandardNormal);
        }
    }

    /// Ignores (with a warning) a state of the wrong length or with non-finite values.
    fn set_state(&mut self, state: &[f64]) {
        match <[f64; STATE_DIM]>::try_from(state) {
            Ok(s) if s.iter().all(|v| v.is_finite()) => self.state = s,
            _ => tracing::warn!(len = state.len(), "cartpole: ignoring invalid set_state"),
        }
    }

    fn step(&mut self, action: &[f64]) {
        let u = action.first().copied().unwrap_or(0.0);
        self.params.step_state(&mut self.state, u);
    }

    fn fault_flags(&self) -> u32 {
        if self.params.at_rail_stop(self.state[0]) {
            FAULT_LIMIT
        } else {
            0
        }
    }
}
