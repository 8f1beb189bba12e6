//! The robot's announcement ([`RobotInfo`]): what the firmware said in Capabilities and
//! its ChannelInfo frames during the handshake. Plain data.

use handful_protocol::{CAP_LOCKSTEP, CAP_RESET, CAP_RESET_TO, CAP_TELEOP};

/// One channel as the firmware announced it. For state channels `min`, `max`, `safe` are 0.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChannelDesc {
    pub name: String,
    pub unit: String,
    pub min: f32,
    pub max: f32,
    pub safe: f32,
}

/// What the robot said it is during the handshake.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RobotInfo {
    /// Protocol version the firmware chose.
    pub protocol: u8,
    pub robot_id: String,
    /// Major, minor, patch.
    pub firmware_version: [u8; 3],
    pub control_period_us: u32,
    pub watchdog_timeout_us: u32,
    pub heartbeat_interval_us: u32,
    /// `CAP_*` bits of `handful_protocol`.
    pub capabilities: u32,
    pub states: Vec<ChannelDesc>,
    pub actions: Vec<ChannelDesc>,
}

impl RobotInfo {
    /// The robot honours `Reset` (a simulator).
    pub fn has_reset(&self) -> bool {
        self.capabilities & CAP_RESET != 0
    }

    /// The robot honours `ResetTo` (reset to a given state, `CAP_RESET_TO`): a simulator.
    /// A host never sends it to a robot without the bit ([`super::Link::reset_to`]).
    pub fn has_reset_to(&self) -> bool {
        self.capabilities & CAP_RESET_TO != 0
    }

    /// The robot steps its plant once per accepted command (lockstep simulator).
    pub fn has_lockstep(&self) -> bool {
        self.capabilities & CAP_LOCKSTEP != 0
    }

    /// The firmware forwards operator inputs as Teleop frames.
    pub fn has_teleop(&self) -> bool {
        self.capabilities & CAP_TELEOP != 0
    }
}
