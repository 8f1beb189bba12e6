//! Calibration: one TOML file per robot (calib/*.toml), parsed once at start-up into an
//! immutable, validated [`Calibration`].
//!
//! Raw then validated (ripgrep's lowargs → hiargs): [`RawCalibration`] mirrors the file
//! with serde (unknown keys refused); [`Calibration::from_toml`] checks every value and
//! converts to SI microseconds. An error names the file, the key and what was expected.
//! The SHA-256 of the file's bytes is the calibration's identity, reported at start and
//! stored with everything a run produces.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plant::cartpole::{CartpoleParams, PETS_POLE_LENGTH_M};
use crate::plant::{PlantKind, PlantParams};
use crate::task::Task;

/// Why a calibration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    #[error("cannot read calibration {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("calibration {path} is not valid TOML for a calibration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("calibration {path}: key `{key}` is {found}; expected {expected}")]
    Invalid {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
}

/// The file as written. Every table refuses unknown keys.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalibration {
    pub robot: RawRobot,
    pub link: RawLink,
    pub timing: RawTiming,
    #[serde(rename = "state")]
    pub states: Vec<RawState>,
    #[serde(rename = "action")]
    pub actions: Vec<RawAction>,
    /// The plant's physics; absent keys (or no table) are the benchmark's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plant: Option<RawPlant>,
}

/// `[plant]`: the physical parameters the simulator integrates and the analytic model
/// (the expert, `mpc-true`) assumes, SI units. Every key is optional and defaults to the
/// benchmark (PETS cart-pole, Gymnasium Pendulum-v1, the pusher's shipped table); a key of
/// another plant is refused.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlant {
    /// Every plant.
    pub gravity_m_per_s2: Option<f64>,
    /// Cart-pole.
    pub cart_mass_kg: Option<f64>,
    pub pole_mass_kg: Option<f64>,
    /// Hinge to tip; the centre of mass is half way.
    pub pole_length_m: Option<f64>,
    pub slider_damping_n_s_per_m: Option<f64>,
    pub hinge_damping_n_m_s_per_rad: Option<f64>,
    /// Newtons per unit of the action (the motor's gear).
    pub force_per_unit_newtons: Option<f64>,
    /// Hard rail stops at ±this.
    pub rail_limit_m: Option<f64>,
    /// Pendulum.
    pub mass_kg: Option<f64>,
    pub length_m: Option<f64>,
    pub max_speed_rad_per_s: Option<f64>,
    /// Pusher.
    pub pusher_mass_kg: Option<f64>,
    /// The pusher's viscous damping (its drive's back-EMF).
    pub pusher_damping_n_s_per_m: Option<f64>,
    pub puck_mass_kg: Option<f64>,
    pub puck_radius_m: Option<f64>,
    /// Coulomb friction coefficient of the puck on the table.
    pub friction_coefficient: Option<f64>,
}

