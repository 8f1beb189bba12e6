//! The firmware state machine: what each host frame does and what each control tick
//! applies and publishes (the semantics are listed in the crate docs).
//!
//! Never allocates, never panics, and does bounded work per call: at most one Hello
//! answer (1 + state + action channels frames) per `handle`, at most five frames per
//! `tick`.

use handful_protocol::{
    ActionVector, ArmState, CAP_RESET, CAP_RESET_TO, Capabilities, ChannelInfo, ChannelKind,
    Command, FAULT_BAD_COMMAND, FAULT_ESTOP, FAULT_HOST_TIMEOUT, FAULT_LIMIT, FAULT_SENSOR,
    FAULT_WATCHDOG, Fault, FaultCode, Frame, Heartbeat, Hello, MAX_ACTION_DIM, MAX_STATE_DIM,
    Message, MessageKind, PROTOCOL_VERSION, ResetStateError, ResetTo, State, StateVector, Teleop,
    reset_state_detail,
};

use crate::{Event, FirmwareConfig, Outbox};

/// Fault bits only the firmware sets; the plant's bits never override them.
const FIRMWARE_FAULTS: u32 = FAULT_WATCHDOG | FAULT_HOST_TIMEOUT | FAULT_ESTOP | FAULT_BAD_COMMAND;

/// The firmware logic of one robot. Starts `Disarmed`.
#[derive(Clone, Debug)]
pub struct Firmware {
    config: FirmwareConfig,
    /// The action channels' safe values, applied whenever no command is.
    safe: ActionVector,
    arm_state: ArmState,
    /// `FAULT_WATCHDOG`, `FAULT_HOST_TIMEOUT`, `FAULT_ESTOP` until cleared by Arm/Disarm.
    latched_faults: u32,
    /// `FAULT_BAD_COMMAND` if a command was refused since the last tick.
    refused_faults: u32,
    /// The plant's bits from the last tick.
    plant_faults: u32,
    /// The accepted (clamped) command applied while armed.
    command: Option<ActionVector>,
    last_command_seq: u32,
    accepted_commands: u64,
    /// Arming or the last accepted command: the watchdog's reference.
    watchdog_from_us: u64,
    /// The last frame from the host: the host timeout's reference.
    host_seen_us: u64,
    next_heartbeat_us: Option<u64>,
    /// Fault injection: no more Heartbeats ([`Firmware::stop_heartbeats`]).
    heartbeats_stopped: bool,
    next_seq: u32,
    dropped_frames: u64,
}

impl Firmware {
    pub fn new(config: FirmwareConfig) -> Self {
        let mut safe = [0f32; MAX_ACTION_DIM];
        for (slot, channel) in safe.iter_mut().zip(&config.action_channels) {
            *slot = channel.safe;
        }
        let safe =
            ActionVector::from_slice(&safe[..config.action_channels.len()]).unwrap_or_default();
        Self {
            config,
            safe,
            arm_state: ArmState::Disarmed,
            latched_faults: 0,
            refused_faults: 0,
            plant_faults: 0,
            command: None,
            last_command_seq: 0,
            accepted_commands: 0,
            watchdog_from_us: 0,
            host_seen_us: 0,
            next_heartbeat_us: None,
            heartbeats_stopped: false,
            next_seq: 0,
            dropped_frames: 0,
        }
    }

    /// A frame received from the host, at firmware time `now_us`. Responses go into `out`.
    ///
    /// Real-time contract: no allocation; at most `1 + state_dim + action_dim` frames
    /// queued (a Hello answer), otherwise at most one.
    pub fn handle(&mut self, frame: &Frame, now_us: u64, out: &mut Outbox) -> Option<Event> {
        self.handle_with(frame, now_us, out, |_| None)
    }

