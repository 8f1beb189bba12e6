//! Wire protocol between the handful host and a robot's firmware.
//!
//! `no_std`, allocation-free, and shared verbatim by the host (link, simulator) and
//! the microcontroller. A frame on the wire is
//!
//! ```text
//! COBS( version u8 | kind u8 | seq u32 | timestamp_us u64 | payload | crc32 ) 0x00
//! ```
//!
//! all integers and floats little-endian; the CRC is CRC-32/ISO-HDLC over everything
//! before it. `firmware-bridge/README.md` is the normative description, with byte
//! tables and golden vectors; this crate is its reference implementation.
//!
//! Encoding writes into the caller's buffer; decoding is a byte-at-a-time state
//! machine ([`Decoder`]) over a fixed buffer that never panics on any input and
//! resynchronises at the next `0x00` delimiter.
#![no_std]
#![forbid(unsafe_code)]

mod codec;
#[doc(hidden)]
pub mod fuzzing;
mod message;

pub use codec::{DecodeError, Decoder, EncodeError, encode};
pub use message::*;

/// Protocol version carried in every frame header. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest state vector a frame can carry.
pub const MAX_STATE_DIM: usize = 32;
/// Largest action vector a frame can carry.
pub const MAX_ACTION_DIM: usize = 16;
/// Largest number of analogue axes in a [`Teleop`] message.
pub const MAX_TELEOP_AXES: usize = 8;
/// Longest UTF-8 name (robot id, channel name) in bytes.
pub const MAX_NAME_LEN: usize = 24;
/// Longest unit string (`"m"`, `"rad/s"`) in bytes.
pub const MAX_UNIT_LEN: usize = 8;
/// Header bytes before the payload: version, kind, seq, timestamp.
pub const HEADER_LEN: usize = 14;
/// Trailing CRC bytes.
pub const CRC_LEN: usize = 4;
/// Largest payload of any message.
pub const MAX_PAYLOAD_LEN: usize = 160;
/// Largest unencoded frame (header + payload + CRC).
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN + CRC_LEN;
/// Largest encoded frame on the wire, delimiter included. Size receive and transmit
/// buffers with this.
pub const MAX_ENCODED_LEN: usize = cobs::max_encoding_length(MAX_FRAME_LEN) + 1;
