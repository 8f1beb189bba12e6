//! The simulated robot's parts and the operations both clock modes share: receive and
//! decode host bytes, tick the firmware on a sensor reading, step the plant with the
//! firmware's actuation, publish the outbox, and pull or replug the cable.
//!
//! Owns the firmware, the plant, the pty, the link and the trace. After `new`, nothing
//! here allocates except `reconnect` (a new pty path) and nothing blocks: reads and
//! writes on the pty are non-blocking, and waiting is the loops' business
//! (`realtime.rs`, `lockstep.rs`). With `--trace`, every 64 KiB of trace is one write to
//! the page cache.

use std::time::Duration;

use handful_firmware::{Event, Firmware, Outbox};
use handful_protocol::{ActionVector, Decoder, FAULT_LIMIT, Frame, MAX_STATE_DIM};
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::firmware_config;
use super::fault::{Gate, Transmitter, corrupt_byte};
use super::pty::{Link, Pty};
use super::sensor::Sensor;
use super::trace::Trace;
use super::{SimError, SimOptions, SimReport};
use crate::plant::Plant;

/// Bytes read from the pty per `read` call.
const RX_CHUNK: usize = 4096;

/// Progress of a one-off fault window (a stall, a disconnect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    Pending,
    Active,
    Done,
}

/// One simulated robot: firmware, plant, sensors and wire.
pub struct Sim {
    pub(super) options: SimOptions,
    pub(super) firmware: Firmware,
    plant: Box<dyn Plant>,
    decoder: Decoder,
    outbox: Outbox,
    rng: ChaCha8Rng,
    sensor: Sensor,
    /// The sensors are inside their failure window (NaN readings).
    sensor_failed: bool,
    tx: Transmitter,
    port: Option<Pty>,
    link: Link,
    /// The plant's action buffer (`action_dim` values), kept between steps.
    action: Vec<f64>,
    rx: Vec<u8>,
    pub(super) report: SimReport,
    pub(super) period_us: u64,
    pub(super) stall: Outage,
    pub(super) disconnect: Outage,
    pub(super) trace: Trace,
    /// The transmit gate as of the last [`Sim::update_gate`] (edges go to the trace).
    gate: Gate,
    heartbeats_stopped: bool,
}

