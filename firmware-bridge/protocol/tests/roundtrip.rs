//! Every message kind through `encode` → `Decoder`, compared field by field and bit by bit.

use crate::common::*;
use handful_protocol::*;

/// Encodes `frame`, checks the framing (one trailing delimiter, no other zero), decodes
/// it byte by byte and checks the result equals `frame` (bit-exactly when NaNs are inside).
fn check(frame: &Frame) {
    let bytes = encode_vec(frame);
    assert!(bytes.len() <= MAX_ENCODED_LEN);
    assert_eq!(bytes.last(), Some(&0), "ends with the delimiter");
    assert!(
        !bytes[..bytes.len() - 1].contains(&0),
        "no zero inside {bytes:02x?}"
    );
    let raw = unstuff(&bytes);
    assert!(raw.len() <= MAX_FRAME_LEN);
    assert_eq!(
        raw.len() - HEADER_LEN - CRC_LEN,
        payload_len(&frame.message)
    );

    let decoded = decode_one(&bytes).unwrap_or_else(|e| panic!("{frame:?} failed: {e}"));
    assert!(same_bits(&decoded, frame), "{decoded:?} != {frame:?}");
    if !has_nan(frame) {
        assert_eq!(&decoded, frame);
    }
}

/// The payload size in the README's tables.
fn payload_len(message: &Message) -> usize {
    match message {
        Message::Hello(_) => 2,
        Message::Capabilities(_) | Message::ChannelInfo(_) => 46,
        Message::State(m) => 10 + 4 * m.values.len(),
        Message::Command(m) => 13 + 4 * m.values.len(),
        Message::Heartbeat(_) => 5,
        Message::Arm | Message::Disarm | Message::EStop => 0,
        Message::Reset(_) => 8,
        Message::ResetTo(m) => 1 + 4 * m.values.len(),
        Message::Teleop(m) => 5 + 4 * m.axes.len(),
        Message::Fault(_) => 6,
    }
}

#[test]
fn every_golden_frame_round_trips() {
    let frames = golden_frames();
    let kinds: std::collections::BTreeSet<u8> =
        frames.iter().map(|(_, f)| f.message.kind() as u8).collect();
    assert_eq!(kinds.len(), 13, "every message kind is covered");
    for (_, frame) in &frames {
        check(frame);
    }
}

#[test]
fn nan_in_state_round_trips_bit_exactly() {
    let patterns = [
        0x7fc0_0000u32,
        0x7f80_0001,
        0xffff_ffff,
        0x7fa5_5a5a,
        0xff80_0001,
    ];
    let values: Vec<f32> = patterns.iter().map(|&b| f32::from_bits(b)).collect();
    let frame = frame(
        9,
        9,
        Message::State(State {
            arm_state: ArmState::Armed,
            fault_flags: 0,
            last_command_seq: 3,
            values: vector(&values),
        }),
    );
    let Ok(Frame {
        message: Message::State(state),
        ..
    }) = decode_one(&encode_vec(&frame))
    else {
        panic!("not a state");
    };
    let bits: Vec<u32> = state
        .values
        .as_slice()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(bits, patterns);
}

#[test]
fn back_to_back_frames_decode_in_order() {
    let frames = golden_frames();
    let stream: Vec<u8> = frames.iter().flat_map(|(_, f)| encode_vec(f)).collect();
    let decoded = decode_all(&stream);
    assert_eq!(decoded.len(), frames.len());
    for ((_, expected), got) in frames.iter().zip(decoded) {
        assert!(same_bits(&got.expect("valid frame"), expected));
    }
}

#[test]
fn empty_frames_are_skipped() {
    let mut stream = vec![0, 0, 0];
    stream.extend(encode_vec(&frame(1, 2, Message::Arm)));
    stream.extend([0, 0]);
    assert_eq!(decode_all(&stream), vec![Ok(frame(1, 2, Message::Arm))]);
}

#[test]
fn reset_to_of_any_length_up_to_the_state_capacity_round_trips() {
    for n in 0..=MAX_STATE_DIM {
        let values: Vec<f32> = (0..n).map(|i| i as f32 * -0.75 + 0.5).collect();
        check(&frame(
            n as u32,
            n as u64,
            Message::ResetTo(ResetTo {
                values: vector(&values),
            }),
        ));
    }
}

#[test]
fn reset_state_details_pack_and_unpack() {
    use ResetStateError::*;
    for reason in [Length, NotFinite, OutOfRange] {
        for index in [0u8, 1, 31, 255] {
            let detail = reset_state_detail(reason, index);
            assert_eq!(parse_reset_state_detail(detail), Some((reason, index)));
        }
    }
    assert_eq!(reset_state_detail(OutOfRange, 2), 0x0302);
    assert_eq!(parse_reset_state_detail(0x0402), None);
    assert_eq!(parse_reset_state_detail(0x1_0102), None);
}