    /// [`Firmware::handle`] with the plant's own check of a `ResetTo`: after the
    /// firmware's checks (capability, length, finiteness, the state channels' ranges)
    /// pass, `plant_refuses(values)` may still refuse the state, returning the index of
    /// the offending value (`0xff`: the state as a whole, e.g. a simulator whose plant
    /// would be at a limit there). A refused `ResetTo` sends `Fault{BadResetState,
    /// OutOfRange}` and changes nothing else, exactly as the firmware's own refusals.
    /// `plant_refuses` is called only for a `ResetTo` that passed the firmware's checks.
    pub fn handle_with(
        &mut self,
        frame: &Frame,
        now_us: u64,
        out: &mut Outbox,
        plant_refuses: impl FnOnce(&[f32]) -> Option<u8>,
    ) -> Option<Event> {
        self.host_seen_us = now_us;
        match &frame.message {
            Message::Hello(hello) => self.hello(hello, now_us, out),
            Message::Arm => self.arm(now_us, out),
            Message::Disarm => self.disarm(),
            Message::EStop => self.estop(now_us, out),
            Message::Command(command) => self.command(command, now_us, out),
            Message::Reset(reset) => {
                if self.config.capabilities & CAP_RESET != 0 {
                    self.disarm();
                    return Some(Event::Reset { seed: reset.seed });
                }
                let detail = MessageKind::Reset as u32;
                self.fault(FaultCode::Unsupported, detail, now_us, out);
            }
            Message::ResetTo(reset) => return self.reset_to(reset, now_us, out, plant_refuses),
            // Liveness only.
            Message::Heartbeat(_)
            | Message::Capabilities(_)
            | Message::ChannelInfo(_)
            | Message::State(_)
            | Message::Teleop(_)
            | Message::Fault(_) => {}
        }
        None
    }

    /// Once per control period: supervises the watchdog and the host link, returns the
    /// actuator values to apply now, and queues Fault frames for new faults, a State
    /// frame with `state` (one value per state channel), and a Heartbeat when due.
    /// `sensor_fault_flags` are the plant's `FAULT_SENSOR` / `FAULT_LIMIT` bits (others above
    /// them pass through; the firmware-owned bits are ignored).
    ///
    /// Real-time contract: no allocation, at most five frames queued.
    pub fn tick(
        &mut self,
        now_us: u64,
        state: &[f32],
        sensor_fault_flags: u32,
        out: &mut Outbox,
    ) -> ActionVector {
        if self.arm_state == ArmState::Armed {
            self.supervise(now_us, out);
        }

        let state_dim = self.config.state_channels.len();
        let mut plant = sensor_fault_flags & !FIRMWARE_FAULTS;
        if state.len() != state_dim {
            plant |= FAULT_SENSOR;
        }
        let rising = plant & !self.plant_faults;
        self.plant_faults = plant;
        for (bit, code) in [
            (FAULT_SENSOR, FaultCode::Sensor),
            (FAULT_LIMIT, FaultCode::Limit),
        ] {
            if rising & bit != 0 {
                self.fault(code, plant, now_us, out);
            }
        }

        let fault_flags = self.fault_flags();
        self.refused_faults = 0;
        let shown = state.len().min(state_dim).min(MAX_STATE_DIM);
        self.send(
            Message::State(State {
                arm_state: self.arm_state,
                fault_flags,
                last_command_seq: self.last_command_seq,
                values: StateVector::from_slice(&state[..shown]).unwrap_or_default(),
            }),
            now_us,
            out,
        );
        if !self.heartbeats_stopped && self.next_heartbeat_us.is_none_or(|due| now_us >= due) {
            let interval = u64::from(self.config.heartbeat_interval_us);
            self.next_heartbeat_us = Some(now_us.saturating_add(interval));
            let heartbeat = Heartbeat {
                arm_state: self.arm_state,
                fault_flags,
            };
            self.send(Message::Heartbeat(heartbeat), now_us, out);
        }

        self.actuation()
    }

    /// The action the firmware applies right now: the accepted (clamped) command while
    /// `Armed`, the channels' safe values otherwise (also `Armed` before any command).
    /// A lockstep simulator reads it after `handle` to step its plant.
    pub fn actuation(&self) -> ActionVector {
        match (self.arm_state, self.command) {
            (ArmState::Armed, Some(command)) => command,
            _ => self.safe,
        }
    }

    /// Fault injection, for simulators and tests: from now on no Heartbeat is queued, as
    /// if the firmware's heartbeat task had hung; States, Faults and answers go on, with
    /// no gap in the frame seq. A real firmware never calls it.
    pub fn stop_heartbeats(&mut self) {
        self.heartbeats_stopped = true;
    }

