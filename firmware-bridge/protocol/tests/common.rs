//! Shared test helpers: frame builders, the golden frame list, hand-built raw frames
//! and proptest strategies. Tests may allocate; the crate under test may not.

use handful_protocol::*;
use proptest::prelude::*;

pub fn name(text: &str) -> Name {
    Name::new(text).expect("test name fits")
}

pub fn unit(text: &str) -> Unit {
    Unit::new(text).expect("test unit fits")
}

pub fn vector<const N: usize>(values: &[f32]) -> Vector<N> {
    Vector::from_slice(values).expect("test vector fits")
}

pub fn frame(seq: u32, timestamp_us: u64, message: Message) -> Frame {
    Frame {
        seq,
        timestamp_us,
        message,
    }
}

/// `encode` into a maximal buffer.
pub fn encode_vec(frame: &Frame) -> Vec<u8> {
    let mut out = [0u8; MAX_ENCODED_LEN];
    let n = encode(frame, &mut out).expect("MAX_ENCODED_LEN always suffices");
    out[..n].to_vec()
}

/// Every result a fresh decoder yields for `bytes`, in order.
pub fn decode_all(bytes: &[u8]) -> Vec<Result<Frame, DecodeError>> {
    let mut decoder = Decoder::new();
    bytes.iter().filter_map(|&b| decoder.push(b)).collect()
}

/// The single result for `bytes`, which must end in the only delimiter that yields one.
pub fn decode_one(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let mut decoder = Decoder::new();
    let (last, body) = bytes.split_last().expect("non-empty input");
    for &b in body {
        assert_eq!(
            decoder.push(b),
            None,
            "result before the final byte of {bytes:02x?}"
        );
    }
    decoder
        .push(*last)
        .expect("a result at the final delimiter")
}

/// Whether two frames are equal bit for bit (NaN payloads included): the encoding is
/// injective, so equal bytes mean equal fields.
pub fn same_bits(a: &Frame, b: &Frame) -> bool {
    encode_vec(a) == encode_vec(b)
}

/// The unstuffed frame (header, payload, CRC) inside an encoded frame.
pub fn unstuff(encoded: &[u8]) -> Vec<u8> {
    let mut buf = encoded[..encoded.len() - 1].to_vec();
    let n = cobs::decode_in_place(&mut buf).expect("valid COBS");
    buf.truncate(n);
    buf
}

/// `body` (header and payload) with its CRC appended, COBS-stuffed and delimited: a
/// well-framed frame whatever the body says.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(body);
    let mut raw = body.to_vec();
    raw.extend_from_slice(&crc.to_le_bytes());
    stuff(&raw)
}

/// COBS-stuff `raw` as is and append the delimiter.
pub fn stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; cobs::max_encoding_length(raw.len()) + 1];
    let n = cobs::try_encode(raw, &mut out).expect("sized buffer");
    out.truncate(n);
    out.push(0);
    out
}

