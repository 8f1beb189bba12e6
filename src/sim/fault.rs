//! The transmit path and its injected faults: every outgoing frame is encoded, may be
//! muted, dropped, have one bit flipped or bytes corrupted (seeded RNG), may be held
//! back (a latency spike), and is written to the pty without ever blocking.
//!
//! A frame that does not fit in the pty buffer is dropped and counted; if the kernel
//! takes only part of a frame, the rest is kept and written before anything else, so
//! the byte stream the host reads is always whole frames (apart from injected
//! corruption). Held frames wait in the same queue and go out, in order, when the spike
//! ends. Never allocates after [`Transmitter::new`].

use handful_protocol::{Frame, MAX_ENCODED_LEN, encode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::pty::Pty;
use super::{SimError, SimReport};

/// Bytes the transmit queue holds: partial frames and the frames of a latency spike
/// (a 2 s spike of a 25 Hz robot is about 100 frames of at most 64 bytes).
const QUEUE_BYTES: usize = 64 * 1024;

/// `true` with `probability` (draws nothing when it is 0, so a run without injection
/// consumes no random numbers here).
pub fn chance(rng: &mut ChaCha8Rng, probability: f64) -> bool {
    probability > 0.0 && rng.random::<f64>() < probability
}

/// Line noise on one byte: with `probability`, XOR with a random non-zero value (so the
/// byte always changes). Returns whether it did.
pub fn corrupt_byte(byte: &mut u8, rng: &mut ChaCha8Rng, probability: f64) -> bool {
    if !chance(rng, probability) {
        return false;
    }
    *byte ^= rng.random_range(1..=u8::MAX);
    true
}

/// What the transmit path does with frames right now (from the fault windows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    /// Nothing reaches the host (a broken transmit line).
    pub mute: bool,
    /// Frames are held back until the spike ends.
    pub hold: bool,
}

/// What became of one outgoing frame (for the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Written whole (or its tail queued behind a partial write).
    Sent,
    /// Written with a bit or bytes changed: the host cannot decode it.
    Corrupted,
    /// Written intact, but the frame before it lost its delimiter: the host reads both as
    /// one bad frame.
    Merged,
    /// Queued until the latency spike ends.
    Held,
    Dropped,
    Muted,
    /// Disconnected.
    Offline,
    /// The pty buffer was full.
    Full,
    /// The spike's queue was full.
    HoldFull,
    EncodeError,
}

impl Fate {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Corrupted => "corrupted",
            Self::Merged => "merged",
            Self::Held => "held",
            Self::Dropped => "dropped",
            Self::Muted => "muted",
            Self::Offline => "offline",
            Self::Full => "full",
            Self::HoldFull => "hold_full",
            Self::EncodeError => "encode_error",
        }
    }
}

/// Encodes, injects faults, and writes frames to the pty.
#[derive(Debug)]
pub struct Transmitter {
    drop_prob: f64,
    corrupt_prob: f64,
    corrupt_byte_prob: f64,
    wire: [u8; MAX_ENCODED_LEN],
    /// Bytes not written yet: `queue[start..end]` (a partial frame's tail, held frames).
    queue: Vec<u8>,
    start: usize,
    end: usize,
    /// The last frame put on the wire lost its delimiter: the next one merges with it.
    delimiter_lost: bool,
}

impl Transmitter {
    pub fn new(drop_prob: f64, corrupt_prob: f64, corrupt_byte_prob: f64) -> Self {
        Self {
            drop_prob,
            corrupt_prob,
            corrupt_byte_prob,
            wire: [0; MAX_ENCODED_LEN],
            queue: vec![0; QUEUE_BYTES],
            start: 0,
            end: 0,
            delimiter_lost: false,
        }
    }