    /// Forward operator inputs to the host (queues a Teleop frame).
    pub fn forward_teleop(&mut self, now_us: u64, teleop: Teleop, out: &mut Outbox) {
        self.send(Message::Teleop(teleop), now_us, out);
    }

    pub fn arm_state(&self) -> ArmState {
        self.arm_state
    }

    /// The bits the next State would carry if the plant reported the same as last tick.
    pub fn fault_flags(&self) -> u32 {
        self.latched_faults | self.refused_faults | self.plant_faults
    }

    pub fn config(&self) -> &FirmwareConfig {
        &self.config
    }

    /// Frames lost because the outbox was full.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// `Command::seq` of the last accepted command (0 before any); not reset by arming.
    pub fn last_command_seq(&self) -> u32 {
        self.last_command_seq
    }

    /// How many commands were accepted since start-up (refused ones are not counted).
    /// Not a step count: a lockstep simulator steps its plant once per Command received
    /// while `Armed`, accepted or refused (README section 10); an increment across one
    /// `handle` tells that this Command was accepted.
    pub fn accepted_commands(&self) -> u64 {
        self.accepted_commands
    }

    fn hello(&mut self, hello: &Hello, now_us: u64, out: &mut Outbox) {
        if !(hello.protocol_min..=hello.protocol_max).contains(&PROTOCOL_VERSION) {
            let detail = u32::from(PROTOCOL_VERSION);
            self.fault(FaultCode::VersionMismatch, detail, now_us, out);
            return;
        }
        let config = &self.config;
        let capabilities = Capabilities {
            protocol: PROTOCOL_VERSION,
            robot_id: config.robot_id,
            firmware_version: config.firmware_version,
            state_dim: config.state_channels.len() as u8,
            action_dim: config.action_channels.len() as u8,
            control_period_us: config.control_period_us,
            watchdog_timeout_us: config.watchdog_timeout_us,
            heartbeat_interval_us: config.heartbeat_interval_us,
            capabilities: config.capabilities,
        };
        self.send(Message::Capabilities(capabilities), now_us, out);
        for index in 0..self.config.state_channels.len() {
            let channel = self.config.state_channels[index];
            let info = ChannelInfo {
                kind: ChannelKind::State,
                index: index as u8,
                name: channel.name,
                unit: channel.unit,
                min: 0.0,
                max: 0.0,
                safe: 0.0,
            };
            self.send(Message::ChannelInfo(info), now_us, out);
        }
        for index in 0..self.config.action_channels.len() {
            let channel = self.config.action_channels[index];
            let info = ChannelInfo {
                kind: ChannelKind::Action,
                index: index as u8,
                name: channel.name,
                unit: channel.unit,
                min: channel.min,
                max: channel.max,
                safe: channel.safe,
            };
            self.send(Message::ChannelInfo(info), now_us, out);
        }
    }

    fn arm(&mut self, now_us: u64, out: &mut Outbox) {
        match self.arm_state {
            ArmState::Disarmed | ArmState::Faulted => {
                self.arm_state = ArmState::Armed;
                self.latched_faults = 0;
                self.command = None;
                self.watchdog_from_us = now_us;
            }
            ArmState::Armed => {}
            ArmState::EStopped => self.fault(FaultCode::EStop, 0, now_us, out),
        }
    }

    fn disarm(&mut self) {
        self.arm_state = ArmState::Disarmed;
        self.latched_faults = 0;
        self.command = None;
    }

    fn estop(&mut self, now_us: u64, out: &mut Outbox) {
        self.latched_faults |= FAULT_ESTOP;
        self.command = None;
        if self.arm_state != ArmState::EStopped {
            self.arm_state = ArmState::EStopped;
            self.fault(FaultCode::EStop, 0, now_us, out);
        }
    }

