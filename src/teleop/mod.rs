//! Teleoperation: operator input devices behind one trait, and the controller that turns
//! their input into commands on the control thread.
//!
//! Sources — a gamepad ([`gamepad`], `gilrs`), the terminal keyboard ([`keyboard`]), and
//! inputs the firmware forwards in Teleop frames ([`FirmwareSource`]) — each publish the
//! latest [`TeleopInput`] into a lock-free slot from their own thread. The
//! [`TeleopController`] reads that slot each tick (never blocks, never allocates) and
//! applies the dead-man rule and a rate limit; the control loop's safety layer then
//! clamps its command like any other. Episode control (start, stop-and-keep,
//! stop-and-discard, e-stop) comes from button edges, read off the control thread by
//! [`EpisodeButtons`].
//!
//! Button convention (the firmware's Teleop `buttons` use the same bits): see
//! [`BUTTON_DEADMAN`] and the constants after it.

pub mod gamepad;
pub mod keyboard;

use std::sync::Arc;

use crossbeam::atomic::AtomicCell;
use handful_protocol::MAX_TELEOP_AXES;

use crate::clock::Clock;
use crate::control::{ControlError, Controller, Observation};
use crate::link::Link;

/// Held: the operator is in control. Released: the safe command.
pub const BUTTON_DEADMAN: u32 = 1 << 0;
/// Press: start an episode (arm and drive).
pub const BUTTON_START: u32 = 1 << 1;
/// Press: stop the episode and keep it.
pub const BUTTON_STOP_KEEP: u32 = 1 << 2;
/// Press: stop the episode and discard it.
pub const BUTTON_STOP_DISCARD: u32 = 1 << 3;
/// Press: emergency stop.
pub const BUTTON_ESTOP: u32 = 1 << 4;
/// Press: leave the recording session.
pub const BUTTON_QUIT: u32 = 1 << 5;

/// One snapshot of the operator's input. Axes in `[-1, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TeleopInput {
    /// Host clock time the input was read, µs.
    pub host_time_us: u64,
    pub buttons: u32,
    pub axes: [f32; MAX_TELEOP_AXES],
    pub axis_count: usize,
}

impl TeleopInput {
    pub fn axis(&self, index: usize) -> f32 {
        if index < self.axis_count {
            self.axes[index]
        } else {
            0.0
        }
    }

    pub fn pressed(&self, button: u32) -> bool {
        self.buttons & button != 0
    }
}

/// An operator input device. `latest` is called on the control thread: it must not
/// block or allocate.
pub trait TeleopSource: Send + Sync {
    fn latest(&self) -> Option<TeleopInput>;
    fn name(&self) -> &'static str;
}

/// A latest-value slot a device thread writes and the control thread reads.
#[derive(Debug, Default)]
pub struct InputSlot {
    cell: AtomicCell<Option<TeleopInput>>,
}

impl InputSlot {
    pub fn publish(&self, input: TeleopInput) {
        self.cell.store(Some(input));
    }

    pub fn latest(&self) -> Option<TeleopInput> {
        self.cell.load()
    }
}

/// Operator inputs the firmware forwards in Teleop frames (capability `CAP_TELEOP`).
pub struct FirmwareSource {
    link: Arc<Link>,
}

impl FirmwareSource {
    pub fn new(link: Arc<Link>) -> Self {
        Self { link }
    }
}

impl TeleopSource for FirmwareSource {
    fn latest(&self) -> Option<TeleopInput> {
        self.link.latest_teleop().map(|t| TeleopInput {
            host_time_us: t.host_time_us,
            buttons: t.buttons,
            axes: t.axes,
            axis_count: t.axis_count,
        })
    }

    fn name(&self) -> &'static str {
        "firmware"
    }
}

