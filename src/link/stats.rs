//! Link counters: atomics written by the rx/tx threads and by the control-thread API,
//! read as one `Copy` snapshot ([`LinkStats`]) and a liveness summary ([`Health`]).
//!
//! Every counter is a relaxed atomic: a snapshot is not a consistent cut across counters
//! (nothing needs one), but each value is exact. Never allocates, never blocks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use handful_protocol::{DecodeError, FaultCode};

/// "Never" for the time stamps below (a simulated clock may legitimately read 0 µs).
const NEVER: u64 = u64::MAX;

/// Decode errors other than CRC, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeErrorCounts {
    pub cobs: u64,
    pub overflow: u64,
    pub too_short: u64,
    pub unsupported_version: u64,
    pub unknown_kind: u64,
    pub length: u64,
    pub invalid_field: u64,
    /// Kinds added to the protocol crate after this module was written.
    pub other: u64,
}

impl DecodeErrorCounts {
    pub fn total(&self) -> u64 {
        self.cobs
            + self.overflow
            + self.too_short
            + self.unsupported_version
            + self.unknown_kind
            + self.length
            + self.invalid_field
            + self.other
    }
}

/// The last firmware `Fault` frame received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FaultRecord {
    #[serde(serialize_with = "debug_name")]
    pub code: FaultCode,
    pub detail: u32,
}

/// A snapshot of the link counters. Times are host-clock µs ([`crate::clock::Clock`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    pub connected: bool,
    /// Frames that decoded, of any kind (handshake answers included).
    pub frames_received: u64,
    pub bytes_received: u64,
    pub states_received: u64,
    pub crc_errors: u64,
    pub decode_errors: DecodeErrorCounts,
    /// Frames missing from the firmware's frame-seq sequence (gaps).
    pub dropped_frames: u64,
    /// Frames whose seq went backwards (counted, not applied to the gap count).
    pub out_of_order_frames: u64,
    /// Decoded frames of a host-to-firmware kind, or handshake answers outside one.
    pub unexpected_frames: u64,
    pub reconnects: u64,
    /// Reconnection attempts that failed (open, handshake or validation).
    pub reconnect_failures: u64,
    /// Commands refused by `send_command` because the tx queue was full.
    pub tx_full_drops: u64,
    pub commands_sent: u64,
    /// Frames of any kind written to the port.
    pub frames_sent: u64,
    /// Writes that timed out (frame lost; the firmware resynchronises at the next 0x00).
    pub tx_timeouts: u64,
    pub last_frame_us: Option<u64>,
    pub last_heartbeat_us: Option<u64>,
    pub last_state_us: Option<u64>,
    pub faults_received: u64,
    /// Of those, `EStop` reports: someone stopped the robot.
    pub estops_received: u64,
    pub last_fault: Option<FaultRecord>,
    /// Fault events not queued because the `fault_events()` channel was full.
    pub fault_events_dropped: u64,
    pub teleop_received: u64,
}

/// Link liveness at a given host time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// The port is open and the handshake done. False from the moment a read or write
    /// fails until a reconnection succeeds.
    pub connected: bool,
    /// Host µs since the latest State arrived (`None`: none yet).
    pub state_age_us: Option<u64>,
    /// Host µs since the latest firmware Heartbeat arrived.
    pub heartbeat_age_us: Option<u64>,
    /// Host µs since any frame arrived.
    pub frame_age_us: Option<u64>,
    /// Nothing has been received for more than the calibration's `link_timeout_us`
    /// (or ever). Independent of `connected`: a link can be open yet silent.
    pub is_lost: bool,
}

impl Health {
    /// Connected and not lost: commands can be expected to arrive.
    pub fn is_usable(&self) -> bool {
        self.connected && !self.is_lost
    }
}

