//! Opening the port and the session handshake (README section 7): send `Hello{1, 1}`
//! (after a `0x00` that flushes whatever the firmware's decoder holds), collect
//! `Capabilities` and every `ChannelInfo` within a bounded time, resend Hello a few
//! times if the answer does not come.
//!
//! Runs on the thread calling `Link::open`, or on the rx thread while reconnecting; the
//! tx thread holds no port then, so "one writer per port" still holds. Allocates freely
//! (it builds a [`RobotInfo`]); never on the control thread.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use handful_protocol::{
    Capabilities, ChannelInfo, ChannelKind, Decoder, FaultCode, Hello, MAX_ACTION_DIM,
    MAX_STATE_DIM, Message,
};
use serialport::TTYPort;

use super::LinkError;
use super::port::{is_timeout, write_frame};
use super::robot::{ChannelDesc, RobotInfo};
use super::sample::Shared;
use crate::clock::Clock;

/// Hello is sent this many times before the handshake gives up.
pub(crate) const HELLO_ATTEMPTS: u32 = 4;

/// What a handshake leaves for the rx loop: the announcement, the decoder mid-stream,
/// the last frame seq seen, and bytes read after the last ChannelInfo.
pub(crate) struct Handshake {
    pub info: RobotInfo,
    pub decoder: Decoder,
    /// The firmware frame seq of the last frame of the answer.
    pub last_seq: u32,
    pub leftover: Vec<u8>,
}

/// How far a handshake got before it timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeProgress {
    pub capabilities: bool,
    pub channels_received: usize,
    pub channels_expected: usize,
}

impl std::fmt::Display for HandshakeProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.capabilities {
            write!(
                f,
                "got Capabilities and {} of {} ChannelInfo",
                self.channels_received, self.channels_expected
            )
        } else {
            f.write_str("no Capabilities received")
        }
    }
}

/// Time allowed for one Hello's answer: 250 ms plus twice the time the answer takes on
/// the wire at `baud` (about 70 bytes, 10 bits each, per frame).
pub(crate) fn attempt_timeout_us(baud: u32, channels: usize) -> u64 {
    let bits = (1 + channels as u64) * 70 * 10;
    250_000 + 2 * bits * 1_000_000 / u64::from(baud.max(1))
}

/// Partial answer being collected.
struct Answer {
    capabilities: Option<Capabilities>,
    states: [Option<ChannelInfo>; MAX_STATE_DIM],
    actions: [Option<ChannelInfo>; MAX_ACTION_DIM],
}

impl Answer {
    fn new() -> Self {
        Self {
            capabilities: None,
            states: [None; MAX_STATE_DIM],
            actions: [None; MAX_ACTION_DIM],
        }
    }

    fn progress(&self) -> HandshakeProgress {
        let (s, a) = self.dims();
        let received = self.states[..s]
            .iter()
            .chain(&self.actions[..a])
            .flatten()
            .count();
        HandshakeProgress {
            capabilities: self.capabilities.is_some(),
            channels_received: received,
            channels_expected: s + a,
        }
    }

    fn dims(&self) -> (usize, usize) {
        self.capabilities.map_or((0, 0), |c| {
            (
                usize::from(c.state_dim).min(MAX_STATE_DIM),
                usize::from(c.action_dim).min(MAX_ACTION_DIM),
            )
        })
    }

    fn complete(&self) -> Option<RobotInfo> {
        let progress = self.progress();
        if progress.channels_received < progress.channels_expected {
            return None;
        }
        let caps = self.capabilities?;
        let (s, a) = self.dims();
        let desc = |c: &Option<ChannelInfo>| {
            c.map(|c| ChannelDesc {
                name: c.name.as_str().to_owned(),
                unit: c.unit.as_str().to_owned(),
                min: c.min,
                max: c.max,
                safe: c.safe,
            })
        };
        Some(RobotInfo {
            protocol: caps.protocol,
            robot_id: caps.robot_id.as_str().to_owned(),
            firmware_version: caps.firmware_version,
            control_period_us: caps.control_period_us,
            watchdog_timeout_us: caps.watchdog_timeout_us,
            heartbeat_interval_us: caps.heartbeat_interval_us,
            capabilities: caps.capabilities,
            states: self.states[..s].iter().map(desc).collect::<Option<_>>()?,
            actions: self.actions[..a].iter().map(desc).collect::<Option<_>>()?,
        })
    }

    fn channel(&mut self, info: ChannelInfo) {
        let (s, a) = self.dims();
        let index = usize::from(info.index);
        let slot = match info.kind {
            ChannelKind::State if index < s => &mut self.states[index],
            ChannelKind::Action if index < a => &mut self.actions[index],
            _ => return, // outside the announced dims: ignored, the answer stays incomplete
        };
        *slot = Some(info);
    }
}

/// Performs the handshake on `port`, counting what it receives in `shared`.
pub(crate) fn handshake(
    port: &mut TTYPort,
    path: &Path,
    shared: &Shared,
    clock: &Clock,
    wall: &Clock,
    attempt_us: u64,
) -> Result<Handshake, LinkError> {
    let io = |source| LinkError::Io {
        path: PathBuf::from(path),
        source,
    };
    let counters = &shared.counters;
    let mut decoder = Decoder::new();
    let mut answer = Answer::new();
    let mut buf = [0u8; 256];
    for _ in 0..HELLO_ATTEMPTS {
        port.write_all(&[0]).map_err(io)?;
        let hello = Message::Hello(Hello {
            protocol_min: 1,
            protocol_max: 1,
        });
        write_frame(port, shared, clock, hello).map_err(io)?;
        let deadline_us = wall.now_us().saturating_add(attempt_us);
        while wall.now_us() < deadline_us {
            if shared.stop.load(Ordering::Relaxed) {
                return Err(LinkError::Stopped);
            }
            let n = match port.read(&mut buf) {
                Ok(0) => return Err(io(ErrorKind::UnexpectedEof.into())),
                Ok(n) => n,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => return Err(io(e)),
            };
            counters.add_bytes(n);
            for (i, &byte) in buf[..n].iter().enumerate() {
                let frame = match decoder.push(byte) {
                    None => continue,
                    Some(Err(e)) => {
                        counters.decode_error(e);
                        continue;
                    }
                    Some(Ok(frame)) => frame,
                };
                let now_us = clock.now_us();
                counters.frame(now_us);
                match frame.message {
                    Message::Capabilities(caps) => {
                        answer = Answer::new();
                        answer.capabilities = Some(caps);
                    }
                    Message::ChannelInfo(info) => answer.channel(info),
                    Message::Heartbeat(_) => {
                        counters.last_heartbeat_us.store(now_us, Ordering::Relaxed)
                    }
                    Message::Fault(f) if f.code == FaultCode::VersionMismatch => {
                        return Err(LinkError::VersionMismatch {
                            path: path.to_owned(),
                            firmware_version: f.detail,
                        });
                    }
                    _ => {}
                }
                if let Some(info) = answer.complete() {
                    let leftover = buf[i + 1..n].to_vec();
                    return Ok(Handshake {
                        info,
                        decoder,
                        last_seq: frame.seq,
                        leftover,
                    });
                }
            }
        }
    }
    Err(LinkError::HandshakeTimeout {
        path: path.to_owned(),
        attempts: HELLO_ATTEMPTS,
        progress: answer.progress(),
    })
}
