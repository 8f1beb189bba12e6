//! Message types: plain `Copy` values with fixed capacity, no heap.

use crate::{MAX_ACTION_DIM, MAX_NAME_LEN, MAX_STATE_DIM, MAX_TELEOP_AXES, MAX_UNIT_LEN};

/// One decoded (or to-be-encoded) frame: link-level header fields plus the message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    /// Per-sender frame counter, incremented by one for every frame sent (wrapping).
    /// Receivers use gaps to count drops and decreases to count reordering.
    pub seq: u32,
    /// Sender's monotonic clock in microseconds when the frame was built.
    pub timestamp_us: u64,
    pub message: Message,
}

/// Message type ids as they appear in the header's `kind` byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageKind {
    Hello = 0x01,
    Capabilities = 0x02,
    ChannelInfo = 0x03,
    State = 0x10,
    Command = 0x11,
    Heartbeat = 0x20,
    Arm = 0x30,
    Disarm = 0x31,
    EStop = 0x32,
    Reset = 0x33,
    ResetTo = 0x34,
    Teleop = 0x40,
    Fault = 0x50,
}

impl MessageKind {
    /// The kind for a header byte, or `None` for an unknown id.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::Hello,
            0x02 => Self::Capabilities,
            0x03 => Self::ChannelInfo,
            0x10 => Self::State,
            0x11 => Self::Command,
            0x20 => Self::Heartbeat,
            0x30 => Self::Arm,
            0x31 => Self::Disarm,
            0x32 => Self::EStop,
            0x33 => Self::Reset,
            0x34 => Self::ResetTo,
            0x40 => Self::Teleop,
            0x50 => Self::Fault,
            _ => return None,
        })
    }
}

/// Every message of protocol version 1. Direction in brackets: H = host, F = firmware.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Message {
    /// [H→F] Opens a session; the firmware answers with `Capabilities` and one
    /// `ChannelInfo` per state and action channel.
    Hello(Hello),
    /// [F→H] What the robot is and can do.
    Capabilities(Capabilities),
    /// [F→H] Name, unit and (for actions) limits of one channel.
    ChannelInfo(ChannelInfo),
    /// [F→H] One sample of the robot's state, published every control period.
    State(State),
    /// [H→F] An actuator command with a validity deadline.
    Command(Command),
    /// [H↔F] Liveness, both ways, every heartbeat interval.
    Heartbeat(Heartbeat),
    /// [H→F] Enable actuation. Also clears a latched watchdog or link fault.
    Arm,
    /// [H→F] Disable actuation: the safe command is applied.
    Disarm,
    /// [H→F] Emergency stop: safe command, latched until `Disarm`.
    EStop,
    /// [H→F] Ask a simulated robot to reset its plant (capability [`CAP_RESET`]).
    Reset(Reset),
    /// [H→F] Ask a simulated robot to set its plant to a given state (capability
    /// [`CAP_RESET_TO`]).
    ResetTo(ResetTo),
    /// [F→H] Operator inputs read by the firmware (joystick, buttons) and forwarded.
    Teleop(Teleop),
    /// [F→H] A fault event (watchdog, link loss, refused command, ...).
    Fault(Fault),
}

impl Message {
    pub const fn kind(&self) -> MessageKind {
        match self {
            Self::Hello(_) => MessageKind::Hello,
            Self::Capabilities(_) => MessageKind::Capabilities,
            Self::ChannelInfo(_) => MessageKind::ChannelInfo,
            Self::State(_) => MessageKind::State,
            Self::Command(_) => MessageKind::Command,
            Self::Heartbeat(_) => MessageKind::Heartbeat,
            Self::Arm => MessageKind::Arm,
            Self::Disarm => MessageKind::Disarm,
            Self::EStop => MessageKind::EStop,
            Self::Reset(_) => MessageKind::Reset,
            Self::ResetTo(_) => MessageKind::ResetTo,
            Self::Teleop(_) => MessageKind::Teleop,
            Self::Fault(_) => MessageKind::Fault,
        }
    }
}

/// A fixed-capacity vector of `f32` (state, action, limits, teleop axes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vector<const N: usize> {
    len: u8,
    data: [f32; N],
}

impl<const N: usize> Vector<N> {
    pub const fn new() -> Self {
        Self {
            len: 0,
            data: [0.0; N],
        }
    }