    fn command(&mut self, command: &Command, now_us: u64, out: &mut Outbox) {
        let channels = &self.config.action_channels;
        let values = command.values.as_slice();
        let valid = self.arm_state == ArmState::Armed
            && values.len() == channels.len()
            && values.iter().all(|v| v.is_finite())
            && command.valid_until_us >= now_us;
        if !valid {
            if self.arm_state == ArmState::Armed {
                self.refused_faults |= FAULT_BAD_COMMAND;
                self.fault(FaultCode::BadCommand, command.seq, now_us, out);
            }
            return;
        }
        let mut clamped = command.values;
        for (value, channel) in clamped.as_mut_slice().iter_mut().zip(channels) {
            // Not `f32::clamp`, which panics on a misconfigured `min > max`.
            *value = value.max(channel.min).min(channel.max);
        }
        self.command = Some(clamped);
        self.last_command_seq = command.seq;
        self.accepted_commands += 1;
        self.watchdog_from_us = now_us;
    }

    /// A `ResetTo`: refused (a Fault, nothing else) without `CAP_RESET_TO`, when the
    /// values are not one finite, in-range value per state channel, or when the plant
    /// refuses them; otherwise disarms and hands the state to the plant.
    fn reset_to(
        &mut self,
        reset: &ResetTo,
        now_us: u64,
        out: &mut Outbox,
        plant_refuses: impl FnOnce(&[f32]) -> Option<u8>,
    ) -> Option<Event> {
        if self.config.capabilities & CAP_RESET_TO == 0 {
            let detail = MessageKind::ResetTo as u32;
            self.fault(FaultCode::Unsupported, detail, now_us, out);
            return None;
        }
        let values = reset.values.as_slice();
        let refusal = self.bad_reset_state(values).or_else(|| {
            plant_refuses(values).map(|i| reset_state_detail(ResetStateError::OutOfRange, i))
        });
        if let Some(detail) = refusal {
            self.fault(FaultCode::BadResetState, detail, now_us, out);
            return None;
        }
        self.disarm();
        Some(Event::ResetTo {
            state: reset.values,
        })
    }

    /// `Fault{BadResetState}`'s detail for `values`, or `None` if they may be set.
    fn bad_reset_state(&self, values: &[f32]) -> Option<u32> {
        let channels = &self.config.state_channels;
        if values.len() != channels.len() {
            let n = u8::try_from(values.len()).unwrap_or(u8::MAX);
            return Some(reset_state_detail(ResetStateError::Length, n));
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Some(reset_state_detail(ResetStateError::NotFinite, index as u8));
        }
        let outside = values
            .iter()
            .zip(channels)
            .position(|(&v, c)| !(c.min <= v && v <= c.max));
        outside.map(|index| reset_state_detail(ResetStateError::OutOfRange, index as u8))
    }

    /// The watchdog and host-timeout checks of an armed tick.
    fn supervise(&mut self, now_us: u64, out: &mut Outbox) {
        let since_command = now_us.saturating_sub(self.watchdog_from_us);
        let since_host = now_us.saturating_sub(self.host_seen_us);
        let checks = [
            (
                since_command,
                self.config.watchdog_timeout_us,
                FAULT_WATCHDOG,
                FaultCode::Watchdog,
            ),
            (
                since_host,
                self.config.host_timeout_us,
                FAULT_HOST_TIMEOUT,
                FaultCode::HostTimeout,
            ),
        ];
        for (elapsed_us, timeout_us, bit, code) in checks {
            if elapsed_us > u64::from(timeout_us) {
                self.arm_state = ArmState::Faulted;
                self.latched_faults |= bit;
                self.command = None;
                let detail = u32::try_from(elapsed_us).unwrap_or(u32::MAX);
                self.fault(code, detail, now_us, out);
            }
        }
    }

    fn fault(&mut self, code: FaultCode, detail: u32, now_us: u64, out: &mut Outbox) {
        self.send(Message::Fault(Fault { code, detail }), now_us, out);
    }

    /// Queues one frame with the next seq; a full outbox drops it (the seq is spent, so
    /// the host sees the gap).
    fn send(&mut self, message: Message, now_us: u64, out: &mut Outbox) {
        let frame = Frame {
            seq: self.next_seq,
            timestamp_us: now_us,
            message,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        if out.push_back(frame).is_err() {
            self.dropped_frames += 1;
        }
    }
}
