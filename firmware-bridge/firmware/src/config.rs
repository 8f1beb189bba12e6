//! The robot's description: channels, limits, timing and capabilities. Fixed at
//! start-up; the firmware reads it but never changes it.

use handful_protocol::{MAX_ACTION_DIM, MAX_STATE_DIM, Name, Unit};

/// One state or action channel. For state channels `safe` is ignored, `[min, max]` is
/// the range a `ResetTo` may set (not announced: `ChannelInfo` sends 0 for all three).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelSpec {
    pub name: Name,
    pub unit: Unit,
    /// Actions: accepted commands are clamped to `[min, max]` (`min <= max`, both
    /// finite). States: a `ResetTo` value outside `[min, max]` (inclusive; the bounds may
    /// be infinite) is refused with `Fault{BadResetState}`.
    pub min: f32,
    pub max: f32,
    /// Applied when the robot is not armed, is faulted, or has no command yet.
    pub safe: f32,
}

/// Everything the firmware announces in `Capabilities` and `ChannelInfo`, plus its own
/// host-link timeout and the state ranges a `ResetTo` may set.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareConfig {
    pub robot_id: Name,
    /// Major, minor, patch.
    pub firmware_version: [u8; 3],
    pub state_channels: heapless::Vec<ChannelSpec, MAX_STATE_DIM>,
    pub action_channels: heapless::Vec<ChannelSpec, MAX_ACTION_DIM>,
    /// How often the application calls [`Firmware::tick`](crate::Firmware::tick).
    pub control_period_us: u32,
    /// Longest time armed without an accepted command before the firmware faults.
    pub watchdog_timeout_us: u32,
    /// Longest time between two firmware heartbeats.
    pub heartbeat_interval_us: u32,
    /// Longest time armed without any frame from the host before the firmware faults.
    /// Not sent on the wire.
    pub host_timeout_us: u32,
    /// `CAP_*` bits.
    pub capabilities: u32,
}
