//! Every `DecodeError` and `EncodeError`: what provokes it, and that the decoder goes on.

use crate::common::*;
use handful_protocol::*;

/// Decodes `bytes` (one delimited frame), expects `expected`, then checks the same
/// decoder still decodes a valid frame: every error leaves it resynchronised.
fn check(bytes: &[u8], expected: DecodeError) {
    let mut decoder = Decoder::new();
    let results: Vec<_> = bytes.iter().filter_map(|&b| decoder.push(b)).collect();
    assert_eq!(results, vec![Err(expected)], "for {bytes:02x?}");
    let good = frame(1, 1, Message::Disarm);
    let after: Vec<_> = encode_vec(&good)
        .iter()
        .filter_map(|&b| decoder.push(b))
        .collect();
    assert_eq!(after, vec![Ok(good)]);
}

fn state_payload(arm_state: u8, n: u8, values: usize) -> Vec<u8> {
    let mut p = vec![arm_state, 0, 0, 0, 0, 0, 0, 0, 0, n];
    p.extend(std::iter::repeat_n(0x3f, 4 * values));
    p
}

fn channel_info_payload(kind: u8, index: u8, name: [u8; 24], unit: [u8; 8]) -> Vec<u8> {
    let mut p = vec![kind, index];
    p.extend(name);
    p.extend(unit);
    p.extend([0; 12]);
    p
}

fn padded<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out[..text.len()].copy_from_slice(text);
    out
}

