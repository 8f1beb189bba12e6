//! The simulated firmware's configuration, derived from the plant's [`PlantSpec`] and the
//! simulator's options: the robot announces exactly what the plant is.
//!
//! Runs once at start-up; a spec the protocol cannot carry (a name too long, too many
//! channels, limits that are not finite or `min > max`) is an error, never a panic.

use handful_firmware::{ChannelSpec, FirmwareConfig};
use handful_protocol::{CAP_LOCKSTEP, CAP_RESET, CAP_RESET_TO, CAP_TELEOP, Name, Unit};

use super::{SimError, SimOptions};
use crate::plant::PlantSpec;

/// The firmware version the simulator announces: this crate's version.
pub fn firmware_version() -> [u8; 3] {
    let part = |text: &str| text.parse::<u8>().unwrap_or(u8::MAX);
    [
        part(env!("CARGO_PKG_VERSION_MAJOR")),
        part(env!("CARGO_PKG_VERSION_MINOR")),
        part(env!("CARGO_PKG_VERSION_PATCH")),
    ]
}

/// The firmware configuration announcing `spec`, with the options' timeouts,
/// `CAP_RESET` and `CAP_RESET_TO` (plus `CAP_LOCKSTEP` in lockstep mode). Every state
/// channel's range is unbounded here: the firmware checks a `ResetTo`'s length and
/// finiteness, and the plant refuses a state at one of its limits (`engine.rs`).
pub fn firmware_config(spec: &PlantSpec, options: &SimOptions) -> Result<FirmwareConfig, SimError> {
    let lockstep = if options.lockstep { CAP_LOCKSTEP } else { 0 };
    if spec.control_period_us == 0 {
        return Err(bad_spec("control_period_us", 0, "a period > 0 µs"));
    }
    // The channel vectors are filled in place (their type is the firmware crate's).
    let mut config = FirmwareConfig {
        robot_id: name(spec.robot_id)?,
        firmware_version: firmware_version(),
        state_channels: Default::default(),
        action_channels: Default::default(),
        control_period_us: spec.control_period_us,
        watchdog_timeout_us: options.watchdog_timeout_us,
        heartbeat_interval_us: options.heartbeat_interval_us,
        host_timeout_us: options.host_timeout_us,
        capabilities: CAP_RESET
            | CAP_RESET_TO
            | lockstep
            | if options.operator.is_some() {
                CAP_TELEOP
            } else {
                0
            },
    };
    for state in spec.states {
        let channel = ChannelSpec {
            name: name(state.name)?,
            unit: unit(state.unit)?,
            min: f32::NEG_INFINITY,
            max: f32::INFINITY,
            safe: 0.0,
        };
        config
            .state_channels
            .push(channel)
            .map_err(|_| bad_spec("states", spec.states.len(), "at most 32 state channels"))?;
    }
    for action in spec.actions {
        let (min, max, safe) = (action.min as f32, action.max as f32, action.safe as f32);
        if !(min.is_finite() && max.is_finite() && safe.is_finite() && min <= max) {
            let value = format!("{}: [{min}, {max}] safe {safe}", action.name);
            return Err(bad_spec("actions", value, "finite limits with min <= max"));
        }
        let channel = ChannelSpec {
            name: name(action.name)?,
            unit: unit(action.unit)?,
            min,
            max,
            safe,
        };
        config
            .action_channels
            .push(channel)
            .map_err(|_| bad_spec("actions", spec.actions.len(), "at most 16 action channels"))?;
    }
    Ok(config)
}

fn name(text: &str) -> Result<Name, SimError> {
    Name::new(text).ok_or_else(|| bad_spec("name", text, "at most 24 bytes of UTF-8"))
}

fn unit(text: &str) -> Result<Unit, SimError> {
    Unit::new(text).ok_or_else(|| bad_spec("unit", text, "at most 8 bytes of UTF-8"))
}

fn bad_spec(field: &'static str, value: impl ToString, expected: &'static str) -> SimError {
    SimError::PlantSpec {
        field,
        value: value.to_string(),
        expected,
    }
}
