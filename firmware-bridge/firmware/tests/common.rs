//! The test robot (two state channels, two action channels) and a rig that plays both
//! the host (sending frames) and the main loop (ticking, draining the outbox).

use handful_firmware::*;
use handful_protocol::*;

pub const PERIOD_US: u64 = 10_000;
pub const WATCHDOG_US: u32 = 50_000;
pub const HEARTBEAT_US: u32 = 100_000;
pub const HOST_TIMEOUT_US: u32 = 200_000;

fn channel(name: &str, unit: &str, min: f32, max: f32, safe: f32) -> ChannelSpec {
    ChannelSpec {
        name: Name::new(name).unwrap(),
        unit: Unit::new(unit).unwrap(),
        min,
        max,
        safe,
    }
}

/// The test robot: a cart position in [-2.5, 2.5] m and an unbounded velocity (the
/// ranges a ResetTo may set), a force in [-10, 10] N and a brake in [0, 1].
pub fn config(capabilities: u32) -> FirmwareConfig {
    let mut state_channels = heapless::Vec::new();
    state_channels
        .push(channel("cart_position", "m", -2.5, 2.5, 0.0))
        .unwrap();
    state_channels
        .push(channel(
            "cart_velocity",
            "m/s",
            f32::NEG_INFINITY,
            f32::INFINITY,
            0.0,
        ))
        .unwrap();
    let mut action_channels = heapless::Vec::new();
    action_channels
        .push(channel("force", "N", -10.0, 10.0, 0.0))
        .unwrap();
    action_channels
        .push(channel("brake", "", 0.0, 1.0, 1.0))
        .unwrap();
    FirmwareConfig {
        robot_id: Name::new("test-bot").unwrap(),
        firmware_version: [1, 2, 3],
        state_channels,
        action_channels,
        control_period_us: PERIOD_US as u32,
        watchdog_timeout_us: WATCHDOG_US,
        heartbeat_interval_us: HEARTBEAT_US,
        host_timeout_us: HOST_TIMEOUT_US,
        capabilities,
    }
}

/// The safe action of the test robot.
pub const SAFE: [f32; 2] = [0.0, 1.0];

pub struct Rig {
    pub firmware: Firmware,
    pub out: Outbox,
    pub now_us: u64,
    host_seq: u32,
}

impl Rig {
    pub fn new() -> Self {
        Self::with_config(config(CAP_RESET))
    }

    pub fn with_config(config: FirmwareConfig) -> Self {
        Self {
            firmware: Firmware::new(config),
            out: Outbox::new(),
            now_us: 1_000,
            host_seq: 0,
        }
    }

    /// The host sends `message` now.
    pub fn send(&mut self, message: Message) -> Option<Event> {
        let frame = Frame {
            seq: self.host_seq,
            timestamp_us: 0,
            message,
        };
        self.host_seq += 1;
        self.firmware.handle(&frame, self.now_us, &mut self.out)
    }

    /// A command valid for one more period.
    pub fn command(&mut self, seq: u32, values: &[f32]) -> Option<Event> {
        let valid_until_us = self.now_us + PERIOD_US;
        self.send(Message::Command(Command {
            seq,
            valid_until_us,
            values: ActionVector::from_slice(values).unwrap(),
        }))
    }

    /// One control tick with a healthy plant.
    pub fn tick(&mut self) -> Vec<f32> {
        self.tick_with(&[0.5, -0.5], 0)
    }

    pub fn tick_with(&mut self, state: &[f32], sensor_faults: u32) -> Vec<f32> {
        let action = self
            .firmware
            .tick(self.now_us, state, sensor_faults, &mut self.out);
        action.as_slice().to_vec()
    }

    /// Advances the clock by `us`.
    pub fn wait(&mut self, us: u64) {
        self.now_us += us;
    }

    /// Everything queued so far, oldest first.
    pub fn drain(&mut self) -> Vec<Frame> {
        core::iter::from_fn(|| self.out.pop_front()).collect()
    }

    pub fn messages(&mut self) -> Vec<Message> {
        self.drain().into_iter().map(|f| f.message).collect()
    }

    /// The Fault frames queued so far (other frames are discarded).
    pub fn faults(&mut self) -> Vec<Fault> {
        self.messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::Fault(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    /// The State frames queued so far (other frames are discarded).
    pub fn states(&mut self) -> Vec<State> {
        self.messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::State(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

pub fn fault(code: FaultCode, detail: u32) -> Fault {
    Fault { code, detail }
}