    /// A vector holding `values`, or `None` if there are more than `N`.
    pub fn from_slice(values: &[f32]) -> Option<Self> {
        if values.len() > N {
            return None;
        }
        let mut out = Self::new();
        out.data[..values.len()].copy_from_slice(values);
        out.len = values.len() as u8;
        Some(out)
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.len as usize]
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[..self.len as usize]
    }

    pub const fn len(&self) -> usize {
        self.len as usize
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for Vector<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A state vector (at most [`MAX_STATE_DIM`]).
pub type StateVector = Vector<MAX_STATE_DIM>;
/// An action vector (at most [`MAX_ACTION_DIM`]).
pub type ActionVector = Vector<MAX_ACTION_DIM>;

/// A fixed-capacity UTF-8 string (names, units). On the wire it occupies exactly `N`
/// bytes, zero-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    pub const fn empty() -> Self {
        Self {
            len: 0,
            bytes: [0; N],
        }
    }

    /// The string, or `None` if longer than `N` bytes or containing a NUL.
    pub fn new(text: &str) -> Option<Self> {
        let raw = text.as_bytes();
        if raw.len() > N || raw.contains(&0) {
            return None;
        }
        let mut out = Self::empty();
        out.bytes[..raw.len()].copy_from_slice(raw);
        out.len = raw.len() as u8;
        Some(out)
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from valid UTF-8 (`new`) or validated on decode.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::empty()
    }
}

pub type Name = FixedStr<MAX_NAME_LEN>;
pub type Unit = FixedStr<MAX_UNIT_LEN>;

/// [H→F] Session opening with the range of protocol versions the host speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub protocol_min: u8,
    pub protocol_max: u8,
}

/// Capability bit: the robot is a simulator that honours [`Message::Reset`].
pub const CAP_RESET: u32 = 1 << 0;
/// Capability bit: the firmware forwards operator inputs as [`Message::Teleop`].
pub const CAP_TELEOP: u32 = 1 << 1;
/// Capability bit: lockstep simulator (one plant step per command received).
pub const CAP_LOCKSTEP: u32 = 1 << 2;
/// Capability bit: the robot honours [`Message::ResetTo`] (reset to a given state). A
/// host never sends `ResetTo` to a robot that does not announce it.
pub const CAP_RESET_TO: u32 = 1 << 3;

/// [F→H] What the robot is. Followed by `state_dim + action_dim` `ChannelInfo`s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capabilities {
    /// Protocol version the firmware chose (within the host's `Hello` range).
    pub protocol: u8,
    pub robot_id: Name,
    /// Firmware version as major, minor, patch.
    pub firmware_version: [u8; 3],
    pub state_dim: u8,
    pub action_dim: u8,
    pub control_period_us: u32,
    /// A command older than this (no valid command since) trips the firmware watchdog.
    pub watchdog_timeout_us: u32,
    /// The firmware sends a heartbeat at least this often.
    pub heartbeat_interval_us: u32,
    /// `CAP_*` bits.
    pub capabilities: u32,
}

/// Whether a [`ChannelInfo`] describes a state or an action channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ChannelKind {
    State = 0,
    Action = 1,
}

/// [F→H] Description of one channel. For state channels the limits and safe value are 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelInfo {
    pub kind: ChannelKind,
    pub index: u8,
    pub name: Name,
    pub unit: Unit,
    pub min: f32,
    pub max: f32,
    /// The value applied when the robot is disarmed, faulted or stopped.
    pub safe: f32,
}

/// Firmware arming state, reported in `State` and `Heartbeat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ArmState {
    Disarmed = 0,
    Armed = 1,
    /// Latched by `EStop`; only `Disarm` leaves it.
    EStopped = 2,
    /// Latched by the watchdog or host-link loss; `Arm` clears it.
    Faulted = 3,
}

impl ArmState {
    pub const fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Disarmed,
            1 => Self::Armed,
            2 => Self::EStopped,
            3 => Self::Faulted,
            _ => return None,
        })
    }
}

