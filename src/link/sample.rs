//! What the link hands the rest of the host: `Copy` samples in latest-value slots, fault
//! events, requests, the hot-path error, and the state shared between the link's threads
//! and the control thread ([`Shared`]).
//!
//! The slots are `crossbeam::atomic::AtomicCell`s. A [`StateSample`] (about 170 bytes) is
//! too large for a native atomic, so `AtomicCell` guards it with a sequence lock taken
//! from a small static table: the rx thread's `store` holds it for one ~170-byte copy,
//! a `load` reads optimistically and retries only if a store overlapped. Readers never
//! block the writer, nothing allocates, and there is no `unsafe` in this crate — which
//! is why we prefer it over a hand-written seqlock (whose racy reads need `unsafe`
//! volatile copies). A `Mutex` would let a preempted reader stall the rx thread.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Condvar, Mutex};

use crossbeam::atomic::AtomicCell;
use handful_protocol::{ArmState, FaultCode, MAX_STATE_DIM, MAX_TELEOP_AXES};

use super::stats::Counters;

/// One State frame, converted to SI at the link edge (`si = raw · scale + offset`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateSample {
    /// Host clock (µs, [`crate::clock::Clock::now_us`]) when the frame was decoded.
    pub host_time_us: u64,
    /// Firmware clock (µs): the sample time, from the frame header.
    pub timestamp_us: u64,
    /// The firmware's frame seq.
    pub frame_seq: u32,
    /// States received since the link opened, starting at 1; strictly increasing.
    pub count: u64,
    pub arm_state: ArmState,
    /// `FAULT_*` bits of `handful_protocol`.
    pub fault_flags: u32,
    /// Seq of the last command the firmware accepted (0 before any).
    pub last_command_seq: u32,
    /// SI values; only `values[..dim]` are meaningful, the rest are 0.
    pub values: [f32; MAX_STATE_DIM],
    /// Number of values the frame carried (at most the calibration's state dim). The
    /// firmware flags `FAULT_SENSOR` when it differs from its channel count.
    pub dim: usize,
}

impl StateSample {
    pub fn values(&self) -> &[f32] {
        &self.values[..self.dim.min(MAX_STATE_DIM)]
    }
}

/// The latest Teleop frame (operator inputs forwarded by the firmware).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TeleopSample {
    pub host_time_us: u64,
    pub timestamp_us: u64,
    pub buttons: u32,
    /// Axes in [-1, 1]; only `axes[..axis_count]` are meaningful.
    pub axes: [f32; MAX_TELEOP_AXES],
    pub axis_count: usize,
}

/// A firmware Fault frame, as pushed to [`super::Link::fault_events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    pub host_time_us: u64,
    pub timestamp_us: u64,
    pub code: FaultCode,
    pub detail: u32,
}

/// Session requests sent with [`super::Link::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Arm,
    Disarm,
    EStop,
    /// Reset a simulated plant from `seed` (robots with `CAP_RESET` only).
    Reset {
        seed: u64,
    },
}

/// Why a command or request was not queued. `Copy`, allocation-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("link tx queue full; command dropped")]
    Full,
    #[error("link disconnected")]
    Disconnected,
    #[error("command has {found} values; the robot has {expected} actions")]
    Dimension { expected: usize, found: usize },
    #[error("the robot does not announce the capability this request needs")]
    Unsupported,
    /// [`super::Link::reset_to`] on a robot without `CAP_RESET_TO`.
    #[error(
        "the robot does not announce CAP_RESET_TO: it cannot be reset to a given state \
         (a simulator can; real firmware may refuse)"
    )]
    NoResetTo,
    #[error("a state to reset to has {found} values; the robot has {expected} state channels")]
    StateDimension { expected: usize, found: usize },
    #[error("state value {index} to reset to is not finite (in SI or in the channel's unit)")]
    NotFinite { index: usize },
}

/// State shared by the control-thread API and the rx/tx threads.
pub(crate) struct Shared {
    pub counters: Counters,
    pub state: AtomicCell<Option<StateSample>>,
    pub teleop: AtomicCell<Option<TeleopSample>>,
    /// Held only to pair with `state_arrived` (never across I/O or a copy).
    pub state_lock: Mutex<()>,
    pub state_arrived: Condvar,
    /// Set by `Link::drop`; both threads exit within one read timeout.
    pub stop: AtomicBool,
    /// Generation of the port on which a write failed for a reason other than a
    /// timeout (0: none); the rx thread then treats that port as lost. A generation,
    /// not a flag, so a late failure on an old port cannot condemn its successor.
    pub failed_port: AtomicU64,
    /// Host frame seq, shared by the handshake (rx thread, tx holding no port) and tx.
    pub tx_seq: AtomicU32,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            counters: Counters::new(),
            state: AtomicCell::new(None),
            teleop: AtomicCell::new(None),
            state_lock: Mutex::new(()),
            state_arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            failed_port: AtomicU64::new(0),
            tx_seq: AtomicU32::new(0),
        }
    }
}