#[test]
fn malformed_frames_are_reported() {
    use DecodeError::*;
    use MessageKind as K;
    let v = PROTOCOL_VERSION;
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        ("cobs run past the end", vec![0x05, 0x01, 0x00], Cobs),
        ("one byte", stuff(&[0x01]), TooShort { len: 1 }),
        (
            "header without crc",
            stuff(&body(v, 0x30, &[])),
            TooShort { len: 14 },
        ),
        ("17 bytes", stuff(&[0x11; 17]), TooShort { len: 17 }),
        (
            "crc zeroed",
            stuff(&[body(v, 0x30, &[]), vec![0; 4]].concat()),
            Crc {
                received: 0,
                computed: crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&body(v, 0x30, &[])),
            },
        ),
        (
            "version 0",
            seal(&body(0, 0x30, &[])),
            UnsupportedVersion(0),
        ),
        (
            "version 2",
            seal(&body(2, 0x30, &[])),
            UnsupportedVersion(2),
        ),
        ("kind 0x00", seal(&body(v, 0x00, &[])), UnknownKind(0x00)),
        ("kind 0x99", seal(&body(v, 0x99, &[])), UnknownKind(0x99)),
        (
            "arm with payload",
            seal(&body(v, 0x30, &[1])),
            Length {
                kind: K::Arm,
                len: 1,
            },
        ),
        (
            "hello short",
            seal(&body(v, 0x01, &[1])),
            Length {
                kind: K::Hello,
                len: 1,
            },
        ),
        (
            "hello long",
            seal(&body(v, 0x01, &[1, 1, 1])),
            Length {
                kind: K::Hello,
                len: 3,
            },
        ),
        (
            "reset short",
            seal(&body(v, 0x33, &[0; 7])),
            Length {
                kind: K::Reset,
                len: 7,
            },
        ),
        (
            "reset_to without count",
            seal(&body(v, 0x34, &[])),
            Length {
                kind: K::ResetTo,
                len: 0,
            },
        ),
        (
            "reset_to count 2, 1 value",
            seal(&body(v, 0x34, &[2, 0, 0, 0, 0])),
            Length {
                kind: K::ResetTo,
                len: 5,
            },
        ),
        (
            "reset_to count 33",
            seal(&body(v, 0x34, &[&[33u8][..], &[0; 132]].concat())),
            InvalidField {
                kind: K::ResetTo,
                offset: 0,
            },
        ),
        (
            "state without count",
            seal(&body(v, 0x10, &[1; 9])),
            Length {
                kind: K::State,
                len: 9,
            },
        ),
        (
            "state count 2, 3 values",
            seal(&body(v, 0x10, &state_payload(1, 2, 3))),
            Length {
                kind: K::State,
                len: 22,
            },
        ),
        (
            "state count 3, 2 values",
            seal(&body(v, 0x10, &state_payload(1, 3, 2))),
            Length {
                kind: K::State,
                len: 18,
            },
        ),
        (
            "state count 33",
            seal(&body(v, 0x10, &state_payload(1, 33, 33))),
            InvalidField {
                kind: K::State,
                offset: 9,
            },
        ),
        (
            "command count 17",
            seal(&body(v, 0x11, &[&[0u8; 12][..], &[17], &[0; 68]].concat())),
            InvalidField {
                kind: K::Command,
                offset: 12,
            },
        ),
        (
            "teleop count 9",
            seal(&body(v, 0x40, &[&[0u8; 4][..], &[9], &[0; 36]].concat())),
            InvalidField {
                kind: K::Teleop,
                offset: 4,
            },
        ),
        (
            "state arm_state 4",
            seal(&body(v, 0x10, &state_payload(4, 0, 0))),
            InvalidField {
                kind: K::State,
                offset: 0,
            },
        ),
        (
            "heartbeat arm_state 0xff",
            seal(&body(v, 0x20, &[0xff, 0, 0, 0, 0])),
            InvalidField {
                kind: K::Heartbeat,
                offset: 0,
            },
        ),
        (
            "fault code 0",
            seal(&body(v, 0x50, &[0, 0, 1, 0, 0, 0])),
            InvalidField {
                kind: K::Fault,
                offset: 0,
            },
        ),
        (
            "fault code 10",
            seal(&body(v, 0x50, &[10, 0, 1, 0, 0, 0])),
            InvalidField {
                kind: K::Fault,
                offset: 0,
            },
        ),
        (
            "channel kind 2",
            seal(&body(
                v,
                0x03,
                &channel_info_payload(2, 0, padded(b"x"), padded(b"m")),
            )),
            InvalidField {
                kind: K::ChannelInfo,
                offset: 0,
            },
        ),
        (
            "action channel index 16",
            seal(&body(
                v,
                0x03,
                &channel_info_payload(1, 16, padded(b"x"), padded(b"m")),
            )),
            InvalidField {
                kind: K::ChannelInfo,
                offset: 1,
            },
        ),
        (
            "byte after the name's NUL",
            seal(&body(
                v,
                0x03,
                &channel_info_payload(0, 0, padded(b"ab\0c"), padded(b"m")),
            )),
            InvalidField {
                kind: K::ChannelInfo,
                offset: 5,
            },
        ),
        (
            "invalid UTF-8 in the unit",
            seal(&body(
                v,
                0x03,
                &channel_info_payload(0, 0, padded(b"x"), padded(b"m\xff")),
            )),
            InvalidField {
                kind: K::ChannelInfo,
                offset: 27,
            },
        ),
        (
            "capabilities state_dim 33",
            seal(&body(
                v,
                0x02,
                &[&[1u8][..], &[0; 27], &[33, 1], &[0; 16]].concat(),
            )),
            InvalidField {
                kind: K::Capabilities,
                offset: 28,
            },
        ),
    ];
    for (what, bytes, expected) in cases {
        eprintln!("case: {what}");
        check(&bytes, expected);
    }
}

#[test]
fn every_single_bit_flip_is_a_crc_error() {
    for (name, frame) in golden_frames().iter().take(4) {
        let raw = unstuff(&encode_vec(frame));
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut corrupt = raw.clone();
                corrupt[i] ^= 1 << bit;
                let result = decode_one(&stuff(&corrupt));
                assert!(
                    matches!(result, Err(DecodeError::Crc { .. })),
                    "{name} byte {i} bit {bit}: {result:?}"
                );
            }
        }
    }
}