impl Sim {
    /// Builds the robot and publishes its link; the plant keeps the state it has.
    pub fn new(options: SimOptions, plant: Box<dyn Plant>) -> Result<Self, SimError> {
        options.validate()?;
        let spec = plant.spec();
        let config = firmware_config(spec, &options)?;
        let period_us = u64::from(spec.control_period_us);
        let latency_steps = options.sensor_latency_us.div_ceil(period_us);
        let latency_steps = usize::try_from(latency_steps).unwrap_or(usize::MAX);
        if latency_steps > 10_000 {
            return Err(SimError::InvalidOption {
                name: "sensor_latency_ms",
                value: (options.sensor_latency_us / 1_000).to_string(),
                expected: "at most 10 000 control periods",
            });
        }
        let mut sensor = Sensor::new(spec.states.len(), latency_steps, options.sensor_noise_std);
        sensor.fill(plant.state());
        let trace = Trace::open(options.trace.as_deref())?;
        let port = Pty::open()?;
        let mut link = Link::new(options.link.clone());
        link.point_to(port.slave_path())?;
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            tx: Transmitter::new(
                options.drop_prob,
                options.corrupt_prob,
                options.corrupt_byte_prob,
            ),
            firmware: Firmware::new(config),
            action: spec.actions.iter().map(|a| a.safe).collect(),
            plant,
            decoder: Decoder::new(),
            outbox: Outbox::new(),
            sensor,
            sensor_failed: false,
            port: Some(port),
            link,
            rx: vec![0; RX_CHUNK],
            report: SimReport::default(),
            period_us,
            stall: Outage::Pending,
            disconnect: Outage::Pending,
            trace,
            gate: Gate::default(),
            heartbeats_stopped: false,
            options,
        })
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn is_connected(&self) -> bool {
        self.port.is_some()
    }

    /// Waits up to `timeout_us` for host bytes; `false` on timeout, when disconnected,
    /// or when a signal interrupted the wait.
    pub fn wait_readable(&self, timeout_us: u64) -> Result<bool, SimError> {
        let Some(port) = &self.port else {
            return Ok(false);
        };
        let mut fds = [PollFd::new(port.master(), PollFlags::POLLIN)];
        let timeout = TimeSpec::from_duration(Duration::from_micros(timeout_us));
        match ppoll(&mut fds, Some(timeout), None) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => Ok(false),
            Ok(_) => Ok(fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))),
            Err(source) => Err(SimError::PtyIo { op: "poll", source }),
        }
    }

    /// Reads everything the host has sent (through the line noise, if any) and passes
    /// each decoded frame to `on_frame`. Stops early if `on_frame` disconnects (bytes of
    /// the old connection are dropped). `now_us` stamps undecodable runs in the trace.
    pub fn receive(
        &mut self,
        now_us: u64,
        mut on_frame: impl FnMut(&mut Self, &Frame) -> Result<(), SimError>,
    ) -> Result<(), SimError> {
        loop {
            let Some(port) = &self.port else {
                return Ok(());
            };
            let n = port
                .read(&mut self.rx)
                .map_err(|source| SimError::PtyIo { op: "read", source })?;
            for i in 0..n {
                let mut byte = self.rx[i];
                let noise = self.options.corrupt_byte_prob;
                if corrupt_byte(&mut byte, &mut self.rng, noise) {
                    self.report.bytes_corrupted_rx += 1;
                }
                match self.decoder.push(byte) {
                    None => {}
                    Some(Err(_)) => {
                        self.report.decode_errors += 1;
                        self.trace.rx_error(now_us);
                    }
                    Some(Ok(frame)) => {
                        self.report.frames_received += 1;
                        on_frame(self, &frame)?;
                        if self.port.is_none() {
                            return Ok(());
                        }
                    }
                }
            }
            if n < self.rx.len() {
                return Ok(());
            }
        }
    }

    /// Passes a host frame to the firmware at firmware time `now_us`; a Reset resets the
    /// plant from its seed, a ResetTo sets the plant's state exactly (the firmware checked
    /// it; the plant refuses one at a limit, see [`plant_refuses`]). Returns the
    /// firmware's event.
    pub fn handle(&mut self, frame: &Frame, now_us: u64) -> Option<Event> {
        let accepted = self.firmware.accepted_commands();
        let plant = &mut self.plant;
        let event = self
            .firmware
            .handle_with(frame, now_us, &mut self.outbox, |values| {
                plant_refuses(plant.as_mut(), values)
            });
        let accepted = self.firmware.accepted_commands() > accepted;
        self.trace
            .rx(now_us, frame, self.firmware.arm_state(), accepted);
        match event {
            Some(Event::Reset { seed }) => {
                self.plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
            }
            Some(Event::ResetTo { state }) => {
                let mut values = [0f64; MAX_STATE_DIM];
                let values = &mut values[..state.len()];
                for (slot, &value) in values.iter_mut().zip(state.as_slice()) {
                    *slot = f64::from(value);
                }
                self.plant.set_state(values);
            }
            None => return None,
        }
        self.sensor.fill(self.plant.state());
        self.report.resets += 1;
        event
    }

    /// One firmware tick at `now_us` on what the sensors read now; returns the actuation.
    pub fn tick(&mut self, now_us: u64) -> ActionVector {
        let failed = self
            .options
            .sensor_failure
            .is_some_and(|w| w.contains(now_us));
        if failed != self.sensor_failed {
            self.sensor_failed = failed;
            let edge = if failed {
                "sensor_fail_start"
            } else {
                "sensor_fail_end"
            };
            self.trace.inject(now_us, edge);
        }
        let reading = if failed {
            self.sensor.read_failed()
        } else {
            self.sensor.read(&mut self.rng)
        };
        let faults = self.plant.fault_flags();
        self.report.sim_time_us = now_us;
        let action = self
            .firmware
            .tick(now_us, reading, faults, &mut self.outbox);
        self.trace.tick(
            now_us,
            self.firmware.arm_state(),
            self.firmware.last_command_seq(),
            self.firmware.fault_flags(),
            action.as_slice(),
        );
        action
    }

    /// Forwards an operator's input to the host (a Teleop frame in the outbox).
    pub fn forward_teleop(&mut self, now_us: u64, input: handful_protocol::Teleop) {
        self.firmware
            .forward_teleop(now_us, input, &mut self.outbox);
    }

    /// Advances the plant one control period applying `action`.
    pub fn step(&mut self, action: &ActionVector) {
        for (slot, &value) in self.action.iter_mut().zip(action.as_slice()) {
            *slot = f64::from(value);
        }
        self.step_held();
    }

    /// Advances the plant one control period with the action it had (a stalled
    /// firmware holds its outputs); `now_us` stamps the trace.
    pub fn step_stalled(&mut self, now_us: u64) {
        self.trace.held(now_us, &self.action);
        self.step_held();
    }

    fn step_held(&mut self) {
        self.plant.step(&self.action);
        self.sensor.record(self.plant.state());
        self.report.steps += 1;
    }

    /// Encodes and transmits every queued frame at firmware time `now_us` (lost when
    /// disconnected), through the fault windows' gate.
    pub fn publish(&mut self, now_us: u64) -> Result<(), SimError> {
        self.update_gate(now_us)?;
        while let Some(frame) = self.outbox.pop_front() {
            let port = self.port.as_ref();
            let fate = self
                .tx
                .send(&frame, port, self.gate, &mut self.rng, &mut self.report)?;
            self.trace.tx(now_us, &frame, fate);
        }
        Ok(())
    }

    /// Opens and closes the fault windows of the transmit path (latency spikes, mute)
    /// at `now_us`, and stops the firmware's heartbeats when due; the frames a spike held
    /// go out when it ends.
    pub fn update_gate(&mut self, now_us: u64) -> Result<(), SimError> {
        let options = &self.options;
        if !self.heartbeats_stopped && options.heartbeat_stop_us.is_some_and(|at| now_us >= at) {
            self.heartbeats_stopped = true;
            self.firmware.stop_heartbeats();
            self.trace.inject(now_us, "heartbeats_stop");
        }
        let gate = Gate {
            mute: options.mute.is_some_and(|w| w.contains(now_us)),
            hold: options.latency_spikes.is_some_and(|s| s.contains(now_us)),
        };
        let was = std::mem::replace(&mut self.gate, gate);
        for (before, after, on, off) in [
            (was.mute, gate.mute, "mute_start", "mute_end"),
            (was.hold, gate.hold, "spike_start", "spike_end"),
        ] {
            if !before && after {
                self.trace.inject(now_us, on);
            } else if before && !after {
                self.trace.inject(now_us, off);
            }
        }
        if gate.hold && !was.hold {
            self.report.latency_spikes += 1;
        }
        if was.hold
            && !gate.hold
            && let Some(port) = &self.port
        {
            self.tx.flush(port)?;
        }
        Ok(())
    }

    /// Pulls the cable at `now_us`: closes the pty and removes the link.
    pub fn disconnect(&mut self, now_us: u64) {
        self.trace.inject(now_us, "disconnect");
        self.link.remove();
        self.port = None;
        self.tx.clear();
        self.decoder = Decoder::new();
        self.report.disconnects += 1;
        tracing::info!(link = %self.link.path().display(), "sim: disconnected");
    }

    /// Plugs the cable back in at `now_us`: a new pty, and the link pointed at it.
    pub fn reconnect(&mut self, now_us: u64) -> Result<(), SimError> {
        self.trace.inject(now_us, "reconnect");
        let port = Pty::open()?;
        self.link.point_to(port.slave_path())?;
        tracing::info!(pty = %port.slave_path().display(), "sim: reconnected");
        self.port = Some(port);
        self.report.reconnects += 1;
        Ok(())
    }

    /// The counters, with the firmware's outbox losses; removes the link.
    pub fn finish(mut self) -> SimReport {
        self.trace.flush();
        self.link.remove();
        self.report.frames_lost_outbox = self.firmware.dropped_frames();
        self.report
    }
}

/// The plant's check of a `ResetTo` the firmware accepted (one finite value per state
/// channel): a state at which the plant would report `FAULT_LIMIT` (the cart-pole's cart
/// at or beyond a rail stop) is refused as a whole (`Some(0xff)`), and so is one the
/// plant does not take exactly. The plant is left as it was either way.
fn plant_refuses(plant: &mut dyn Plant, values: &[f32]) -> Option<u8> {
    let mut before = [0f64; MAX_STATE_DIM];
    let dim = plant.state().len().min(MAX_STATE_DIM);
    before[..dim].copy_from_slice(&plant.state()[..dim]);
    let mut wanted = [0f64; MAX_STATE_DIM];
    let wanted = &mut wanted[..values.len().min(MAX_STATE_DIM)];
    for (slot, &value) in wanted.iter_mut().zip(values) {
        *slot = f64::from(value);
    }
    plant.set_state(wanted);
    let refused = plant.fault_flags() & FAULT_LIMIT != 0 || plant.state() != &wanted[..];
    plant.set_state(&before[..dim]);
    refused.then_some(0xff)
}