    /// Forgets queued bytes (the pty they were meant for is gone).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.delimiter_lost = false;
    }

    /// Sends one frame to `port` (`None`: disconnected, the frame is lost) through
    /// `gate`, and says what became of it.
    ///
    /// Real-time contract: never blocks, never allocates; one `write` call (two when
    /// bytes are queued).
    pub fn send(
        &mut self,
        frame: &Frame,
        port: Option<&Pty>,
        gate: Gate,
        rng: &mut ChaCha8Rng,
        report: &mut SimReport,
    ) -> Result<Fate, SimError> {
        let Ok(len) = encode(frame, &mut self.wire) else {
            report.encode_errors += 1;
            return Ok(Fate::EncodeError);
        };
        let Some(port) = port else {
            report.frames_lost_offline += 1;
            return Ok(Fate::Offline);
        };
        if gate.mute {
            report.frames_muted += 1;
            return Ok(Fate::Muted);
        }
        if chance(rng, self.drop_prob) {
            report.frames_dropped += 1;
            return Ok(Fate::Dropped);
        }
        let mut fate = Fate::Sent;
        if chance(rng, self.corrupt_prob) && len > 1 {
            // Any bit but the delimiter's, so one corrupted frame stays one bad frame.
            let bit = rng.random_range(0..(len - 1) * 8);
            self.wire[bit / 8] ^= 1 << (bit % 8);
            report.frames_corrupted += 1;
            fate = Fate::Corrupted;
        }
        let mut bytes = 0;
        for byte in &mut self.wire[..len] {
            bytes += u64::from(corrupt_byte(byte, rng, self.corrupt_byte_prob));
        }
        if bytes > 0 {
            report.bytes_corrupted += bytes;
            if fate == Fate::Sent {
                report.frames_corrupted += 1;
            }
            fate = Fate::Corrupted;
        }
        let delimiter_kept = self.wire[len - 1] == 0;
        if gate.hold {
            if !self.enqueue(len) {
                report.frames_lost_hold += 1;
                return Ok(Fate::HoldFull);
            }
            report.frames_held += 1;
            return Ok(self.on_wire(delimiter_kept, fate, Fate::Held));
        }
        if !self.flush(port)? {
            report.frames_lost_full += 1;
            return Ok(Fate::Full);
        }
        let written = port.write(&self.wire[..len]).map_err(write_error)?;
        if written == 0 {
            report.frames_lost_full += 1;
            return Ok(Fate::Full);
        }
        report.frames_sent += 1;
        if written < len {
            self.wire.copy_within(written..len, 0);
            self.enqueue(len - written);
        }
        Ok(self.on_wire(delimiter_kept, fate, fate))
    }

    /// A frame went on the wire (or into the queue): notes whether it lost its
    /// delimiter, and whether it merges with the one before (then it is lost too).
    fn on_wire(&mut self, delimiter_kept: bool, fate: Fate, otherwise: Fate) -> Fate {
        let merged = std::mem::replace(&mut self.delimiter_lost, !delimiter_kept);
        match fate {
            Fate::Sent if merged => Fate::Merged,
            Fate::Sent => otherwise,
            _ => fate,
        }
    }

    /// Appends `wire[..len]` to the queue; `false` if it does not fit.
    fn enqueue(&mut self, len: usize) -> bool {
        if self.end + len > self.queue.len() {
            self.queue.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end + len > self.queue.len() {
                return false;
            }
        }
        self.queue[self.end..self.end + len].copy_from_slice(&self.wire[..len]);
        self.end += len;
        true
    }

    /// Writes what the queue holds (as much as the pty takes); `true` when it is empty.
    pub fn flush(&mut self, port: &Pty) -> Result<bool, SimError> {
        if self.start < self.end {
            self.start += port
                .write(&self.queue[self.start..self.end])
                .map_err(write_error)?;
        }
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
            return Ok(true);
        }
        Ok(false)
    }
}

fn write_error(source: nix::errno::Errno) -> SimError {
    SimError::PtyIo {
        op: "write",
        source,
    }
}
