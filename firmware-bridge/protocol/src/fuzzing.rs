//! Fuzz target bodies, one plain function per target: `fuzz/` (cargo-fuzz, nightly) wraps
//! each in a `fuzz_target!`, and the host's `tests/fuzz_corpus.rs` (stable) replays the
//! committed corpus and a seeded mutation loop through the very same functions.
//!
//! Each takes arbitrary bytes and panics only when a property of the protocol breaks (a
//! panic inside the crate is a finding too). Not part of the API: hidden from the docs.

use crate::{
    CRC_LEN, Decoder, Frame, HEADER_LEN, MAX_ENCODED_LEN, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, Message,
    PROTOCOL_VERSION, encode,
};

/// The frame CRC, as the codec computes it (CRC-32/ISO-HDLC).
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The frame the decoder must still find after any byte stream and one delimiter.
const SENTINEL: Frame = Frame {
    seq: 0x5eed_f00d,
    timestamp_us: 0x0123_4567_89ab_cdef,
    message: Message::Arm,
};

/// The byte-stream decoder: feeds `data` byte by byte, then a delimiter and a valid frame.
///
/// Properties: no panic; every frame accepted re-encodes and decodes to the same bits;
/// after any garbage the decoder resynchronises at the next `0x00` and the valid frame
/// that follows is the last result, decoded exactly.
pub fn frame_decoder(data: &[u8]) {
    let mut decoder = Decoder::new();
    for &byte in data {
        if let Some(Ok(frame)) = decoder.push(byte) {
            assert_round_trips(&frame);
        }
    }
    let mut wire = [0u8; MAX_ENCODED_LEN];
    let Ok(len) = encode(&SENTINEL, &mut wire) else {
        panic!("the sentinel frame does not encode");
    };
    // The delimiter ends whatever the stream left unfinished (a frame, an overflow).
    let _ = decoder.push(0);
    let mut last = None;
    for &byte in &wire[..len] {
        if let Some(result) = decoder.push(byte) {
            last = Some(result);
        }
    }
    assert_eq!(
        last,
        Some(Ok(SENTINEL)),
        "the decoder did not resynchronise"
    );
}

/// The message parser behind the CRC: `data[0]` is the header's kind byte and the rest
/// the payload (up to a few bytes past the longest one), sealed with a correct header
/// and CRC so that every input reaches the payload checks.
///
/// Properties: no panic; whatever is accepted is canonical (re-encodes to exactly the
/// frame bytes parsed).
pub fn message_parser(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let payload = &payload[..payload.len().min(MAX_PAYLOAD_LEN + 8)];
    let mut raw = [0u8; MAX_FRAME_LEN + 8];
    raw[0] = PROTOCOL_VERSION;
    raw[1] = kind;
    raw[2..6].copy_from_slice(&7u32.to_le_bytes());
    raw[6..HEADER_LEN].copy_from_slice(&9u64.to_le_bytes());
    let body_len = HEADER_LEN + payload.len();
    raw[HEADER_LEN..body_len].copy_from_slice(payload);
    let crc = CRC.checksum(&raw[..body_len]);
    raw[body_len..body_len + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let raw = &raw[..body_len + CRC_LEN];

    // Stuffed and delimited by hand, then through the public decoder.
    let mut stuffed = [0u8; MAX_ENCODED_LEN + 8];
    let Ok(stuffed_len) = cobs::try_encode(raw, &mut stuffed) else {
        panic!("the COBS buffer is too small for {} bytes", raw.len());
    };
    let mut decoder = Decoder::new();
    let mut decoded = None;
    for &byte in stuffed[..stuffed_len].iter().chain(&[0]) {
        if let Some(result) = decoder.push(byte) {
            decoded = Some(result);
        }
    }
    let Some(Ok(frame)) = decoded else {
        return;
    };
    let mut wire = [0u8; MAX_ENCODED_LEN];
    let Ok(len) = encode(&frame, &mut wire) else {
        panic!("an accepted frame does not re-encode: {frame:?}");
    };
    let Ok(unstuffed) = cobs::decode_in_place(&mut wire[..len - 1]) else {
        panic!("the encoder wrote invalid COBS for {frame:?}");
    };
    assert_eq!(
        &wire[..unstuffed],
        raw,
        "an accepted frame is not canonical: {frame:?}"
    );
}

/// Encodes `frame`, decodes it, encodes again: both encodings are the same bytes.
fn assert_round_trips(frame: &Frame) {
    let mut first = [0u8; MAX_ENCODED_LEN];
    let Ok(len) = encode(frame, &mut first) else {
        panic!("an accepted frame does not re-encode: {frame:?}");
    };
    let mut decoder = Decoder::new();
    let mut decoded = None;
    for &byte in &first[..len] {
        if let Some(result) = decoder.push(byte) {
            decoded = Some(result);
        }
    }
    let Some(Ok(again)) = decoded else {
        panic!("a re-encoded frame does not decode: {frame:?} gave {decoded:?}");
    };
    let mut second = [0u8; MAX_ENCODED_LEN];
    let Ok(len2) = encode(&again, &mut second) else {
        panic!("a decoded frame does not re-encode: {again:?}");
    };
    assert_eq!(
        &first[..len],
        &second[..len2],
        "a frame changed over a round trip"
    );
}