impl RawPlant {
    /// The pusher's keys, `(name, value)`.
    fn cartpole_keys(&self) -> [(&'static str, Option<f64>); 7] {
        [
            ("cart_mass_kg", self.cart_mass_kg),
            ("pole_mass_kg", self.pole_mass_kg),
            ("pole_length_m", self.pole_length_m),
            ("slider_damping_n_s_per_m", self.slider_damping_n_s_per_m),
            (
                "hinge_damping_n_m_s_per_rad",
                self.hinge_damping_n_m_s_per_rad,
            ),
            ("force_per_unit_newtons", self.force_per_unit_newtons),
            ("rail_limit_m", self.rail_limit_m),
        ]
    }

    fn pusher_keys(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("pusher_mass_kg", self.pusher_mass_kg),
            ("pusher_damping_n_s_per_m", self.pusher_damping_n_s_per_m),
            ("puck_mass_kg", self.puck_mass_kg),
            ("puck_radius_m", self.puck_radius_m),
            ("friction_coefficient", self.friction_coefficient),
        ]
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRobot {
    /// Must equal the robot id the firmware announces.
    pub id: String,
    pub task: Task,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// Device path (`/dev/ttyUSB0`), or `"sim"` to start the simulated robot.
    pub port: String,
    pub baud: u32,
    /// With `port = "sim"`: a shell command that starts the simulated robot instead of
    /// `handful sim` (a stand-in firmware such as firmware-bridge/gym); `handful run`'s
    /// `--sim-cmd` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_cmd: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTiming {
    pub control_rate_hz: f64,
    /// The host sends a heartbeat this often.
    pub heartbeat_interval_ms: f64,
    /// Firmware watchdog: expected in the firmware's announcement, checked at handshake.
    pub watchdog_timeout_ms: f64,
    /// A state older than this at a tick is stale: safe command and fault.
    pub stale_state_ms: f64,
    /// Nothing received for this long: the link is lost.
    pub link_timeout_ms: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub name: String,
    pub unit: String,
    /// SI value = raw · scale + offset, applied at the link edge.
    #[serde(default)]
    pub offset: f64,
    #[serde(default = "one")]
    pub scale: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub name: String,
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub safe: f64,
}

fn one() -> f64 {
    1.0
}

/// One state channel, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateChannel {
    pub name: String,
    pub unit: String,
    pub offset: f32,
    pub scale: f32,
}

/// One action channel, validated: `min < max`, `safe` within them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionChannel {
    pub name: String,
    pub unit: String,
    pub min: f32,
    pub max: f32,
    pub safe: f32,
}

/// A validated calibration. Immutable after start-up.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub hash: String,
    /// The file's text, kept so runs can store it verbatim.
    #[serde(skip)]
    pub text: String,
    pub robot_id: String,
    pub task: Task,
    /// `None` means "start the simulated robot".
    pub port: Option<String>,
    /// The command that starts the simulated robot (`[link] sim_cmd`), when not `handful
    /// sim`; only with `port = "sim"`.
    pub sim_cmd: Option<String>,
    pub baud: u32,
    pub control_period_us: u64,
    pub heartbeat_interval_us: u64,
    pub watchdog_timeout_us: u64,
    pub stale_state_us: u64,
    pub link_timeout_us: u64,
    pub states: Vec<StateChannel>,
    pub actions: Vec<ActionChannel>,
    /// The plant's physics (`[plant]`, defaults filled in).
    pub plant: PlantParams,
}

