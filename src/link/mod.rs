//! The serial link to the robot: the only module that touches serial ports and bytes.
//!
//! [`Link::open`] opens the port, performs the handshake of `firmware-bridge/README.md`
//! (section 7), refuses a robot that differs from the calibration, then runs two named
//! threads: `handful-link-rx` (decode, convert to SI, publish, reconnect) and
//! `handful-link-tx` (every write: commands, requests, host heartbeats).
//!
//! The control thread talks to the link only through `&Link` methods that never block
//! and never allocate after `open`: latest-value slots in ([`Link::latest_state`]),
//! `try_send` on bounded channels out ([`Link::send_command`]), atomics for
//! [`Link::stats`] and [`Link::health`]. Raw firmware values become SI here and nowhere
//! else. Dropping the `Link` stops and joins both threads within a read timeout.

mod error;
mod handshake;
mod port;
mod robot;
mod rx;
mod sample;
mod stats;
mod tx;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, TrySendError, bounded};
use handful_protocol::{ActionVector, Command, MAX_STATE_DIM, StateVector};
use serialport::SerialPort;

pub use error::LinkError;
pub use handshake::HandshakeProgress;
pub use robot::{ChannelDesc, RobotInfo};
pub use sample::{FaultEvent, Request, SendError, StateSample, TeleopSample};
pub use stats::{DecodeErrorCounts, FaultRecord, Health, LinkStats};
pub use validate::{LimitField, Mismatch, Mismatches};

use crate::calib::Calibration;
use crate::clock::Clock;
use crate::thread::{JoinOnDrop, spawn_named};
use handshake::{attempt_timeout_us, handshake};
use port::{WRITE_TIMEOUT, open_port};
use rx::RxThread;
use sample::Shared;
use tx::{Outgoing, TxThread};

/// Commands queued for the tx thread; the control loop sends one per tick.
const COMMAND_QUEUE: usize = 16;
/// Session requests queued for the tx thread (served before commands).
const REQUEST_QUEUE: usize = 8;
/// Fault events kept for the consumer of [`Link::fault_events`].
const FAULT_QUEUE: usize = 64;

/// An open, validated link. See the module docs for the threads and the contract.
pub struct Link {
    shared: Arc<Shared>,
    robot: RobotInfo,
    path: PathBuf,
    clock: Clock,
    /// Real time for [`Link::wait_for_state_after`] (the host clock may be simulated).
    wall: Clock,
    link_timeout_us: u64,
    action_dim: usize,
    /// The calibration's `(scale, offset)` per state channel, to send a ResetTo's SI
    /// values in the channels' units (`raw = (si − offset) / scale`).
    state_scaling: [(f32, f32); MAX_STATE_DIM],
    state_dim: usize,
    next_command_seq: AtomicU32,
    /// `None` only while dropping: closing them tells the tx thread to exit.
    commands: Option<Sender<Command>>,
    requests: Option<Sender<Outgoing>>,
    faults: Receiver<FaultEvent>,
    rx_thread: Option<JoinOnDrop<()>>,
    tx_thread: Option<JoinOnDrop<()>>,
}

