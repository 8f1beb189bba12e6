//! The `handful-link-tx` thread: the only writer of the port while the link is up.
//!
//! It waits on three bounded channels, in priority order — port changes from the rx
//! thread, session requests (Arm, Disarm, EStop, Reset), commands — and sends a host
//! Heartbeat every `heartbeat_interval_us` of real time (absolute deadlines; a late
//! heartbeat skips ahead, never bursts). It never reopens the port: a failed write only
//! reports the port's generation in `Shared::failed_port`, and the rx thread, which owns reconnection, hands a new port
//! over with [`PortChange::New`].

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam::channel::{Receiver, select_biased};
use handful_protocol::{
    ArmState, Command, Frame, Heartbeat, MAX_ENCODED_LEN, Message, Reset, encode,
};
use serialport::TTYPort;

use super::handshake::is_timeout;
use super::sample::{Request, Shared};
use super::stats::Counters;
use crate::clock::Clock;

/// Write timeout of the tx port. A write that cannot finish in this time is dropped
/// (counted in `tx_timeouts`); the firmware resynchronises at the next `0x00`.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Port hand-over from the rx thread.
pub(crate) enum PortChange {
    /// A port and its generation (1 for the port of `Link::open`, +1 per reconnection).
    New(TTYPort, u64),
    Lost,
}

/// Encodes `message` with the next host frame seq and the host time, and writes it.
///
/// Allocation-free; blocks at most the port's timeout.
pub(crate) fn write_frame(
    port: &mut TTYPort,
    shared: &Shared,
    clock: &Clock,
    message: Message,
) -> std::io::Result<()> {
    let frame = Frame {
        seq: shared.tx_seq.fetch_add(1, Ordering::Relaxed),
        timestamp_us: clock.now_us(),
        message,
    };
    let mut wire = [0u8; MAX_ENCODED_LEN];
    // Cannot fail: `wire` holds any encoded frame.
    let n = encode(&frame, &mut wire).map_err(std::io::Error::other)?;
    port.write_all(&wire[..n])?;
    Counters::count(&shared.counters.frames_sent);
    Ok(())
}

fn request_message(request: Request) -> Message {
    match request {
        Request::Arm => Message::Arm,
        Request::Disarm => Message::Disarm,
        Request::EStop => Message::EStop,
        Request::Reset { seed } => Message::Reset(Reset { seed }),
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
    pub requests: Receiver<Request>,
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