#[test]
fn corrupted_wire_bytes_never_decode() {
    for (name, frame) in golden_frames() {
        let bytes = encode_vec(&frame);
        for i in 0..bytes.len() - 1 {
            let mut corrupt = bytes.clone();
            corrupt[i] = corrupt[i].wrapping_add(0x5a).max(1);
            if corrupt[i] == bytes[i] {
                continue;
            }
            let results = decode_all(&corrupt);
            assert!(
                results.iter().all(Result::is_err),
                "{name} byte {i}: {results:?}"
            );
        }
    }
}

#[test]
fn truncated_frames_are_errors() {
    for (name, frame) in golden_frames() {
        let bytes = encode_vec(&frame);
        for cut in 1..bytes.len() - 1 {
            let mut truncated = bytes[..cut].to_vec();
            truncated.push(0);
            assert!(decode_one(&truncated).is_err(), "{name} cut at {cut}");
        }
    }
}

#[test]
fn overlong_frame_reports_one_overflow_then_resynchronises() {
    let mut stream = vec![0x42; 3 * MAX_ENCODED_LEN];
    stream.push(0);
    let good = frame(5, 6, Message::EStop);
    stream.extend(encode_vec(&good));
    assert_eq!(
        decode_all(&stream),
        vec![Err(DecodeError::Overflow), Ok(good)]
    );
}

#[test]
fn frame_of_exactly_the_buffer_size_is_not_an_overflow() {
    let mut stream = vec![0x42; MAX_ENCODED_LEN];
    stream.push(0);
    let results = decode_all(&stream);
    assert_eq!(results.len(), 1);
    assert_ne!(results[0], Err(DecodeError::Overflow));
    stream.insert(0, 0x42);
    assert_eq!(decode_all(&stream), vec![Err(DecodeError::Overflow)]);
}

#[test]
fn encode_reports_the_size_it_needs() {
    for (name, frame) in golden_frames() {
        let needed = encode_vec(&frame).len();
        let mut out = vec![0xee; needed - 1];
        assert_eq!(
            encode(&frame, &mut out),
            Err(EncodeError::BufferTooSmall {
                needed: needed as u16
            }),
            "{name}"
        );
        assert!(
            out.iter().all(|&b| b == 0xee),
            "{name}: nothing written on error"
        );
        let mut out = vec![0xee; needed];
        assert_eq!(encode(&frame, &mut out), Ok(needed));
    }
    assert_eq!(
        encode(&frame(0, 0, Message::Arm), &mut []),
        Err(EncodeError::BufferTooSmall { needed: 20 })
    );
}

#[test]
fn errors_display_their_data() {
    let cases: Vec<(String, &str)> = vec![
        (DecodeError::Cobs.to_string(), "COBS"),
        (DecodeError::Overflow.to_string(), "180"),
        (DecodeError::TooShort { len: 3 }.to_string(), "3 bytes"),
        (
            DecodeError::Crc {
                received: 0xab,
                computed: 0xcd,
            }
            .to_string(),
            "0x000000cd",
        ),
        (DecodeError::UnsupportedVersion(9).to_string(), "version 9"),
        (DecodeError::UnknownKind(0x99).to_string(), "0x99"),
        (
            DecodeError::Length {
                kind: MessageKind::State,
                len: 7,
            }
            .to_string(),
            "State",
        ),
        (
            DecodeError::InvalidField {
                kind: MessageKind::Fault,
                offset: 2,
            }
            .to_string(),
            "byte 2",
        ),
        (
            EncodeError::BufferTooSmall { needed: 33 }.to_string(),
            "33 bytes",
        ),
    ];
    for (text, needle) in cases {
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
    let _: &dyn core::error::Error = &DecodeError::Cobs;
    let _: &dyn core::error::Error = &EncodeError::BufferTooSmall { needed: 1 };
}