/// The atomics behind [`LinkStats`].
#[derive(Debug)]
pub(crate) struct Counters {
    pub connected: AtomicBool,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub states_received: AtomicU64,
    pub crc_errors: AtomicU64,
    decode: [AtomicU64; 8],
    pub dropped_frames: AtomicU64,
    pub out_of_order_frames: AtomicU64,
    pub unexpected_frames: AtomicU64,
    pub reconnects: AtomicU64,
    pub reconnect_failures: AtomicU64,
    pub tx_full_drops: AtomicU64,
    pub commands_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub tx_timeouts: AtomicU64,
    pub last_frame_us: AtomicU64,
    pub last_heartbeat_us: AtomicU64,
    pub last_state_us: AtomicU64,
    pub faults_received: AtomicU64,
    pub estops_received: AtomicU64,
    /// `code << 32 | detail`; 0 = none (no fault code is 0).
    last_fault: AtomicU64,
    pub fault_events_dropped: AtomicU64,
    pub teleop_received: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn stamp(value: u64) -> Option<u64> {
    (value != NEVER).then_some(value)
}

impl Counters {
    pub fn new() -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            connected: AtomicBool::new(false),
            frames_received: zero(),
            bytes_received: zero(),
            states_received: zero(),
            crc_errors: zero(),
            decode: std::array::from_fn(|_| zero()),
            dropped_frames: zero(),
            out_of_order_frames: zero(),
            unexpected_frames: zero(),
            reconnects: zero(),
            reconnect_failures: zero(),
            tx_full_drops: zero(),
            commands_sent: zero(),
            frames_sent: zero(),
            tx_timeouts: zero(),
            last_frame_us: AtomicU64::new(NEVER),
            last_heartbeat_us: AtomicU64::new(NEVER),
            last_state_us: AtomicU64::new(NEVER),
            faults_received: zero(),
            estops_received: zero(),
            last_fault: zero(),
            fault_events_dropped: zero(),
            teleop_received: zero(),
        }
    }

    pub fn count(counter: &AtomicU64) {
        add(counter, 1);
    }

    pub fn add_bytes(&self, n: usize) {
        add(&self.bytes_received, n as u64);
    }

    /// Counts one rejected frame under its kind.
    pub fn decode_error(&self, error: DecodeError) {
        let slot = match error {
            DecodeError::Crc { .. } => return add(&self.crc_errors, 1),
            DecodeError::Cobs => 0,
            DecodeError::Overflow => 1,
            DecodeError::TooShort { .. } => 2,
            DecodeError::UnsupportedVersion(_) => 3,
            DecodeError::UnknownKind(_) => 4,
            DecodeError::Length { .. } => 5,
            DecodeError::InvalidField { .. } => 6,
            _ => 7,
        };
        add(&self.decode[slot], 1);
    }

    /// Counts one decoded frame received at host time `now_us`.
    pub fn frame(&self, now_us: u64) {
        add(&self.frames_received, 1);
        self.last_frame_us.store(now_us, Ordering::Relaxed);
    }

    pub fn fault(&self, code: FaultCode, detail: u32) {
        add(&self.faults_received, 1);
        if code == FaultCode::EStop {
            add(&self.estops_received, 1);
        }
        let packed = (u64::from(code as u16) << 32) | u64::from(detail);
        self.last_fault.store(packed, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> LinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let d = |i: usize| get(&self.decode[i]);
        let fault = get(&self.last_fault);
        LinkStats {
            connected: self.is_connected(),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            states_received: get(&self.states_received),
            crc_errors: get(&self.crc_errors),
            decode_errors: DecodeErrorCounts {
                cobs: d(0),
                overflow: d(1),
                too_short: d(2),
                unsupported_version: d(3),
                unknown_kind: d(4),
                length: d(5),
                invalid_field: d(6),
                other: d(7),
            },
            dropped_frames: get(&self.dropped_frames),
            out_of_order_frames: get(&self.out_of_order_frames),
            unexpected_frames: get(&self.unexpected_frames),
            reconnects: get(&self.reconnects),
            reconnect_failures: get(&self.reconnect_failures),
            tx_full_drops: get(&self.tx_full_drops),
            commands_sent: get(&self.commands_sent),
            frames_sent: get(&self.frames_sent),
            tx_timeouts: get(&self.tx_timeouts),
            last_frame_us: stamp(get(&self.last_frame_us)),
            last_heartbeat_us: stamp(get(&self.last_heartbeat_us)),
            last_state_us: stamp(get(&self.last_state_us)),
            faults_received: get(&self.faults_received),
            estops_received: get(&self.estops_received),
            last_fault: FaultCode::from_u16((fault >> 32) as u16).map(|code| FaultRecord {
                code,
                detail: fault as u32,
            }),
            fault_events_dropped: get(&self.fault_events_dropped),
            teleop_received: get(&self.teleop_received),
        }
    }

    /// Liveness at host time `now_us`, with `link_timeout_us` from the calibration.
    pub fn health(&self, now_us: u64, link_timeout_us: u64) -> Health {
        let age =
            |c: &AtomicU64| stamp(c.load(Ordering::Relaxed)).map(|t| now_us.saturating_sub(t));
        let frame_age_us = age(&self.last_frame_us);
        Health {
            connected: self.is_connected(),
            state_age_us: age(&self.last_state_us),
            heartbeat_age_us: age(&self.last_heartbeat_us),
            frame_age_us,
            is_lost: frame_age_us.is_none_or(|a| a > link_timeout_us),
        }
    }
}

/// Serialises a protocol enum (no serde in the `no_std` crate) by its Rust name.
fn debug_name<T: std::fmt::Debug, S: serde::Serializer>(
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{value:?}"))
}