impl Calibration {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, CalibError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalibError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, CalibError> {
        let raw: RawCalibration = toml::from_str(text).map_err(|e| CalibError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let check = Checker { path };
        let t = &raw.timing;
        let rate = check.positive("timing.control_rate_hz", t.control_rate_hz)?;
        if rate > 10_000.0 {
            return Err(check.invalid(
                "timing.control_rate_hz",
                "at most 10000 Hz",
                rate.to_string(),
            ));
        }
        let control_period_us = (1e6 / rate).round() as u64;
        let ms = |key: &str, value: f64| -> Result<u64, CalibError> {
            let value = check.positive(key, value)?;
            // A minute is far beyond any heartbeat or timeout a control loop can use, and
            // keeps every deadline sum far from overflow.
            if value > 60_000.0 {
                return Err(check.invalid(key, "at most 60000 ms", format!("{value} ms")));
            }
            Ok((value * 1e3).round() as u64)
        };
        let heartbeat_interval_us = ms("timing.heartbeat_interval_ms", t.heartbeat_interval_ms)?;
        let watchdog_timeout_us = ms("timing.watchdog_timeout_ms", t.watchdog_timeout_ms)?;
        let stale_state_us = ms("timing.stale_state_ms", t.stale_state_ms)?;
        let link_timeout_us = ms("timing.link_timeout_ms", t.link_timeout_ms)?;
        if stale_state_us < control_period_us {
            return Err(check.invalid(
                "timing.stale_state_ms",
                "at least one control period",
                format!("{} ms", t.stale_state_ms),
            ));
        }
        if link_timeout_us <= heartbeat_interval_us {
            return Err(check.invalid(
                "timing.link_timeout_ms",
                "longer than timing.heartbeat_interval_ms",
                format!("{} ms", t.link_timeout_ms),
            ));
        }
        if raw.robot.id.is_empty() || raw.robot.id.len() > handful_protocol::MAX_NAME_LEN {
            return Err(check.invalid("robot.id", "1 to 24 bytes", format!("{:?}", raw.robot.id)));
        }
        if raw.link.baud == 0 {
            return Err(check.invalid("link.baud", "a positive baud rate", "0".into()));
        }
        let port = match raw.link.port.as_str() {
            "sim" => None,
            "" => {
                return Err(check.invalid("link.port", "a device path or \"sim\"", "empty".into()));
            }
            other => Some(other.to_owned()),
        };
        let sim_cmd = match (&raw.link.sim_cmd, &port) {
            (None, _) => None,
            (Some(cmd), _) if cmd.trim().is_empty() => {
                return Err(check.invalid("link.sim_cmd", "a shell command", "empty".into()));
            }
            (Some(_), Some(port)) => {
                return Err(check.invalid(
                    "link.sim_cmd",
                    "absent: it starts a simulator, and link.port names a device",
                    format!("port {port:?}"),
                ));
            }
            (Some(cmd), None) => Some(cmd.clone()),
        };

        if raw.states.is_empty() || raw.states.len() > handful_protocol::MAX_STATE_DIM {
            return Err(check.invalid(
                "state",
                "1 to 32 [[state]] tables",
                raw.states.len().to_string(),
            ));
        }
        if raw.actions.is_empty() || raw.actions.len() > handful_protocol::MAX_ACTION_DIM {
            return Err(check.invalid(
                "action",
                "1 to 16 [[action]] tables",
                raw.actions.len().to_string(),
            ));
        }
        // Every number is checked as the f32 the control path uses: a finite f64 can
        // become an infinite f32 (1e300), and a non-zero one zero (1e-60), which would
        // open the clamp or zero a channel without a word.
        let mut states = Vec::with_capacity(raw.states.len());
        for (i, s) in raw.states.iter().enumerate() {
            check.name(&format!("state[{i}].name"), &s.name)?;
            check.unit(&format!("state[{i}].unit"), &s.unit)?;
            let offset = check.single(&format!("state[{i}].offset"), s.offset)?;
            let scale = check.single(&format!("state[{i}].scale"), s.scale)?;
            if !scale.is_normal() {
                return Err(check.invalid(
                    &format!("state[{i}].scale"),
                    "a non-zero number",
                    s.scale.to_string(),
                ));
            }
            states.push(StateChannel {
                name: s.name.clone(),
                unit: s.unit.clone(),
                offset,
                scale,
            });
        }
        let mut actions = Vec::with_capacity(raw.actions.len());
        for (i, a) in raw.actions.iter().enumerate() {
            check.name(&format!("action[{i}].name"), &a.name)?;
            check.unit(&format!("action[{i}].unit"), &a.unit)?;
            let min = check.single(&format!("action[{i}].min"), a.min)?;
            let max = check.single(&format!("action[{i}].max"), a.max)?;
            let safe = check.single(&format!("action[{i}].safe"), a.safe)?;
            if min >= max {
                return Err(check.invalid(
                    &format!("action[{i}].max"),
                    "greater than min (as 32-bit floats)",
                    format!("{} (min {})", a.max, a.min),
                ));
            }
            if !(min..=max).contains(&safe) {
                return Err(check.invalid(
                    &format!("action[{i}].safe"),
                    "within [min, max]",
                    format!("{} (limits [{}, {}])", a.safe, a.min, a.max),
                ));
            }
            actions.push(ActionChannel {
                name: a.name.clone(),
                unit: a.unit.clone(),
                min,
                max,
                safe,
            });
        }

        let plant = check.plant(raw.robot.task, raw.plant.as_ref())?;

        Ok(Self {
            path: path.to_owned(),
            hash: hex_sha256(text.as_bytes()),
            text: text.to_owned(),
            robot_id: raw.robot.id,
            task: raw.robot.task,
            port,
            sim_cmd,
            baud: raw.link.baud,
            control_period_us,
            heartbeat_interval_us,
            watchdog_timeout_us,
            stale_state_us,
            link_timeout_us,
            states,
            actions,
            plant,
        })
    }

    pub fn state_dim(&self) -> usize {
        self.states.len()
    }