/// A header with `version`, `kind`, seq 7 and timestamp 1000, followed by `payload`.
pub fn body(version: u8, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![version, kind];
    out.extend_from_slice(&7u32.to_le_bytes());
    out.extend_from_slice(&1000u64.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The committed golden vectors, by name. Every message kind appears, plus edge cases
/// (NaN and infinities, full-capacity vectors, empty vectors, wrapping counters, strings
/// that fill their field, multi-byte UTF-8).
pub fn golden_frames() -> Vec<(&'static str, Frame)> {
    let ramp = |n: usize, step: f32| (0..n).map(|i| i as f32 * step - 1.0).collect::<Vec<_>>();
    vec![
        (
            "hello",
            frame(
                0,
                0,
                Message::Hello(Hello {
                    protocol_min: 1,
                    protocol_max: 1,
                }),
            ),
        ),
        (
            "capabilities",
            frame(
                1,
                1_000,
                Message::Capabilities(Capabilities {
                    protocol: 1,
                    robot_id: name("cartpole-sim"),
                    firmware_version: [0, 1, 0],
                    state_dim: 4,
                    action_dim: 1,
                    control_period_us: 10_000,
                    watchdog_timeout_us: 50_000,
                    heartbeat_interval_us: 100_000,
                    capabilities: CAP_RESET | CAP_LOCKSTEP,
                }),
            ),
        ),
        (
            "channel_info_state",
            frame(
                2,
                1_000,
                Message::ChannelInfo(ChannelInfo {
                    kind: ChannelKind::State,
                    index: 0,
                    name: name("cart_position"),
                    unit: unit("m"),
                    min: 0.0,
                    max: 0.0,
                    safe: 0.0,
                }),
            ),
        ),
        (
            "channel_info_action",
            frame(
                3,
                1_000,
                Message::ChannelInfo(ChannelInfo {
                    kind: ChannelKind::Action,
                    index: 0,
                    name: name("cart_force"),
                    unit: unit("N"),
                    min: -10.0,
                    max: 10.0,
                    safe: 0.0,
                }),
            ),
        ),
        (
            "channel_info_utf8_full_name",
            frame(
                4,
                1_000,
                Message::ChannelInfo(ChannelInfo {
                    kind: ChannelKind::State,
                    index: 31,
                    name: name("θ_pole_from_upright_rad"),
                    unit: unit("rad/s²"),
                    min: 0.0,
                    max: 0.0,
                    safe: 0.0,
                }),
            ),
        ),
        (
            "state",
            frame(
                100,
                1_234_567,
                Message::State(State {
                    arm_state: ArmState::Armed,
                    fault_flags: 0,
                    last_command_seq: 41,
                    values: vector(&[0.1, -0.2, std::f32::consts::PI, 0.0]),
                }),
            ),
        ),
        (
            "state_nan_inf",
            frame(
                101,
                1_244_567,
                Message::State(State {
                    arm_state: ArmState::Faulted,
                    fault_flags: FAULT_WATCHDOG | FAULT_SENSOR,
                    last_command_seq: 41,
                    values: vector(&[
                        f32::from_bits(0x7fc0_0000),
                        f32::from_bits(0xffa0_0001),
                        f32::INFINITY,
                        f32::NEG_INFINITY,
                        -0.0,
                        f32::MIN_POSITIVE,
                    ]),
                }),
            ),
        ),
        (
            "state_full",
            frame(
                102,
                1_254_567,
                Message::State(State {
                    arm_state: ArmState::EStopped,
                    fault_flags: FAULT_ESTOP,
                    last_command_seq: 0,
                    values: vector(&ramp(MAX_STATE_DIM, 0.125)),
                }),
            ),
        ),
        (
            "state_empty",
            frame(
                103,
                0,
                Message::State(State {
                    arm_state: ArmState::Disarmed,
                    fault_flags: 0,
                    last_command_seq: 0,
                    values: Vector::new(),
                }),
            ),
        ),
        (
            "command",
            frame(
                42,
                2_000_000,
                Message::Command(Command {
                    seq: 42,
                    valid_until_us: 1_264_567,
                    values: vector(&[2.5]),
                }),
            ),
        ),
        (
            "command_full",
            frame(
                43,
                2_010_000,
                Message::Command(Command {
                    seq: 43,
                    valid_until_us: 1_274_567,
                    values: vector(&ramp(MAX_ACTION_DIM, 0.25)),
                }),
            ),
        ),
        (
            "heartbeat_host",
            frame(
                44,
                2_020_000,
                Message::Heartbeat(Heartbeat {
                    arm_state: ArmState::Disarmed,
                    fault_flags: 0,
                }),
            ),
        ),
        (
            "heartbeat_firmware",
            frame(
                104,
                1_300_000,
                Message::Heartbeat(Heartbeat {
                    arm_state: ArmState::Armed,
                    fault_flags: FAULT_BAD_COMMAND,
                }),
            ),
        ),
        (
            "heartbeat_wrapping_counters",
            frame(
                u32::MAX,
                u64::MAX,
                Message::Heartbeat(Heartbeat {
                    arm_state: ArmState::Disarmed,
                    fault_flags: 0,
                }),
            ),
        ),
        ("arm", frame(45, 2_030_000, Message::Arm)),
        ("disarm", frame(46, 2_040_000, Message::Disarm)),
        ("estop", frame(47, 2_050_000, Message::EStop)),
        (
            "reset",
            frame(
                48,
                2_060_000,
                Message::Reset(Reset {
                    seed: 0xdead_beef_cafe_f00d,
                }),
            ),
        ),
        (
            "teleop",
            frame(
                105,
                1_310_000,
                Message::Teleop(Teleop {
                    buttons: 0b101,
                    axes: vector(&[0.5, -1.0, 0.0, 1.0]),
                }),
            ),
        ),
        (
            "fault_version_mismatch",
            frame(
                106,
                1_320_000,
                Message::Fault(Fault {
                    code: FaultCode::VersionMismatch,
                    detail: 1,
                }),
            ),
        ),
        (
            "fault_bad_command",
            frame(
                107,
                1_330_000,
                Message::Fault(Fault {
                    code: FaultCode::BadCommand,
                    detail: 42,
                }),
            ),
        ),
        // Reset to a given state (CAP_RESET_TO), added to version 1 behind its bit.
        (
            "capabilities_reset_to",
            frame(
                108,
                1_340_000,
                Message::Capabilities(Capabilities {
                    protocol: 1,
                    robot_id: name("cartpole-sim"),
                    firmware_version: [0, 1, 0],
                    state_dim: 4,
                    action_dim: 1,
                    control_period_us: 40_000,
                    watchdog_timeout_us: 200_000,
                    heartbeat_interval_us: 100_000,
                    capabilities: CAP_RESET | CAP_LOCKSTEP | CAP_RESET_TO,
                }),
            ),
        ),
        (
            "reset_to",
            frame(
                49,
                2_070_000,
                Message::ResetTo(ResetTo {
                    values: vector(&[0.5, std::f32::consts::PI, -0.25, 1.5]),
                }),
            ),
        ),
        (
            "reset_to_full",
            frame(
                50,
                2_080_000,
                Message::ResetTo(ResetTo {
                    values: vector(&ramp(MAX_STATE_DIM, 0.125)),
                }),
            ),
        ),
        (
            "reset_to_empty",
            frame(
                51,
                2_090_000,
                Message::ResetTo(ResetTo {
                    values: Vector::new(),
                }),
            ),
        ),
        (
            "fault_unsupported_reset_to",
            frame(
                109,
                1_350_000,
                Message::Fault(Fault {
                    code: FaultCode::Unsupported,
                    detail: 0x34,
                }),
            ),
        ),
        (
            "fault_bad_reset_state",
            frame(
                110,
                1_360_000,
                Message::Fault(Fault {
                    code: FaultCode::BadResetState,
                    detail: reset_state_detail(ResetStateError::OutOfRange, 0),
                }),
            ),
        ),
    ]
}

/// Whether any `f32` of the frame is NaN (so `==` cannot compare it).
pub fn has_nan(frame: &Frame) -> bool {
    let nan = |values: &[f32]| values.iter().any(|v| v.is_nan());
    match &frame.message {
        Message::ChannelInfo(m) => nan(&[m.min, m.max, m.safe]),
        Message::State(m) => nan(m.values.as_slice()),
        Message::Command(m) => nan(m.values.as_slice()),
        Message::Teleop(m) => nan(m.axes.as_slice()),
        Message::ResetTo(m) => nan(m.values.as_slice()),
        _ => false,
    }
}

fn arb_f32() -> impl Strategy<Value = f32> {
    any::<u32>().prop_map(f32::from_bits)
}

fn arb_vector<const N: usize>() -> impl Strategy<Value = Vector<N>> {
    prop::collection::vec(arb_f32(), 0..=N).prop_map(|v| vector(&v))
}

fn arb_str<const N: usize>() -> impl Strategy<Value = FixedStr<N>> {
    "\\PC{0,12}".prop_filter_map("fits the field", |s: String| FixedStr::<N>::new(&s))
}

fn arb_arm_state() -> impl Strategy<Value = ArmState> {
    prop::sample::select(vec![
        ArmState::Disarmed,
        ArmState::Armed,
        ArmState::EStopped,
        ArmState::Faulted,
    ])
}

fn arb_fault_code() -> impl Strategy<Value = FaultCode> {
    (1u16..=9).prop_map(|c| FaultCode::from_u16(c).expect("codes 1..=9 exist"))
}

/// Any valid message of any kind, with arbitrary `f32` bit patterns.
pub fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Message::Hello(Hello {
            protocol_min: a,
            protocol_max: b
        })),
        (
            any::<u8>(),
            arb_str(),
            any::<[u8; 3]>(),
            0..=MAX_STATE_DIM as u8,
            0..=MAX_ACTION_DIM as u8,
            any::<[u32; 4]>()
        )
            .prop_map(|(protocol, robot_id, firmware_version, s, a, t)| {
                Message::Capabilities(Capabilities {
                    protocol,
                    robot_id,
                    firmware_version,
                    state_dim: s,
                    action_dim: a,
                    control_period_us: t[0],
                    watchdog_timeout_us: t[1],
                    heartbeat_interval_us: t[2],
                    capabilities: t[3],
                })
            }),
        (
            any::<bool>(),
            0u8..16,
            arb_str(),
            arb_str(),
            arb_f32(),
            arb_f32(),
            arb_f32()
        )
            .prop_map(|(is_action, index, name, unit, min, max, safe)| {
                Message::ChannelInfo(ChannelInfo {
                    kind: if is_action {
                        ChannelKind::Action
                    } else {
                        ChannelKind::State
                    },
                    index,
                    name,
                    unit,
                    min,
                    max,
                    safe,
                })
            }),
        (arb_arm_state(), any::<u32>(), any::<u32>(), arb_vector()).prop_map(
            |(arm_state, fault_flags, last_command_seq, values)| {
                Message::State(State {
                    arm_state,
                    fault_flags,
                    last_command_seq,
                    values,
                })
            }
        ),
        (any::<u32>(), any::<u64>(), arb_vector()).prop_map(|(seq, valid_until_us, values)| {
            Message::Command(Command {
                seq,
                valid_until_us,
                values,
            })
        }),
        (arb_arm_state(), any::<u32>()).prop_map(|(arm_state, fault_flags)| {
            Message::Heartbeat(Heartbeat {
                arm_state,
                fault_flags,
            })
        }),
        Just(Message::Arm),
        Just(Message::Disarm),
        Just(Message::EStop),
        any::<u64>().prop_map(|seed| Message::Reset(Reset { seed })),
        arb_vector().prop_map(|values| Message::ResetTo(ResetTo { values })),
        (any::<u32>(), arb_vector())
            .prop_map(|(buttons, axes)| Message::Teleop(Teleop { buttons, axes })),
        (arb_fault_code(), any::<u32>())
            .prop_map(|(code, detail)| Message::Fault(Fault { code, detail })),
    ]
}

pub fn arb_frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), any::<u64>(), arb_message()).prop_map(|(seq, timestamp_us, message)| Frame {
        seq,
        timestamp_us,
        message,
    })
}
