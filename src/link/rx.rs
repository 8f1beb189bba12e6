//! The `handful-link-rx` thread: reads bytes, decodes frames, converts States to SI and
//! publishes them in the latest-value slots; on a read failure marks the link
//! disconnected and reconnects (exponential back-off, handshake, same validation as
//! `Link::open`), handing the new port to the tx thread.
//!
//! It never writes the port except for the handshake while the tx thread holds no port,
//! never panics on any bytes, and allocates only while reconnecting.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam::channel::Sender;
use handful_protocol::{Decoder, Frame, MAX_STATE_DIM, MAX_TELEOP_AXES, Message};
use serialport::{SerialPort, TTYPort};

use super::LinkError;
use super::handshake::{Handshake, attempt_timeout_us, handshake};
use super::port::{PortChange, WRITE_TIMEOUT, is_timeout, open_port};
use super::sample::{FaultEvent, Shared, StateSample, TeleopSample};
use super::stats::Counters;
use super::validate::{Mismatches, validate};
use crate::calib::Calibration;
use crate::clock::Clock;

/// First reconnection back-off; doubles after each failure up to [`BACKOFF_MAX_US`].
const BACKOFF_MIN_US: u64 = 20_000;
const BACKOFF_MAX_US: u64 = 1_000_000;
/// Back-off sleeps are cut into slices this long so `Link::drop` is seen promptly.
const STOP_POLL_US: u64 = 5_000;

pub(crate) struct RxThread {
    pub shared: Arc<Shared>,
    pub clock: Clock,
    pub wall: Clock,
    pub calib: Calibration,
    pub path: PathBuf,
    pub port: Option<TTYPort>,
    /// Generation of `port`, shared with the tx thread through [`PortChange::New`].
    pub generation: u64,
    pub ports: Sender<PortChange>,
    pub faults: Sender<FaultEvent>,
    pub decoder: Decoder,
    pub last_seq: Option<u32>,
    pub state_count: u64,
}

