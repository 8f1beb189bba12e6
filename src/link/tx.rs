//! The `handful-link-tx` thread: the only writer of the port while the link is up.
//!
//! It waits on three bounded channels, in priority order — port changes from the rx
//! thread, session requests (Arm, Disarm, EStop, Reset, ResetTo), commands — and sends a host
//! Heartbeat every `heartbeat_interval_us` of real time (absolute deadlines; a late
//! heartbeat skips ahead, never bursts). It never reopens the port: a failed write only
//! reports the port's generation in `Shared::failed_port`, and the rx thread, which owns reconnection, hands a new port
//! over with [`PortChange::New`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam::channel::{Receiver, select_biased};
use handful_protocol::{ArmState, Command, Heartbeat, Message, Reset, ResetTo, StateVector};
use serialport::TTYPort;

use super::port::{PortChange, is_timeout, write_frame};
use super::sample::{Request, Shared};
use super::stats::Counters;
use crate::clock::Clock;

/// What the request queue carries: a [`Request`], or a ResetTo whose values are already
/// in the channels' units (checked by `Link::reset_to`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outgoing {
    Request(Request),
    ResetTo(StateVector),
}

fn request_message(request: Outgoing) -> Message {
    match request {
        Outgoing::Request(Request::Arm) => Message::Arm,
        Outgoing::Request(Request::Disarm) => Message::Disarm,
        Outgoing::Request(Request::EStop) => Message::EStop,
        Outgoing::Request(Request::Reset { seed }) => Message::Reset(Reset { seed }),
        Outgoing::ResetTo(values) => Message::ResetTo(ResetTo { values }),
    }
}

pub(crate) struct TxThread {
    pub shared: Arc<Shared>,
    pub clock: Clock,
    /// Real time for the heartbeat schedule (the host clock may be simulated).
    pub wall: Clock,
    pub heartbeat_interval_us: u64,
    pub port: Option<TTYPort>,
    /// Generation of `port`.
    pub generation: u64,
    pub ports: Receiver<PortChange>,
    pub requests: Receiver<Outgoing>,
    pub commands: Receiver<Command>,
}

impl TxThread {
    /// Runs until `Link` drops its senders (or the rx thread exits).
    pub fn run(mut self) {
        let interval_us = self.heartbeat_interval_us.max(1);
        let mut next_heartbeat_us = self.wall.now_us();
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let now_us = self.wall.now_us();
            if now_us >= next_heartbeat_us {
                let heartbeat = Heartbeat {
                    arm_state: ArmState::Disarmed,
                    fault_flags: 0,
                };
                self.write(Message::Heartbeat(heartbeat));
                next_heartbeat_us += interval_us;
                if next_heartbeat_us <= now_us {
                    next_heartbeat_us = now_us + interval_us;
                }
            }
            let wait = Duration::from_micros(next_heartbeat_us.saturating_sub(self.wall.now_us()));
            select_biased! {
                recv(self.ports) -> change => match change {
                    Ok(PortChange::New(port, generation)) => {
                        self.port = Some(port);
                        self.generation = generation;
                    }
                    Ok(PortChange::Lost) => self.lose_port(),
                    Err(_) => return,
                },
                recv(self.requests) -> request => match request {
                    Ok(request) => {
                        self.write(request_message(request));
                    }
                    Err(_) => return,
                },
                recv(self.commands) -> command => match command {
                    Ok(command) => {
                        if self.write(Message::Command(command)) {
                            Counters::count(&self.shared.counters.commands_sent);
                        }
                    }
                    Err(_) => return,
                },
                default(wait) => {}
            }
        }
    }

    /// Drops the port and the commands queued for it (their deadlines will have passed
    /// by the time a new port arrives).
    fn lose_port(&mut self) {
        self.port = None;
        while self.commands.try_recv().is_ok() {}
    }

    /// Writes one frame if a port is held; true if it was written.
    fn write(&mut self, message: Message) -> bool {
        let Some(port) = self.port.as_mut() else {
            return false;
        };
        match write_frame(port, &self.shared, &self.clock, message) {
            Ok(()) => true,
            Err(e) if is_timeout(&e) => {
                Counters::count(&self.shared.counters.tx_timeouts);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "link write failed; waiting for the rx thread to reconnect");
                self.shared
                    .failed_port
                    .store(self.generation, Ordering::Release);
                self.lose_port();
                false
            }
        }
    }
}
