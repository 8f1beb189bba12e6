//! Framing: header, CRC and COBS around the payloads of [`payload`], in both directions.
//!
//! [`encode`] serialises one [`Frame`] into the caller's buffer; [`Decoder`] is a
//! byte-at-a-time state machine over a fixed buffer. Neither allocates, and the decoder
//! never panics on any input: every malformed frame becomes a [`DecodeError`] and the
//! decoder resynchronises at the next `0x00` delimiter.

mod payload;

use core::fmt;

use crate::{
    CRC_LEN, Frame, HEADER_LEN, MAX_ENCODED_LEN, MAX_FRAME_LEN, MessageKind, PROTOCOL_VERSION,
};

/// CRC-32/ISO-HDLC (the zlib / Ethernet CRC-32) over every frame byte before the CRC.
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why a received frame was rejected. Small and `Copy`: the hot path never allocates.
///
/// Checks run in the order of the variants: COBS, length, CRC, version, kind, payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes between two delimiters are not a valid COBS encoding.
    Cobs,
    /// More than [`MAX_ENCODED_LEN`] bytes arrived without a delimiter; they were
    /// discarded up to the next `0x00`.
    Overflow,
    /// The decoded frame is shorter than a header plus CRC (`len` bytes).
    TooShort { len: u16 },
    /// The CRC in the frame does not match the one computed over its bytes.
    Crc { received: u32, computed: u32 },
    /// The header's version byte is not [`PROTOCOL_VERSION`].
    UnsupportedVersion(u8),
    /// The header's kind byte is not a known [`MessageKind`].
    UnknownKind(u8),
    /// The payload length `len` is wrong for `kind` (or for the element count it states).
    Length { kind: MessageKind, len: u16 },
    /// The field at byte `offset` of the payload holds an invalid value (an unknown enum
    /// byte, a count over capacity, a malformed string).
    InvalidField { kind: MessageKind, offset: u16 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Cobs => f.write_str("frame is not valid COBS"),
            Self::Overflow => write!(
                f,
                "frame longer than {MAX_ENCODED_LEN} bytes before its delimiter, discarded"
            ),
            Self::TooShort { len } => write!(
                f,
                "frame of {len} bytes is shorter than the {} bytes of header and CRC",
                HEADER_LEN + CRC_LEN
            ),
            Self::Crc { received, computed } => write!(
                f,
                "CRC mismatch: frame carries {received:#010x}, bytes give {computed:#010x}"
            ),
            Self::UnsupportedVersion(version) => write!(
                f,
                "protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})"
            ),
            Self::UnknownKind(kind) => write!(f, "unknown message kind {kind:#04x}"),
            Self::Length { kind, len } => {
                write!(
                    f,
                    "payload of {len} bytes has the wrong length for {kind:?}"
                )
            }
            Self::InvalidField { kind, offset } => {
                write!(f, "invalid field at payload byte {offset} of {kind:?}")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is shorter than the `needed` bytes of the encoded frame
    /// (delimiter included). A buffer of [`MAX_ENCODED_LEN`] bytes always suffices.
    BufferTooSmall { needed: u16 },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "output buffer too small: the encoded frame needs {needed} bytes"
                )
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Writes `COBS(frame bytes)` followed by one `0x00` delimiter into `out` and returns the
/// number of bytes written. Nothing is written on error.
///
/// Real-time contract: bounded time (at most [`MAX_FRAME_LEN`] bytes), no allocation,
/// about 360 bytes of stack.
pub fn encode(frame: &Frame, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut raw = [0u8; MAX_FRAME_LEN];
    let mut w = Writer::new(&mut raw);
    w.u8(PROTOCOL_VERSION);
    w.u8(frame.message.kind() as u8);
    w.u32(frame.seq);
    w.u64(frame.timestamp_us);
    payload::write(&frame.message, &mut w);
    let body_len = w.pos;
    let crc = CRC.checksum(&raw[..body_len]);
    let mut w = Writer {
        buf: &mut raw,
        pos: body_len,
    };
    w.u32(crc);
    let raw_len = w.pos;

    let mut stuffed = [0u8; MAX_ENCODED_LEN];
    // Cannot fail: `stuffed` holds the worst-case encoding of a maximal frame.
    let stuffed_len = cobs::try_encode(&raw[..raw_len], &mut stuffed).map_err(|_| {
        EncodeError::BufferTooSmall {
            needed: MAX_ENCODED_LEN as u16,
        }
    })?;
    let needed = stuffed_len + 1;
    let Some(dst) = out.get_mut(..needed) else {
        return Err(EncodeError::BufferTooSmall {
            needed: needed as u16,
        });
    };
    dst[..stuffed_len].copy_from_slice(&stuffed[..stuffed_len]);
    dst[stuffed_len] = 0;
    Ok(needed)
}

/// Byte-at-a-time frame decoder over a fixed buffer of [`MAX_ENCODED_LEN`] bytes.
///
/// Real-time contract: [`Decoder::push`] runs in constant time except on a delimiter,
/// where it decodes at most one buffer; it never allocates and never panics.
#[derive(Clone, Debug)]
pub struct Decoder {
    buf: [u8; MAX_ENCODED_LEN],
    len: usize,
    /// Set when the current frame outgrew `buf`; its bytes are dropped until `0x00`.
    overflowed: bool,
}

impl Decoder {
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_ENCODED_LEN],
            len: 0,
            overflowed: false,
        }
    }

    /// Feed one received byte. Returns `Some(..)` when a `0x00` delimiter ends a
    /// non-empty frame (empty frames, two delimiters in a row, are skipped).
    ///
    /// Never panics on any input; after garbage it resynchronises at the next `0x00`.
    /// A frame longer than [`MAX_ENCODED_LEN`] bytes is discarded up to its delimiter,
    /// which then yields one [`DecodeError::Overflow`].
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, DecodeError>> {
        if byte != 0 {
            if !self.overflowed {
                match self.buf.get_mut(self.len) {
                    Some(slot) => {
                        *slot = byte;
                        self.len += 1;
                    }
                    None => self.overflowed = true,
                }
            }
            return None;
        }
        let len = core::mem::take(&mut self.len);
        if core::mem::take(&mut self.overflowed) {
            return Some(Err(DecodeError::Overflow));
        }
        if len == 0 {
            return None;
        }
        Some(decode_stuffed(self.buf.get_mut(..len)?))
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Un-stuffs one COBS frame (delimiter removed) in place and parses it.
fn decode_stuffed(stuffed: &mut [u8]) -> Result<Frame, DecodeError> {
    let len = cobs::decode_in_place(stuffed).map_err(|_| DecodeError::Cobs)?;
    let raw = stuffed.get(..len).ok_or(DecodeError::Cobs)?;
    decode_raw(raw)
}

/// Parses one unstuffed frame: header, payload, CRC.
fn decode_raw(raw: &[u8]) -> Result<Frame, DecodeError> {
    let too_short = DecodeError::TooShort {
        len: raw.len() as u16,
    };
    let Some(body_len) = raw.len().checked_sub(CRC_LEN).filter(|&n| n >= HEADER_LEN) else {
        return Err(too_short);
    };
    let (body, crc_bytes) = raw.split_at(body_len);
    let received = Reader::new(crc_bytes).u32().ok_or(too_short)?;
    let computed = CRC.checksum(body);
    if received != computed {
        return Err(DecodeError::Crc { received, computed });
    }

    let mut header = Reader::new(body);
    let (Some(version), Some(kind), Some(seq), Some(timestamp_us)) =
        (header.u8(), header.u8(), header.u32(), header.u64())
    else {
        return Err(too_short);
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let kind = MessageKind::from_u8(kind).ok_or(DecodeError::UnknownKind(kind))?;
    let message = payload::read(kind, header.rest())?;
    Ok(Frame {
        seq,
        timestamp_us,
        message,
    })
}

/// Little-endian writer into a buffer whose size the caller has proven sufficient
/// (see the `const` assertion in [`payload`]). Out-of-range writes are dropped rather
/// than panicking; `pos` still advances so a test would see the overrun.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        debug_assert!(end <= self.buf.len(), "frame writer overrun");
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    fn u8(&mut self, value: u8) {
        self.bytes(&[value]);
    }

    fn u16(&mut self, value: u16) {
        self.bytes(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.bytes(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// The exact bit pattern, NaN payloads included.
    fn f32(&mut self, value: f32) {
        self.u32(value.to_bits());
    }
}

/// Little-endian cursor over received bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let chunk = self.bytes.get(self.pos..self.pos.checked_add(N)?)?;
        self.pos += N;
        chunk.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// The exact bit pattern, NaN payloads included.
    fn f32(&mut self) -> Option<f32> {
        self.u32().map(f32::from_bits)
    }

    /// Everything not read yet.
    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }
}