impl Link {
    /// Opens `path`, performs the handshake and validates the robot against `calib`,
    /// then starts the rx and tx threads. Blocks for at most a few Hello attempts
    /// (bounded by the calibration's baud rate and channel count).
    pub fn open(calib: &Calibration, path: &Path, clock: Clock) -> Result<Link, LinkError> {
        let shared = Arc::new(Shared::new());
        let wall = Clock::real();
        let mut port = open_port(path, calib.baud)?;
        let attempt_us = attempt_timeout_us(calib.baud, calib.state_dim() + calib.action_dim());
        let hs = handshake(&mut port, path, &shared, &clock, &wall, attempt_us)?;
        let mismatches = validate::validate(calib, &hs.info);
        if !mismatches.is_empty() {
            return Err(LinkError::Mismatch {
                path: path.to_owned(),
                calib: calib.path.clone(),
                mismatches: Mismatches(mismatches),
            });
        }
        let open_err = |source| LinkError::Open {
            path: path.to_owned(),
            source,
        };
        let mut tx_port = port.try_clone_native().map_err(open_err)?;
        tx_port.set_timeout(WRITE_TIMEOUT).map_err(open_err)?;
        shared.counters.connected.store(true, Ordering::Release);

        let (command_tx, command_rx) = bounded(COMMAND_QUEUE);
        let (request_tx, request_rx) = bounded(REQUEST_QUEUE);
        let (fault_tx, fault_rx) = bounded(FAULT_QUEUE);
        let (port_tx, port_rx) = bounded(4);
        let tx = TxThread {
            shared: Arc::clone(&shared),
            clock: clock.clone(),
            wall: wall.clone(),
            heartbeat_interval_us: calib.heartbeat_interval_us,
            port: Some(tx_port),
            generation: 1,
            ports: port_rx,
            requests: request_rx,
            commands: command_rx,
        };
        let rx = RxThread {
            shared: Arc::clone(&shared),
            clock: clock.clone(),
            wall: wall.clone(),
            calib: calib.clone(),
            path: path.to_owned(),
            port: Some(port),
            generation: 1,
            ports: port_tx,
            faults: fault_tx,
            decoder: hs.decoder,
            last_seq: Some(hs.last_seq),
            state_count: 0,
        };
        let tx_thread =
            spawn_named("handful-link-tx", move || tx.run()).map_err(LinkError::Spawn)?;
        let leftover = hs.leftover;
        let rx_thread = match spawn_named("handful-link-rx", move || rx.run(leftover)) {
            Ok(thread) => thread,
            Err(e) => {
                shared.stop.store(true, Ordering::Release);
                drop((command_tx, request_tx));
                drop(tx_thread);
                return Err(LinkError::Spawn(e));
            }
        };
        tracing::info!(path = %path.display(), robot = %hs.info.robot_id, "link open");
        let mut state_scaling = [(1.0, 0.0); MAX_STATE_DIM];
        for (slot, channel) in state_scaling.iter_mut().zip(&calib.states) {
            *slot = (channel.scale, channel.offset);
        }
        Ok(Link {
            shared,
            robot: hs.info,
            path: path.to_owned(),
            clock,
            wall,
            link_timeout_us: calib.link_timeout_us,
            action_dim: calib.action_dim(),
            state_scaling,
            state_dim: calib.state_dim().min(MAX_STATE_DIM),
            next_command_seq: AtomicU32::new(1),
            commands: Some(command_tx),
            requests: Some(request_tx),
            faults: fault_rx,
            rx_thread: Some(rx_thread),
            tx_thread: Some(tx_thread),
        })
    }