/// How operator input becomes a command.
#[derive(Clone, Debug, PartialEq)]
pub struct TeleopMapping {
    /// Action channel `a` follows axis `axis_for_action[a]`, scaled so that ±1 is the
    /// channel's limit.
    pub axis_for_action: Vec<usize>,
    /// `(min, max)` per action channel.
    pub limits: Vec<(f32, f32)>,
    /// Safe command per channel (dead-man released, stale input).
    pub safe: Vec<f32>,
    /// Largest change of each channel per tick, as a fraction of its range.
    pub max_step_fraction: f32,
    /// Input older than this is ignored (the safe command goes out).
    pub stale_input_us: u64,
}

/// Teleoperation as a [`Controller`]: dead-man, scaling, rate limit.
pub struct TeleopController {
    source: Arc<dyn TeleopSource>,
    mapping: TeleopMapping,
    clock: Clock,
    previous: [f32; handful_protocol::MAX_ACTION_DIM],
}

impl TeleopController {
    pub fn new(source: Arc<dyn TeleopSource>, mapping: TeleopMapping, clock: Clock) -> Self {
        let mut previous = [0.0; handful_protocol::MAX_ACTION_DIM];
        for (p, s) in previous.iter_mut().zip(&mapping.safe) {
            *p = *s;
        }
        Self {
            source,
            mapping,
            clock,
            previous,
        }
    }
}

impl Controller for TeleopController {
    /// Real-time contract: one slot read, arithmetic; no allocation, no blocking.
    fn act(&mut self, _obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        let now = self.clock.now_us();
        let input = self
            .source
            .latest()
            .filter(|i| now.saturating_sub(i.host_time_us) <= self.mapping.stale_input_us)
            .filter(|i| i.pressed(BUTTON_DEADMAN));
        for (a, out) in action.iter_mut().enumerate() {
            let (lo, hi) = self.mapping.limits.get(a).copied().unwrap_or((0.0, 0.0));
            let safe = self.mapping.safe.get(a).copied().unwrap_or(0.0);
            let target = match input {
                Some(i) => {
                    let axis = self
                        .mapping
                        .axis_for_action
                        .get(a)
                        .map_or(0.0, |&k| i.axis(k).clamp(-1.0, 1.0));
                    if axis >= 0.0 {
                        safe + axis * (hi - safe)
                    } else {
                        safe + axis * (safe - lo)
                    }
                }
                None => safe,
            };
            // The rate limit applies to the operator, not to the safe command.
            let value = if input.is_some() {
                let step = self.mapping.max_step_fraction * (hi - lo);
                let previous = self.previous[a];
                target.clamp(previous - step, previous + step)
            } else {
                target
            };
            *out = value;
            self.previous[a] = value;
        }
        Ok(())
    }

    fn reset(&mut self) {
        for (p, s) in self.previous.iter_mut().zip(&self.mapping.safe) {
            *p = *s;
        }
    }

    fn name(&self) -> &'static str {
        "teleop"
    }
}

/// What the operator asked for with a button press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpisodeCommand {
    Start,
    StopKeep,
    StopDiscard,
    EStop,
    Quit,
}

/// Turns button presses (rising edges) into [`EpisodeCommand`]s. Polled off the control
/// thread (the recorder's loop), so a press is never lost to the control thread's pace.
#[derive(Debug, Default)]
pub struct EpisodeButtons {
    previous: u32,
}

impl EpisodeButtons {
    /// The command for the buttons newly pressed since the last call, if any (e-stop
    /// first).
    pub fn poll(&mut self, input: Option<TeleopInput>) -> Option<EpisodeCommand> {
        let buttons = input.map_or(0, |i| i.buttons);
        let pressed = buttons & !self.previous;
        self.previous = buttons;
        [
            (BUTTON_ESTOP, EpisodeCommand::EStop),
            (BUTTON_STOP_DISCARD, EpisodeCommand::StopDiscard),
            (BUTTON_STOP_KEEP, EpisodeCommand::StopKeep),
            (BUTTON_START, EpisodeCommand::Start),
            (BUTTON_QUIT, EpisodeCommand::Quit),
        ]
        .into_iter()
        .find(|(bit, _)| pressed & bit != 0)
        .map(|(_, command)| command)
    }
}
