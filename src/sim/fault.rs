//! The transmit path and its injected faults: every outgoing frame is encoded, may be
//! dropped or have one bit flipped (seeded RNG), and is written to the pty without ever
//! blocking.
//!
//! A frame that does not fit in the pty buffer is dropped and counted; if the kernel
//! takes only part of a frame, the rest is kept and written before anything else, so
//! the byte stream the host reads is always whole frames (apart from injected
//! corruption). Never allocates.

use handful_protocol::{Frame, MAX_ENCODED_LEN, encode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::pty::Pty;
use super::{SimError, SimReport};

/// `true` with `probability` (draws nothing when it is 0, so a run without injection
/// consumes no random numbers here).
pub fn chance(rng: &mut ChaCha8Rng, probability: f64) -> bool {
    probability > 0.0 && rng.random::<f64>() < probability
}

/// Encodes, injects faults, and writes frames to the pty.
#[derive(Debug)]
pub struct Transmitter {
    drop_prob: f64,
    corrupt_prob: f64,
    wire: [u8; MAX_ENCODED_LEN],
    /// The unwritten tail of a partially written frame: `pending[start..end]`.
    pending: [u8; MAX_ENCODED_LEN],
    pending_start: usize,
    pending_end: usize,
}

impl Transmitter {
    pub fn new(drop_prob: f64, corrupt_prob: f64) -> Self {
        Self {
            drop_prob,
            corrupt_prob,
            wire: [0; MAX_ENCODED_LEN],
            pending: [0; MAX_ENCODED_LEN],
            pending_start: 0,
            pending_end: 0,
        }
    }

    /// Forgets a partial frame (the pty it was meant for is gone).
    pub fn clear(&mut self) {
        self.pending_start = 0;
        self.pending_end = 0;
    }

    /// Sends one frame to `port` (`None`: disconnected, the frame is lost).
    ///
    /// Real-time contract: never blocks, never allocates; one `write` call (two when a
    /// partial frame is pending).
    pub fn send(
        &mut self,
        frame: &Frame,
        port: Option<&Pty>,
        rng: &mut ChaCha8Rng,
        report: &mut SimReport,
    ) -> Result<(), SimError> {
        let Ok(len) = encode(frame, &mut self.wire) else {
            report.encode_errors += 1;
            return Ok(());
        };
        let Some(port) = port else {
            report.frames_lost_offline += 1;
            return Ok(());
        };
        if chance(rng, self.drop_prob) {
            report.frames_dropped += 1;
            return Ok(());
        }
        if chance(rng, self.corrupt_prob) && len > 1 {
            // Any bit but the delimiter's, so one corrupted frame stays one bad frame.
            let bit = rng.random_range(0..(len - 1) * 8);
            self.wire[bit / 8] ^= 1 << (bit % 8);
            report.frames_corrupted += 1;
        }
        if !self.flush(port)? {
            report.frames_lost_full += 1;
            return Ok(());
        }
        let written = port.write(&self.wire[..len]).map_err(write_error)?;
        if written == 0 {
            report.frames_lost_full += 1;
            return Ok(());
        }
        report.frames_sent += 1;
        if written < len {
            let rest = len - written;
            self.pending[..rest].copy_from_slice(&self.wire[written..len]);
            self.pending_start = 0;
            self.pending_end = rest;
        }
        Ok(())
    }

    /// Writes what remains of a partial frame; `true` when nothing is pending anymore.
    pub fn flush(&mut self, port: &Pty) -> Result<bool, SimError> {
        if self.pending_start < self.pending_end {
            let rest = &self.pending[self.pending_start..self.pending_end];
            self.pending_start += port.write(rest).map_err(write_error)?;
        }
        Ok(self.pending_start >= self.pending_end)
    }
}

fn write_error(source: nix::errno::Errno) -> SimError {
    SimError::PtyIo {
        op: "write",
        source,
    }
}