/// Fault flag: no valid command within the watchdog timeout while armed.
pub const FAULT_WATCHDOG: u32 = 1 << 0;
/// Fault flag: nothing heard from the host within its timeout.
pub const FAULT_HOST_TIMEOUT: u32 = 1 << 1;
/// Fault flag: emergency stop latched.
pub const FAULT_ESTOP: u32 = 1 << 2;
/// Fault flag: a command was refused (wrong dimension, non-finite, expired).
pub const FAULT_BAD_COMMAND: u32 = 1 << 3;
/// Fault flag: a sensor reported a bad value.
pub const FAULT_SENSOR: u32 = 1 << 4;
/// Fault flag: a rail or joint limit was hit.
pub const FAULT_LIMIT: u32 = 1 << 5;

/// [F→H] One state sample. The frame header's timestamp is the sample time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct State {
    pub arm_state: ArmState,
    /// `FAULT_*` bits currently active.
    pub fault_flags: u32,
    /// `Command::seq` of the last command applied (0 before any).
    pub last_command_seq: u32,
    pub values: StateVector,
}

/// [H→F] An actuator command.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Command {
    /// Command counter (separate from the frame seq); echoed in `State::last_command_seq`.
    pub seq: u32,
    /// Firmware-clock time (µs) after which the command must not be applied. Hosts
    /// set it to the timestamp of the state it was computed from plus a validity window.
    pub valid_until_us: u64,
    pub values: ActionVector,
}

/// [H↔F] Liveness. The firmware fills in its arming state and faults; the host sends
/// `Disarmed` and 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub arm_state: ArmState,
    pub fault_flags: u32,
}

/// [H→F] Reset a simulated plant, drawing the new start state from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reset {
    pub seed: u64,
}

/// [H→F] Reset a simulated plant to exactly `values`: one value per state channel, in
/// the announced channel order and each channel's unit (the raw values a `State` would
/// carry). The firmware refuses a wrong length, a non-finite value or a value outside the
/// channel's range with `Fault{BadResetState}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResetTo {
    pub values: StateVector,
}

/// [F→H] Operator inputs: analogue axes in [-1, 1] and a button bitmask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Teleop {
    pub buttons: u32,
    pub axes: Vector<MAX_TELEOP_AXES>,
}

/// Fault codes carried by [`Fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
#[non_exhaustive]
pub enum FaultCode {
    Watchdog = 1,
    HostTimeout = 2,
    EStop = 3,
    BadCommand = 4,
    Sensor = 5,
    Limit = 6,
    /// The host asked for something this robot cannot do (e.g. `Reset` on hardware).
    Unsupported = 7,
    /// No protocol version in common with the host's `Hello`.
    VersionMismatch = 8,
    /// A `ResetTo` was refused: wrong length, non-finite or out-of-range value. The
    /// detail is [`reset_state_detail`]'s.
    BadResetState = 9,
}

impl FaultCode {
    pub const fn from_u16(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::Watchdog,
            2 => Self::HostTimeout,
            3 => Self::EStop,
            4 => Self::BadCommand,
            5 => Self::Sensor,
            6 => Self::Limit,
            7 => Self::Unsupported,
            8 => Self::VersionMismatch,
            9 => Self::BadResetState,
            _ => return None,
        })
    }
}

/// [F→H] A fault event. `detail` is code-specific (e.g. the refused command's seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub detail: u32,
}

/// Why a `ResetTo` was refused, in the high byte of `Fault{BadResetState}.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ResetStateError {
    /// `n` differs from the number of state channels; the low byte is the `n` received.
    Length = 1,
    /// A value is NaN or infinite; the low byte is its index.
    NotFinite = 2,
    /// A value lies outside its channel's range; the low byte is its index.
    OutOfRange = 3,
}

impl ResetStateError {
    pub const fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Length,
            2 => Self::NotFinite,
            3 => Self::OutOfRange,
            _ => return None,
        })
    }
}

/// `Fault{BadResetState}.detail`: `reason << 8 | index` (the index of the first bad
/// value, or for [`ResetStateError::Length`] the number of values received).
pub const fn reset_state_detail(reason: ResetStateError, index: u8) -> u32 {
    ((reason as u32) << 8) | index as u32
}

/// The reason and index packed by [`reset_state_detail`], or `None` if `detail` is not
/// such a value.
pub const fn parse_reset_state_detail(detail: u32) -> Option<(ResetStateError, u8)> {
    if detail > 0xffff {
        return None;
    }
    match ResetStateError::from_u8((detail >> 8) as u8) {
        Some(reason) => Some((reason, detail as u8)),
        None => None,
    }
}
