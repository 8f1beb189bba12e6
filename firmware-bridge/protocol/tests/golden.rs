//! Golden byte vectors: `firmware-bridge/golden/frames.txt` pins the wire format.
//!
//! Each line is `name | fields | frame hex | wire hex`: the frame in readable form, its
//! bytes before COBS (header, payload, CRC) and on the wire (COBS, then `0x00`). The test
//! encodes every frame and compares bytes, decodes every line's wire bytes and compares
//! the frame, and cross-checks CRC and COBS against the independent reference
//! implementations below, so the file is a conformance suite for other implementations.
//! After a deliberate format change (and a `PROTOCOL_VERSION` bump), regenerate it with
//! `HANDFUL_BLESS=1 cargo test -p handful-protocol golden`.

use std::fmt::Write as _;

use crate::common::*;
use handful_protocol::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../golden/frames.txt");

const PREAMBLE: &str = "\
# Golden frames of the handful wire protocol, version 1 (see firmware-bridge/README.md).
# One vector per line, fields separated by ' | ':
#   name | frame fields | frame hex (header, payload, CRC; before COBS) | wire hex (COBS + 0x00)
# f32 values print as the shortest decimal that round-trips; NaN prints its bit pattern.
# Checked by firmware-bridge/protocol/tests/golden.rs; regenerate only on a deliberate
# format change: HANDFUL_BLESS=1 cargo test -p handful-protocol golden
";

#[test]
fn golden_vectors_match_the_committed_file() {
    let expected: String = golden_frames()
        .iter()
        .map(|(name, frame)| {
            let wire = encode_vec(frame);
            format!(
                "{name} | {} | {} | {}\n",
                describe(frame),
                hex(&unstuff(&wire)),
                hex(&wire)
            )
        })
        .collect();
    let expected = format!("{PREAMBLE}{expected}");
    if std::env::var_os("HANDFUL_BLESS").is_some() {
        std::fs::write(PATH, &expected).expect("write golden file");
    }
    let committed = std::fs::read_to_string(PATH).expect("golden file exists");

    let frames = golden_frames();
    let lines: Vec<&str> = committed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), frames.len(), "one line per golden frame");
    for (line, (name, frame)) in lines.iter().zip(&frames) {
        let [file_name, fields, raw_hex, wire_hex] = line.split(" | ").collect::<Vec<_>>()[..]
        else {
            panic!("malformed line {line:?}");
        };
        assert_eq!(file_name, *name, "vectors in order");
        assert_eq!(fields, describe(frame), "{name}: fields");
        let raw = unhex(raw_hex);
        let wire = unhex(wire_hex);

        // Encoding gives exactly the committed bytes.
        assert_eq!(hex(&encode_vec(frame)), wire_hex, "{name}: encode");
        // Decoding the committed bytes gives exactly the frame.
        let decoded = decode_one(&wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            same_bits(&decoded, frame),
            "{name}: decode gave {decoded:?}"
        );
        if !has_nan(frame) {
            assert_eq!(&decoded, frame, "{name}: decode");
        }
        // The bytes agree with the reference CRC and COBS below.
        let (body, crc) = raw.split_at(raw.len() - CRC_LEN);
        assert_eq!(crc, reference_crc32(body).to_le_bytes(), "{name}: CRC");
        assert_eq!(reference_cobs(&raw), wire, "{name}: COBS");
    }
    assert_eq!(
        committed, expected,
        "file text (rerun with HANDFUL_BLESS=1 if intended)"
    );
}

#[test]
fn reference_crc_has_the_catalogue_check_value() {
    assert_eq!(reference_crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(b"123456789"),
        0xcbf4_3926
    );
}

/// CRC-32/ISO-HDLC bit by bit: reflected polynomial 0xEDB88320 (0x04C11DB7 reversed),
/// init and xorout 0xFFFFFFFF.
fn reference_crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Textbook COBS followed by the `0x00` delimiter (frames are under 254 bytes, so no
/// block is ever full).
fn reference_cobs(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in raw.split(|&b| b == 0) {
        assert!(block.len() < 254);
        out.push(block.len() as u8 + 1);
        out.extend_from_slice(block);
    }
    out.push(0);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn float(value: f32) -> String {
    if value.is_nan() {
        format!("NaN(0x{:08x})", value.to_bits())
    } else {
        format!("{value:?}")
    }
}

fn floats(values: &[f32]) -> String {
    let items: Vec<String> = values.iter().map(|&v| float(v)).collect();
    format!("[{}]", items.join(", "))
}

/// The frame in the readable form of the golden file's second column.
fn describe(frame: &Frame) -> String {
    let message = match &frame.message {
        Message::Hello(m) => {
            format!(
                "Hello{{protocol_min={} protocol_max={}}}",
                m.protocol_min, m.protocol_max
            )
        }
        Message::Capabilities(m) => format!(
            "Capabilities{{protocol={} robot_id={:?} firmware_version={}.{}.{} state_dim={} \
             action_dim={} control_period_us={} watchdog_timeout_us={} \
             heartbeat_interval_us={} capabilities=0x{:08x}}}",
            m.protocol,
            m.robot_id.as_str(),
            m.firmware_version[0],
            m.firmware_version[1],
            m.firmware_version[2],
            m.state_dim,
            m.action_dim,
            m.control_period_us,
            m.watchdog_timeout_us,
            m.heartbeat_interval_us,
            m.capabilities
        ),
        Message::ChannelInfo(m) => format!(
            "ChannelInfo{{kind={:?}({}) index={} name={:?} unit={:?} min={} max={} safe={}}}",
            m.kind,
            m.kind as u8,
            m.index,
            m.name.as_str(),
            m.unit.as_str(),
            float(m.min),
            float(m.max),
            float(m.safe)
        ),
        Message::State(m) => format!(
            "State{{arm_state={:?}({}) fault_flags=0x{:08x} last_command_seq={} values={}}}",
            m.arm_state,
            m.arm_state as u8,
            m.fault_flags,
            m.last_command_seq,
            floats(m.values.as_slice())
        ),
        Message::Command(m) => format!(
            "Command{{seq={} valid_until_us={} values={}}}",
            m.seq,
            m.valid_until_us,
            floats(m.values.as_slice())
        ),
        Message::Heartbeat(m) => format!(
            "Heartbeat{{arm_state={:?}({}) fault_flags=0x{:08x}}}",
            m.arm_state, m.arm_state as u8, m.fault_flags
        ),
        Message::Arm => "Arm".to_string(),
        Message::Disarm => "Disarm".to_string(),
        Message::EStop => "EStop".to_string(),
        Message::Reset(m) => format!("Reset{{seed=0x{:016x}}}", m.seed),
        Message::ResetTo(m) => format!("ResetTo{{values={}}}", floats(m.values.as_slice())),
        Message::Teleop(m) => {
            format!(
                "Teleop{{buttons=0x{:08x} axes={}}}",
                m.buttons,
                floats(m.axes.as_slice())
            )
        }
        Message::Fault(m) => {
            format!(
                "Fault{{code={:?}({}) detail={}}}",
                m.code, m.code as u16, m.detail
            )
        }
    };
    format!(
        "seq={} timestamp_us={} kind=0x{:02x} {message}",
        frame.seq,
        frame.timestamp_us,
        frame.message.kind() as u8
    )
}