    pub fn action_dim(&self) -> usize {
        self.actions.len()
    }

    /// The safe command, one value per action channel.
    pub fn safe_action(&self) -> Vec<f32> {
        self.actions.iter().map(|a| a.safe).collect()
    }

    /// Clamps `action` in place to the calibrated limits. Allocation-free.
    pub fn clamp(&self, action: &mut [f32]) {
        for (value, channel) in action.iter_mut().zip(&self.actions) {
            *value = value.clamp(channel.min, channel.max);
        }
    }

    /// The short hash prefix shown in logs.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, key: &str, expected: &'static str, found: String) -> CalibError {
        CalibError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            expected,
            found,
        }
    }

    /// `value` as the f32 the control path uses: finite, and zero only if it was zero
    /// (a value that underflows to zero or to a subnormal is an error, not a rounding).
    fn single(&self, key: &str, value: f64) -> Result<f32, CalibError> {
        let single = value as f32;
        if !value.is_finite() || !single.is_finite() {
            Err(self.invalid(
                key,
                "a finite number within ±3.4e38 (a 32-bit float)",
                format!("{value:?}"),
            ))
        } else if value != 0.0 && !single.is_normal() {
            Err(self.invalid(
                key,
                "zero or a number of magnitude at least 1.2e-38 (a 32-bit float)",
                format!("{value:?}"),
            ))
        } else {
            Ok(single)
        }
    }

    fn positive(&self, key: &str, value: f64) -> Result<f64, CalibError> {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(self.invalid(key, "a positive number", value.to_string()))
        }
    }

    /// A unit as the wire carries it (`[scale]symbol`: at most 8 ASCII bytes, no
    /// spaces; empty is dimensionless). The host compares units, never parses them.
    fn unit(&self, key: &str, value: &str) -> Result<(), CalibError> {
        let printable = value.bytes().all(|b| b.is_ascii_graphic());
        if value.len() > handful_protocol::MAX_UNIT_LEN || !printable {
            Err(self.invalid(
                key,
                "a unit of at most 8 ASCII bytes with no spaces",
                format!("{value:?}"),
            ))
        } else {
            Ok(())
        }
    }

    /// `[plant]` for `task`'s plant: each key present checked (positive, or
    /// non-negative for a damping), absent keys the benchmark's.
    fn plant(&self, task: Task, raw: Option<&RawPlant>) -> Result<PlantParams, CalibError> {
        let kind = PlantKind::for_task(task).expect("every task has a simulated plant");
        let default = RawPlant::default();
        let raw = raw.unwrap_or(&default);
        let positive = |key: &str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(v) if v.is_finite() && v > 0.0 && (v as f32).is_normal() => Ok(v),
            Some(v) => Err(self.invalid(
                &format!("plant.{key}"),
                "a positive finite number",
                v.to_string(),
            )),
        };
        let non_negative = |key: &str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
            Some(v) => Err(self.invalid(
                &format!("plant.{key}"),
                "a non-negative finite number",
                v.to_string(),
            )),
        };
        let other = |keys: &[(&str, Option<f64>)], plant: &'static str| match keys
            .iter()
            .find(|(_, v)| v.is_some())
        {
            Some((key, _)) => Err(self.invalid(
                &format!("plant.{key}"),
                plant,
                "set for another plant".into(),
            )),
            None => Ok(()),
        };
        Ok(match kind {
            PlantKind::Cartpole => {
                other(
                    &[
                        ("mass_kg", raw.mass_kg),
                        ("length_m", raw.length_m),
                        ("max_speed_rad_per_s", raw.max_speed_rad_per_s),
                    ],
                    "absent: a pendulum key, and this robot's task is a cart-pole's",
                )?;
                other(
                    &raw.pusher_keys(),
                    "absent: a pusher key, and this robot's task is a cart-pole's",
                )?;
                let pets = CartpoleParams::PETS;
                let params = CartpoleParams {
                    cart_mass_kg: positive("cart_mass_kg", raw.cart_mass_kg, pets.cart_mass_kg)?,
                    gravity_m_per_s2: positive(
                        "gravity_m_per_s2",
                        raw.gravity_m_per_s2,
                        pets.gravity_m_per_s2,
                    )?,
                    slider_damping_n_s_per_m: non_negative(
                        "slider_damping_n_s_per_m",
                        raw.slider_damping_n_s_per_m,
                        pets.slider_damping_n_s_per_m,
                    )?,
                    hinge_damping_n_m_s_per_rad: non_negative(
                        "hinge_damping_n_m_s_per_rad",
                        raw.hinge_damping_n_m_s_per_rad,
                        pets.hinge_damping_n_m_s_per_rad,
                    )?,
                    force_per_unit_newtons: positive(
                        "force_per_unit_newtons",
                        raw.force_per_unit_newtons,
                        pets.force_per_unit_newtons,
                    )?,
                    rail_limit_m: positive("rail_limit_m", raw.rail_limit_m, pets.rail_limit_m)?,
                    ..pets
                };
                let length = positive("pole_length_m", raw.pole_length_m, PETS_POLE_LENGTH_M)?;
                let mass = positive("pole_mass_kg", raw.pole_mass_kg, pets.pole_mass_kg)?;
                PlantParams::Cartpole(params.with_pole(length, mass))
            }
            PlantKind::Pendulum => {
                other(
                    &raw.cartpole_keys(),
                    "absent: a cart-pole key, and this robot's task is a pendulum's",
                )?;
                other(
                    &raw.pusher_keys(),
                    "absent: a pusher key, and this robot's task is a pendulum's",
                )?;
                let gym = crate::plant::pendulum::PendulumParams::GYMNASIUM;
                PlantParams::Pendulum(crate::plant::pendulum::PendulumParams {
                    gravity_m_per_s2: positive(
                        "gravity_m_per_s2",
                        raw.gravity_m_per_s2,
                        gym.gravity_m_per_s2,
                    )?,
                    mass_kg: positive("mass_kg", raw.mass_kg, gym.mass_kg)?,
                    length_m: positive("length_m", raw.length_m, gym.length_m)?,
                    max_speed_rad_per_s: positive(
                        "max_speed_rad_per_s",
                        raw.max_speed_rad_per_s,
                        gym.max_speed_rad_per_s,
                    )?,
                    ..gym
                })
            }
            PlantKind::Pusher => {
                other(
                    &[
                        raw.cartpole_keys().as_slice(),
                        &[
                            ("mass_kg", raw.mass_kg),
                            ("length_m", raw.length_m),
                            ("max_speed_rad_per_s", raw.max_speed_rad_per_s),
                        ],
                    ]
                    .concat(),
                    "absent: a cart-pole or pendulum key, and this robot's task is a pusher's",
                )?;
                let table = crate::plant::pusher::PusherParams::DEFAULT;
                PlantParams::Pusher(crate::plant::pusher::PusherParams {
                    gravity_m_per_s2: positive(
                        "gravity_m_per_s2",
                        raw.gravity_m_per_s2,
                        table.gravity_m_per_s2,
                    )?,
                    pusher_mass_kg: positive(
                        "pusher_mass_kg",
                        raw.pusher_mass_kg,
                        table.pusher_mass_kg,
                    )?,
                    pusher_damping_n_s_per_m: non_negative(
                        "pusher_damping_n_s_per_m",
                        raw.pusher_damping_n_s_per_m,
                        table.pusher_damping_n_s_per_m,
                    )?,
                    puck_mass_kg: positive("puck_mass_kg", raw.puck_mass_kg, table.puck_mass_kg)?,
                    puck_radius_m: positive(
                        "puck_radius_m",
                        raw.puck_radius_m,
                        table.puck_radius_m,
                    )?,
                    friction_coefficient: non_negative(
                        "friction_coefficient",
                        raw.friction_coefficient,
                        table.friction_coefficient,
                    )?,
                    ..table
                })
            }
        })
    }

    fn name(&self, key: &str, value: &str) -> Result<(), CalibError> {
        if value.is_empty() || value.len() > handful_protocol::MAX_NAME_LEN {
            Err(self.invalid(key, "a name of 1 to 24 bytes", format!("{value:?}")))
        } else {
            Ok(())
        }
    }
}
