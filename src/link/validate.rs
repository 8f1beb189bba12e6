//! Validation of a robot's announcement against the calibration: every difference
//! becomes one [`Mismatch`], so a refused robot is refused with the full list of what
//! differs (robot id, dims, channel names and units, action limits and safe values,
//! control period, watchdog timeout, heartbeat interval).
//!
//! Pure functions over plain data; no I/O.

use std::fmt;

use handful_protocol::ChannelKind;

use super::robot::RobotInfo;
use crate::calib::Calibration;

/// Which action-channel number differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitField {
    Min,
    Max,
    Safe,
}

/// One difference between the calibration and the robot's announcement.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    Protocol {
        found: u8,
    },
    RobotId {
        expected: String,
        found: String,
    },
    StateDim {
        expected: usize,
        found: usize,
    },
    ActionDim {
        expected: usize,
        found: usize,
    },
    ChannelName {
        kind: ChannelKind,
        index: usize,
        expected: String,
        found: String,
    },
    ChannelUnit {
        kind: ChannelKind,
        index: usize,
        name: String,
        expected: String,
        found: String,
    },
    ActionLimit {
        index: usize,
        name: String,
        field: LimitField,
        expected: f32,
        found: f32,
    },
    ControlPeriod {
        expected_us: u64,
        found_us: u64,
    },
    WatchdogTimeout {
        expected_us: u64,
        found_us: u64,
    },
    /// The firmware's heartbeats are too rare for the host's link timeout.
    HeartbeatTooSlow {
        interval_us: u64,
        link_timeout_us: u64,
    },
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::State => "state",
        ChannelKind::Action => "action",
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol { found } => {
                write!(f, "protocol version: host speaks 1, robot chose {found}")
            }
            Self::RobotId { expected, found } => {
                write!(f, "robot id: calibration {expected:?}, robot {found:?}")
            }
            Self::StateDim { expected, found } => {
                write!(f, "state dim: calibration {expected}, robot {found}")
            }
            Self::ActionDim { expected, found } => {
                write!(f, "action dim: calibration {expected}, robot {found}")
            }
            Self::ChannelName {
                kind,
                index,
                expected,
                found,
            } => write!(
                f,
                "{}[{index}] name: calibration {expected:?}, robot {found:?}",
                kind_name(*kind)
            ),
            Self::ChannelUnit {
                kind,
                index,
                name,
                expected,
                found,
            } => write!(
                f,
                "{}[{index}] `{name}` unit: calibration {expected:?}, robot {found:?}",
                kind_name(*kind)
            ),
            Self::ActionLimit {
                index,
                name,
                field,
                expected,
                found,
            } => {
                let field = match field {
                    LimitField::Min => "min",
                    LimitField::Max => "max",
                    LimitField::Safe => "safe",
                };
                write!(
                    f,
                    "action[{index}] `{name}` {field}: calibration {expected}, robot {found}"
                )
            }
            Self::ControlPeriod {
                expected_us,
                found_us,
            } => {
                write!(
                    f,
                    "control period: calibration {expected_us} µs, robot {found_us} µs"
                )
            }
            Self::WatchdogTimeout {
                expected_us,
                found_us,
            } => {
                write!(
                    f,
                    "watchdog timeout: calibration {expected_us} µs, robot {found_us} µs"
                )
            }
            Self::HeartbeatTooSlow {
                interval_us,
                link_timeout_us,
            } => write!(
                f,
                "heartbeat interval: robot {interval_us} µs is not shorter than the \
                 calibration's link timeout {link_timeout_us} µs"
            ),
        }
    }
}

/// Every difference, in a stable order. Displayed joined by `; `.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatches(pub Vec<Mismatch>);

impl fmt::Display for Mismatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// Limits are compared with a relative tolerance of 1e-6: both sides are f32 renderings of
/// the same decimal, but a firmware may compute its limits. Only finite limits can be the
/// same (an infinite one would make the tolerance infinite too); the calibration's are
/// always finite.
fn same(a: f32, b: f32) -> bool {
    a.is_finite()
        && b.is_finite()
        && (a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0))
}

/// Every way `info` differs from `calib`; empty when the robot is the calibrated one.
pub fn validate(calib: &Calibration, info: &RobotInfo) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if info.protocol != handful_protocol::PROTOCOL_VERSION {
        out.push(Mismatch::Protocol {
            found: info.protocol,
        });
    }
    if info.robot_id != calib.robot_id {
        out.push(Mismatch::RobotId {
            expected: calib.robot_id.clone(),
            found: info.robot_id.clone(),
        });
    }
    if info.states.len() != calib.states.len() {
        out.push(Mismatch::StateDim {
            expected: calib.states.len(),
            found: info.states.len(),
        });
    }
    if info.actions.len() != calib.actions.len() {
        out.push(Mismatch::ActionDim {
            expected: calib.actions.len(),
            found: info.actions.len(),
        });
    }
    let calib_states = calib.states.iter().map(|c| (&c.name, &c.unit));
    let calib_actions = calib.actions.iter().map(|c| (&c.name, &c.unit));
    for (kind, expected, found) in [
        (
            ChannelKind::State,
            calib_states.collect::<Vec<_>>(),
            &info.states,
        ),
        (
            ChannelKind::Action,
            calib_actions.collect::<Vec<_>>(),
            &info.actions,
        ),
    ] {
        for (index, ((name, unit), robot)) in expected.into_iter().zip(found).enumerate() {
            if *name != robot.name {
                out.push(Mismatch::ChannelName {
                    kind,
                    index,
                    expected: name.clone(),
                    found: robot.name.clone(),
                });
            }
            if *unit != robot.unit {
                out.push(Mismatch::ChannelUnit {
                    kind,
                    index,
                    name: name.clone(),
                    expected: unit.clone(),
                    found: robot.unit.clone(),
                });
            }
        }
    }
    for (index, (c, robot)) in calib.actions.iter().zip(&info.actions).enumerate() {
        for (field, expected, found) in [
            (LimitField::Min, c.min, robot.min),
            (LimitField::Max, c.max, robot.max),
            (LimitField::Safe, c.safe, robot.safe),
        ] {
            if !same(expected, found) {
                out.push(Mismatch::ActionLimit {
                    index,
                    name: c.name.clone(),
                    field,
                    expected,
                    found,
                });
            }
        }
    }
    if u64::from(info.control_period_us) != calib.control_period_us {
        out.push(Mismatch::ControlPeriod {
            expected_us: calib.control_period_us,
            found_us: info.control_period_us.into(),
        });
    }
    if u64::from(info.watchdog_timeout_us) != calib.watchdog_timeout_us {
        out.push(Mismatch::WatchdogTimeout {
            expected_us: calib.watchdog_timeout_us,
            found_us: info.watchdog_timeout_us.into(),
        });
    }
    if u64::from(info.heartbeat_interval_us) >= calib.link_timeout_us {
        out.push(Mismatch::HeartbeatTooSlow {
            interval_us: info.heartbeat_interval_us.into(),
            link_timeout_us: calib.link_timeout_us,
        });
    }
    out
}