impl RxThread {
    /// Reads until `Link::drop` raises the stop flag. `leftover` are bytes the opening
    /// handshake read past its last frame.
    pub fn run(mut self, leftover: Vec<u8>) {
        self.push(&leftover);
        let mut buf = [0u8; 512];
        while !self.shared.stop.load(Ordering::Relaxed) {
            let Some(port) = self.port.as_mut() else {
                self.reconnect();
                continue;
            };
            let lost = match std::io::Read::read(port, &mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    self.push(&buf[..n]);
                    false
                }
                Err(e) if is_timeout(&e) => false,
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.path.display(), "link read failed");
                    true
                }
            };
            if lost || self.shared.failed_port.load(Ordering::Acquire) == self.generation {
                self.lose_port();
            }
        }
    }

    fn lose_port(&mut self) {
        self.shared
            .counters
            .connected
            .store(false, Ordering::Release);
        self.port = None;
        // The tx thread drains this channel promptly; if it is gone there is no one to tell.
        let _ = self
            .ports
            .send_timeout(PortChange::Lost, Duration::from_secs(1));
    }

    /// Retries until reconnected or stopped.
    fn reconnect(&mut self) {
        let mut backoff_us = BACKOFF_MIN_US;
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.try_reconnect() {
                Ok(()) => return,
                Err(LinkError::Stopped) => return,
                Err(e) => {
                    Counters::count(&self.shared.counters.reconnect_failures);
                    tracing::debug!(error = %e, "link reconnection failed");
                }
            }
            let until_us = self.wall.now_us() + backoff_us;
            while !self.shared.stop.load(Ordering::Relaxed) && self.wall.now_us() < until_us {
                self.wall
                    .sleep_us(STOP_POLL_US.min(until_us.saturating_sub(self.wall.now_us())));
            }
            backoff_us = (backoff_us * 2).min(BACKOFF_MAX_US);
        }
    }

    fn try_reconnect(&mut self) -> Result<(), LinkError> {
        let calib = &self.calib;
        let mut port = open_port(&self.path, calib.baud)?;
        let channels = calib.state_dim() + calib.action_dim();
        let attempt_us = attempt_timeout_us(calib.baud, channels);
        let Handshake {
            info,
            decoder,
            last_seq,
            leftover,
        } = handshake(
            &mut port,
            &self.path,
            &self.shared,
            &self.clock,
            &self.wall,
            attempt_us,
        )?;
        let mismatches = validate(calib, &info);
        if !mismatches.is_empty() {
            return Err(LinkError::Mismatch {
                path: self.path.clone(),
                calib: calib.path.clone(),
                mismatches: Mismatches(mismatches),
            });
        }
        let io = |source| LinkError::Open {
            path: self.path.clone(),
            source,
        };
        let mut tx_port = port.try_clone_native().map_err(io)?;
        tx_port.set_timeout(WRITE_TIMEOUT).map_err(io)?;
        let generation = self.generation + 1;
        if self
            .ports
            .send(PortChange::New(tx_port, generation))
            .is_err()
        {
            return Err(LinkError::Stopped); // the tx thread is gone: Link is dropping
        }
        self.port = Some(port);
        self.generation = generation;
        self.decoder = decoder;
        self.last_seq = Some(last_seq);
        let counters = &self.shared.counters;
        Counters::count(&counters.reconnects);
        counters.connected.store(true, Ordering::Release);
        tracing::info!(path = %self.path.display(), robot = %info.robot_id, "link reconnected");
        self.push(&leftover);
        Ok(())
    }

    /// Feeds received bytes to the decoder. Allocation-free.
    fn push(&mut self, bytes: &[u8]) {
        self.shared.counters.add_bytes(bytes.len());
        for &byte in bytes {
            match self.decoder.push(byte) {
                None => {}
                Some(Ok(frame)) => self.on_frame(frame),
                Some(Err(e)) => self.shared.counters.decode_error(e),
            }
        }
    }

    /// Counts a gap (dropped frames) or a step back (out of order) in the firmware seq.
    fn track_seq(&mut self, seq: u32) {
        let counters = &self.shared.counters;
        if let Some(last) = self.last_seq {
            let delta = seq.wrapping_sub(last) as i32;
            if delta <= 0 {
                Counters::count(&counters.out_of_order_frames);
                return;
            }
            counters
                .dropped_frames
                .fetch_add(u64::from(delta.unsigned_abs() - 1), Ordering::Relaxed);
        }
        self.last_seq = Some(seq);
    }

    fn on_frame(&mut self, frame: Frame) {
        let now_us = self.clock.now_us();
        let counters = &self.shared.counters;
        counters.frame(now_us);
        self.track_seq(frame.seq);
        let counters = &self.shared.counters;
        match frame.message {
            Message::State(state) => {
                let raw = state.values.as_slice();
                let dim = raw.len().min(self.calib.states.len()).min(MAX_STATE_DIM);
                let mut values = [0.0; MAX_STATE_DIM];
                for ((si, &raw), channel) in
                    values.iter_mut().zip(&raw[..dim]).zip(&self.calib.states)
                {
                    *si = raw * channel.scale + channel.offset;
                }
                self.state_count += 1;
                self.shared.state.store(Some(StateSample {
                    host_time_us: now_us,
                    timestamp_us: frame.timestamp_us,
                    frame_seq: frame.seq,
                    count: self.state_count,
                    arm_state: state.arm_state,
                    fault_flags: state.fault_flags,
                    last_command_seq: state.last_command_seq,
                    values,
                    dim,
                }));
                Counters::count(&counters.states_received);
                counters.last_state_us.store(now_us, Ordering::Relaxed);
                // Taking the lock orders this store before any waiter's check-then-wait.
                drop(
                    self.shared
                        .state_lock
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                );
                self.shared.state_arrived.notify_all();
            }
            Message::Heartbeat(_) => counters.last_heartbeat_us.store(now_us, Ordering::Relaxed),
            Message::Teleop(teleop) => {
                let mut axes = [0.0; MAX_TELEOP_AXES];
                let n = teleop.axes.len().min(MAX_TELEOP_AXES);
                axes[..n].copy_from_slice(&teleop.axes.as_slice()[..n]);
                self.shared.teleop.store(Some(TeleopSample {
                    host_time_us: now_us,
                    timestamp_us: frame.timestamp_us,
                    buttons: teleop.buttons,
                    axes,
                    axis_count: n,
                }));
                Counters::count(&counters.teleop_received);
            }
            Message::Fault(fault) => {
                counters.fault(fault.code, fault.detail);
                let event = FaultEvent {
                    host_time_us: now_us,
                    timestamp_us: frame.timestamp_us,
                    code: fault.code,
                    detail: fault.detail,
                };
                if self.faults.try_send(event).is_err() {
                    Counters::count(&counters.fault_events_dropped);
                }
            }
            // Handshake answers to someone else's Hello, or host-to-firmware kinds.
            _ => Counters::count(&counters.unexpected_frames),
        }
    }
}
