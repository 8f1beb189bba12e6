//! The loop's modes, the faults it raises, the requests it obeys and the records it
//! publishes. All plain `Copy` values: they cross threads on bounded channels without
//! allocating (except [`Request::SetController`], whose box is allocated by the sender).

use handful_protocol::{MAX_ACTION_DIM, MAX_STATE_DIM};
use serde::Serialize;

use super::Controller;
use super::phase::PhaseKind;

/// What the loop is doing. Only `Teleop` and `Autonomous` ever send a non-safe command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Disarmed: the safe command every tick.
    Idle,
    /// A person drives the robot through the controller (a teleop source).
    Teleop,
    /// The controller drives the robot.
    Autonomous,
    /// Something went wrong: safe command until an explicit re-arm.
    Fault,
    /// Emergency stop: latched in the firmware until a disarm.
    EStop,
}

impl Mode {
    pub const fn is_driving(self) -> bool {
        matches!(self, Self::Teleop | Self::Autonomous)
    }
}

/// Why the loop sent the safe command instead of the controller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostFault {
    /// Nothing received from the robot within the link timeout, or the port is gone.
    LinkLost,
    /// No state, or the latest one older than the calibrated staleness bound.
    StaleState,
    /// The robot reported a NaN or infinite state value.
    NonFiniteState,
    /// The controller wrote a NaN or infinite action.
    NonFiniteAction,
    /// The controller returned an error (model not ready, model NaN).
    Controller,
    /// The tick's work ended after the next deadline; its command was dropped.
    Overrun,
    /// Several overruns in a row: latched.
    RepeatedOverrun,
    /// The firmware reports a latched fault (watchdog, host timeout, e-stop) or is
    /// not armed while it should be.
    Firmware,
    /// The robot did not report itself armed within the arming grace period.
    NotArmed,
    /// The link's transmit queue was full: the command was not sent.
    SendFailed,
    /// The firmware's heartbeats stopped ([`LoopConfig::heartbeats_missed`] intervals
    /// missed) while other frames may still arrive: the firmware's health is in doubt.
    /// Real time only.
    ///
    /// [`LoopConfig::heartbeats_missed`]: super::LoopConfig::heartbeats_missed
    HeartbeatLost,
}

impl HostFault {
    /// The snake_case name used in `summary.json` and printouts.
    pub const fn name(self) -> &'static str {
        match self {
            Self::LinkLost => "link_lost",
            Self::StaleState => "stale_state",
            Self::NonFiniteState => "non_finite_state",
            Self::NonFiniteAction => "non_finite_action",
            Self::Controller => "controller",
            Self::Overrun => "overrun",
            Self::RepeatedOverrun => "repeated_overrun",
            Self::Firmware => "firmware",
            Self::NotArmed => "not_armed",
            Self::SendFailed => "send_failed",
            Self::HeartbeatLost => "heartbeat_lost",
        }
    }

    /// Whether the fault latches the loop into [`Mode::Fault`] (overruns alone do not:
    /// that tick gets the safe command and the next tick tries again).
    pub const fn latches(self) -> bool {
        !matches!(self, Self::Overrun | Self::SendFailed)
    }
}

/// A request to the loop, obeyed at the start of the next tick.
pub enum Request {
    /// Start a phase: reset (if asked, simulators) and arm the robot, or go on armed from
    /// where it is; swap the controller and its objective if given; reset the
    /// controller; drive the phase's task for its step budget (or until told otherwise,
    /// or until its success test passes); then disarm or hold as the phase says, and
    /// report an [`EpisodeSummary`]. Also the explicit re-arm out of `Fault`.
    StartEpisode(super::EpisodeStart),
    /// Disarm and go idle (ends an episode early).
    Disarm,
    /// Emergency stop.
    EStop,
    /// Replace the controller between ticks; the old one is handed back on the
    /// retired-controller channel to be dropped off the control thread.
    SetController(Box<dyn Controller>),
    /// Disarm and leave the loop.
    Stop,
}

/// One step of an episode, attached to the tick that observed its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpisodeStep {
    pub episode: u32,
    /// Index of the action whose outcome this tick observed (0-based).
    pub step: u32,
    /// The phase's reward of that action and the state it led to.
    pub reward: f32,
}

/// Everything the loop did in one tick. `Copy`, fixed size: the telemetry channel carries
/// it without allocating.
#[derive(Clone, Copy, Debug)]
pub struct TickRecord {
    pub tick: u64,
    pub deadline_us: u64,
    pub wake_us: u64,
    /// Real time spent in the tick's work, µs.
    pub compute_us: u64,
    pub mode: Mode,
    /// The phase in force (the last one started, while none drives).
    pub phase: PhaseKind,
    pub state: [f32; MAX_STATE_DIM],
    pub state_dim: u8,
    /// The link's state counter for the sample used (0: none).
    pub state_count: u64,
    pub state_age_us: u64,
    /// The firmware's timestamp of the sample used.
    pub firmware_us: u64,
    /// The sample's `last_command_seq`: the command the firmware had in force when it
    /// took the sample (0 before any).
    pub applied_seq: u32,
    /// Whether the firmware was armed when it took the sample (otherwise it applies the
    /// safe values, whatever it last accepted).
    pub armed: bool,
    /// The command sent (the safe command whenever the controller's was not).
    pub action: [f32; MAX_ACTION_DIM],
    pub action_dim: u8,
    /// The link's command seq, if a command went out.
    pub command_seq: Option<u32>,
    pub fault: Option<HostFault>,
    pub episode: Option<EpisodeStep>,
    /// The controller's objective score of the state before it acted (e.g. the MEDAL
    /// classifier's `C(s)` in a backward phase); NaN when it has none.
    pub score: f32,
}

impl TickRecord {
    pub fn state(&self) -> &[f32] {
        &self.state[..self.state_dim as usize]
    }

    pub fn action(&self) -> &[f32] {
        &self.action[..self.action_dim as usize]
    }
}

/// How an episode ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeEnd {
    /// All requested steps ran.
    Completed,
    /// The phase's success test passed.
    Succeeded,
    /// A disarm, e-stop, stop or new episode request ended it.
    Interrupted,
    /// A latching fault ended it.
    Faulted(HostFault),
}

impl EpisodeEnd {
    /// `completed`, `succeeded`, `interrupted` or `fault:<Kind>` (CSV files, logs).
    pub fn label(self) -> String {
        match self {
            Self::Completed => "completed".into(),
            Self::Succeeded => "succeeded".into(),
            Self::Interrupted => "interrupted".into(),
            Self::Faulted(fault) => format!("fault:{}", fault.name()),
        }
    }

    /// Whether the episode ran to its end: its step budget, or its success test.
    pub const fn finished(self) -> bool {
        matches!(self, Self::Completed | Self::Succeeded)
    }
}

/// The outcome of one episode, sent once when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpisodeSummary {
    pub episode: u32,
    pub phase: PhaseKind,
    pub steps: u32,
    /// Sum of the phase's rewards.
    pub episode_return: f64,
    pub end: EpisodeEnd,
    pub first_tick: u64,
    pub last_tick: u64,
}