    /// The robot's announcement from the opening handshake.
    pub fn robot(&self) -> &RobotInfo {
        &self.robot
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The latest State, in SI units, or `None` before the first.
    ///
    /// Real-time contract: wait-free for practical purposes (an optimistic sequence-lock
    /// read, retried only if the rx thread's ~170-byte store overlaps), no allocation.
    pub fn latest_state(&self) -> Option<StateSample> {
        self.shared.state.load()
    }

    /// The latest Teleop frame, or `None` if none arrived. Same contract as `latest_state`.
    pub fn latest_teleop(&self) -> Option<TeleopSample> {
        self.shared.teleop.load()
    }

    /// Queues a command (one value per action channel, in each channel's own unit, sent
    /// as given: actions are never converted, README section 4; the firmware clamps them
    /// to its limits) that the firmware must not apply after firmware time
    /// `valid_until_us`; returns its command seq (increasing; a refused call may leave a
    /// gap).
    ///
    /// Real-time contract: never blocks, never allocates (`try_send` on a bounded array
    /// channel). A full queue drops the command and counts it in `tx_full_drops`.
    pub fn send_command(&self, values: &[f32], valid_until_us: u64) -> Result<u32, SendError> {
        if values.len() != self.action_dim {
            return Err(SendError::Dimension {
                expected: self.action_dim,
                found: values.len(),
            });
        }
        if !self.shared.counters.is_connected() {
            return Err(SendError::Disconnected);
        }
        let Some(vector) = ActionVector::from_slice(values) else {
            return Err(SendError::Dimension {
                expected: self.action_dim,
                found: values.len(),
            });
        };
        let commands = self.commands.as_ref().ok_or(SendError::Disconnected)?;
        let seq = self.next_command_seq.fetch_add(1, Ordering::Relaxed);
        match commands.try_send(Command {
            seq,
            valid_until_us,
            values: vector,
        }) {
            Ok(()) => Ok(seq),
            Err(TrySendError::Full(_)) => {
                stats::Counters::count(&self.shared.counters.tx_full_drops);
                Err(SendError::Full)
            }
            Err(TrySendError::Disconnected(_)) => Err(SendError::Disconnected),
        }
    }

    /// Queues a session request; served before any queued command.
    ///
    /// Real-time contract: never blocks, never allocates. `Reset` on a robot without
    /// `CAP_RESET` is refused here with [`SendError::Unsupported`].
    pub fn send(&self, request: Request) -> Result<(), SendError> {
        if matches!(request, Request::Reset { .. }) && !self.robot.has_reset() {
            return Err(SendError::Unsupported);
        }
        if !self.shared.counters.is_connected() {
            return Err(SendError::Disconnected);
        }
        self.queue(Outgoing::Request(request))
    }

    /// Queues a ResetTo: the robot disarms and its plant is set to exactly `state` (SI
    /// values, one per state channel in the calibration's order, sent in the channels'
    /// units as `(si − offset) / scale`: exact for the shipped calibrations' scale 1 and
    /// offset 0, within f32 rounding otherwise). What answers it is the robot's, as for a
    /// Reset (README sections 8 and 10); the firmware may still refuse a state out of
    /// its range (`Fault{BadResetState}`).
    ///
    /// Refused here, and never sent, on a robot that does not announce `CAP_RESET_TO`
    /// ([`SendError::NoResetTo`]), with the wrong number of values
    /// ([`SendError::StateDimension`]) or a value that is not finite in SI or in its
    /// channel's unit ([`SendError::NotFinite`]).
    ///
    /// Real-time contract: never blocks, never allocates.
    pub fn reset_to(&self, state: &[f32]) -> Result<(), SendError> {
        if !self.robot.has_reset_to() {
            return Err(SendError::NoResetTo);
        }
        if state.len() != self.state_dim {
            return Err(SendError::StateDimension {
                expected: self.state_dim,
                found: state.len(),
            });
        }
        let mut raw = [0f32; MAX_STATE_DIM];
        for (index, ((slot, &si), &(scale, offset))) in raw
            .iter_mut()
            .zip(state)
            .zip(&self.state_scaling)
            .enumerate()
        {
            *slot = (si - offset) / scale;
            if !(si.is_finite() && slot.is_finite()) {
                return Err(SendError::NotFinite { index });
            }
        }
        let values =
            StateVector::from_slice(&raw[..self.state_dim]).ok_or(SendError::StateDimension {
                expected: self.state_dim,
                found: state.len(),
            })?;
        if !self.shared.counters.is_connected() {
            return Err(SendError::Disconnected);
        }
        self.queue(Outgoing::ResetTo(values))
    }

    fn queue(&self, outgoing: Outgoing) -> Result<(), SendError> {
        let requests = self.requests.as_ref().ok_or(SendError::Disconnected)?;
        requests.try_send(outgoing).map_err(|e| match e {
            TrySendError::Full(_) => SendError::Full,
            TrySendError::Disconnected(_) => SendError::Disconnected,
        })
    }

    /// Firmware Fault events, oldest first (bounded; overflow counted in
    /// `fault_events_dropped`). `try_recv` on it never blocks.
    pub fn fault_events(&self) -> &Receiver<FaultEvent> {
        &self.faults
    }

    /// A snapshot of the counters. Real-time contract: relaxed atomic loads only.
    pub fn stats(&self) -> LinkStats {
        self.shared.counters.snapshot()
    }

    /// Liveness at host time `now_us` (the link's clock). Atomic loads only.
    pub fn health(&self, now_us: u64) -> Health {
        self.shared.counters.health(now_us, self.link_timeout_us)
    }

    /// The link's host clock (receive stamps come from it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Blocks until a State with `count` greater than `count` is available, or `timeout`
    /// of real time passes (`None`). For lockstep mode only: it blocks on a condition
    /// variable, never spins, and is not for a free-running control tick.
    pub fn wait_for_state_after(&self, count: u64, timeout: Duration) -> Option<StateSample> {
        let newer = || self.shared.state.load().filter(|s| s.count > count);
        if let Some(state) = newer() {
            return Some(state);
        }
        let deadline_us = self
            .wall
            .now_us()
            .saturating_add(timeout.as_micros() as u64);
        let mut guard = self
            .shared
            .state_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(state) = newer() {
                return Some(state);
            }
            let now_us = self.wall.now_us();
            if now_us >= deadline_us {
                return None;
            }
            let wait = Duration::from_micros(deadline_us - now_us);
            guard = match self.shared.state_arrived.wait_timeout(guard, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.commands = None;
        self.requests = None;
        drop(self.tx_thread.take());
        drop(self.rx_thread.take());
    }
}
