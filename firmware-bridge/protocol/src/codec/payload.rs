//! Payload layouts of every message kind: the byte tables of `firmware-bridge/README.md`.
//!
//! Each payload is a fixed part, optionally ending in a `u8` element count followed by
//! that many little-endian `f32`s. Reading validates the exact length, every enum byte
//! and every string; `f32` values are carried bit-exactly (NaN included) and judged by
//! the receiver, never here.

use super::{Reader, Writer};
use crate::{
    ArmState, Capabilities, ChannelInfo, ChannelKind, Command, Fault, FaultCode, FixedStr,
    Heartbeat, Hello, MAX_ACTION_DIM, MAX_PAYLOAD_LEN, MAX_STATE_DIM, MAX_TELEOP_AXES, Message,
    MessageKind, Reset, ResetTo, State, Teleop, Vector,
};

use super::DecodeError;

/// Every kind, for the size check below and for tests.
const ALL_KINDS: [MessageKind; 13] = [
    MessageKind::Hello,
    MessageKind::Capabilities,
    MessageKind::ChannelInfo,
    MessageKind::State,
    MessageKind::Command,
    MessageKind::Heartbeat,
    MessageKind::Arm,
    MessageKind::Disarm,
    MessageKind::EStop,
    MessageKind::Reset,
    MessageKind::ResetTo,
    MessageKind::Teleop,
    MessageKind::Fault,
];

/// `(fixed bytes, f32 capacity)` of a kind's payload. When the capacity is non-zero the
/// last fixed byte is the element count `n` and `4 × n` bytes of `f32` follow.
const fn layout(kind: MessageKind) -> (usize, usize) {
    match kind {
        MessageKind::Hello => (2, 0),
        MessageKind::Capabilities => (46, 0),
        MessageKind::ChannelInfo => (46, 0),
        MessageKind::State => (10, MAX_STATE_DIM),
        MessageKind::Command => (13, MAX_ACTION_DIM),
        MessageKind::Heartbeat => (5, 0),
        MessageKind::Arm | MessageKind::Disarm | MessageKind::EStop => (0, 0),
        MessageKind::Reset => (8, 0),
        MessageKind::ResetTo => (1, MAX_STATE_DIM),
        MessageKind::Teleop => (5, MAX_TELEOP_AXES),
        MessageKind::Fault => (6, 0),
    }
}

// The frame writer relies on this: no payload can outgrow `MAX_PAYLOAD_LEN`.
const _: () = {
    let mut i = 0;
    while i < ALL_KINDS.len() {
        let (fixed, capacity) = layout(ALL_KINDS[i]);
        assert!(fixed + 4 * capacity <= MAX_PAYLOAD_LEN);
        i += 1;
    }
};

/// Appends the payload of `message`.
pub(super) fn write(message: &Message, w: &mut Writer<'_>) {
    match message {
        Message::Hello(m) => {
            w.u8(m.protocol_min);
            w.u8(m.protocol_max);
        }
        Message::Capabilities(m) => {
            w.u8(m.protocol);
            write_str(w, &m.robot_id);
            w.bytes(&m.firmware_version);
            w.u8(m.state_dim);
            w.u8(m.action_dim);
            w.u32(m.control_period_us);
            w.u32(m.watchdog_timeout_us);
            w.u32(m.heartbeat_interval_us);
            w.u32(m.capabilities);
        }
        Message::ChannelInfo(m) => {
            w.u8(m.kind as u8);
            w.u8(m.index);
            write_str(w, &m.name);
            write_str(w, &m.unit);
            w.f32(m.min);
            w.f32(m.max);
            w.f32(m.safe);
        }
        Message::State(m) => {
            w.u8(m.arm_state as u8);
            w.u32(m.fault_flags);
            w.u32(m.last_command_seq);
            write_vector(w, &m.values);
        }
        Message::Command(m) => {
            w.u32(m.seq);
            w.u64(m.valid_until_us);
            write_vector(w, &m.values);
        }
        Message::Heartbeat(m) => {
            w.u8(m.arm_state as u8);
            w.u32(m.fault_flags);
        }
        Message::Arm | Message::Disarm | Message::EStop => {}
        Message::Reset(m) => w.u64(m.seed),
        Message::ResetTo(m) => write_vector(w, &m.values),
        Message::Teleop(m) => {
            w.u32(m.buttons);
            write_vector(w, &m.axes);
        }
        Message::Fault(m) => {
            w.u16(m.code as u16);
            w.u32(m.detail);
        }
    }
}

/// Exactly `N` bytes: the UTF-8 text, then zeros.
fn write_str<const N: usize>(w: &mut Writer<'_>, text: &FixedStr<N>) {
    let mut padded = [0u8; N];
    let bytes = text.as_str().as_bytes();
    padded[..bytes.len()].copy_from_slice(bytes);
    w.bytes(&padded);
}

/// `n: u8` then `n` `f32`s.
fn write_vector<const N: usize>(w: &mut Writer<'_>, values: &Vector<N>) {
    w.u8(values.len() as u8);
    for &value in values.as_slice() {
        w.f32(value);
    }
}

/// Parses and validates the payload of a `kind` frame.
pub(super) fn read(kind: MessageKind, payload: &[u8]) -> Result<Message, DecodeError> {
    let len = payload.len();
    let wrong_length = DecodeError::Length {
        kind,
        len: len as u16,
    };
    let (fixed, capacity) = layout(kind);
    if len < fixed || (capacity == 0 && len != fixed) {
        return Err(wrong_length);
    }
    if capacity > 0 {
        let count_offset = fixed - 1;
        let count = usize::from(payload.get(count_offset).copied().unwrap_or(0));
        if count > capacity {
            return Err(DecodeError::InvalidField {
                kind,
                offset: count_offset as u16,
            });
        }
        if len != fixed + 4 * count {
            return Err(wrong_length);
        }
    }

    let mut f = Fields {
        kind,
        r: Reader::new(payload),
    };
    Ok(match kind {
        MessageKind::Hello => Message::Hello(Hello {
            protocol_min: f.u8()?,
            protocol_max: f.u8()?,
        }),
        MessageKind::Capabilities => Message::Capabilities(Capabilities {
            protocol: f.u8()?,
            robot_id: f.string()?,
            firmware_version: [f.u8()?, f.u8()?, f.u8()?],
            state_dim: f.count(MAX_STATE_DIM)?,
            action_dim: f.count(MAX_ACTION_DIM)?,
            control_period_us: f.u32()?,
            watchdog_timeout_us: f.u32()?,
            heartbeat_interval_us: f.u32()?,
            capabilities: f.u32()?,
        }),
        MessageKind::ChannelInfo => {
            let channel_kind = f.channel_kind()?;
            let capacity = match channel_kind {
                ChannelKind::State => MAX_STATE_DIM,
                ChannelKind::Action => MAX_ACTION_DIM,
            };
            Message::ChannelInfo(ChannelInfo {
                kind: channel_kind,
                // An index is valid when below its kind's capacity.
                index: f.count(capacity - 1)?,
                name: f.string()?,
                unit: f.string()?,
                min: f.f32()?,
                max: f.f32()?,
                safe: f.f32()?,
            })
        }
        MessageKind::State => Message::State(State {
            arm_state: f.arm_state()?,
            fault_flags: f.u32()?,
            last_command_seq: f.u32()?,
            values: f.vector()?,
        }),
        MessageKind::Command => Message::Command(Command {
            seq: f.u32()?,
            valid_until_us: f.u64()?,
            values: f.vector()?,
        }),
        MessageKind::Heartbeat => Message::Heartbeat(Heartbeat {
            arm_state: f.arm_state()?,
            fault_flags: f.u32()?,
        }),
        MessageKind::Arm => Message::Arm,
        MessageKind::Disarm => Message::Disarm,
        MessageKind::EStop => Message::EStop,
        MessageKind::Reset => Message::Reset(Reset { seed: f.u64()? }),
        MessageKind::ResetTo => Message::ResetTo(ResetTo {
            values: f.vector()?,
        }),
        MessageKind::Teleop => Message::Teleop(Teleop {
            buttons: f.u32()?,
            axes: f.vector()?,
        }),
        MessageKind::Fault => Message::Fault(Fault {
            code: f.fault_code()?,
            detail: f.u32()?,
        }),
    })
}

/// Typed reads over one payload, turning every problem into a [`DecodeError`] that
/// names the kind and the field's offset.
struct Fields<'a> {
    kind: MessageKind,
    r: Reader<'a>,
}

impl Fields<'_> {
    /// The payload was length-checked before any read, so running short is a bug in
    /// [`layout`]; it is still reported, not panicked on.
    fn short(&self) -> DecodeError {
        DecodeError::Length {
            kind: self.kind,
            len: self.r.bytes.len() as u16,
        }
    }

    fn invalid_at(&self, offset: usize) -> DecodeError {
        DecodeError::InvalidField {
            kind: self.kind,
            offset: offset as u16,
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.r.u8().ok_or_else(|| self.short())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.r.u32().ok_or_else(|| self.short())
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.r.u64().ok_or_else(|| self.short())
    }

    fn f32(&mut self) -> Result<f32, DecodeError> {
        self.r.f32().ok_or_else(|| self.short())
    }

    /// A `u8` that must not exceed `max`.
    fn count(&mut self, max: usize) -> Result<u8, DecodeError> {
        let offset = self.r.pos;
        let value = self.u8()?;
        if usize::from(value) > max {
            return Err(self.invalid_at(offset));
        }
        Ok(value)
    }

    fn arm_state(&mut self) -> Result<ArmState, DecodeError> {
        let offset = self.r.pos;
        ArmState::from_u8(self.u8()?).ok_or_else(|| self.invalid_at(offset))
    }

    fn channel_kind(&mut self) -> Result<ChannelKind, DecodeError> {
        let offset = self.r.pos;
        match self.u8()? {
            0 => Ok(ChannelKind::State),
            1 => Ok(ChannelKind::Action),
            _ => Err(self.invalid_at(offset)),
        }
    }

    fn fault_code(&mut self) -> Result<FaultCode, DecodeError> {
        let offset = self.r.pos;
        let code = self.r.u16().ok_or_else(|| self.short())?;
        FaultCode::from_u16(code).ok_or_else(|| self.invalid_at(offset))
    }

    /// `N` bytes: UTF-8 text without NUL, then only zeros up to `N`.
    fn string<const N: usize>(&mut self) -> Result<FixedStr<N>, DecodeError> {
        let offset = self.r.pos;
        let bytes: [u8; N] = self.r.array().ok_or_else(|| self.short())?;
        let text_len = bytes.iter().position(|&b| b == 0).unwrap_or(N);
        let (text, padding) = bytes.split_at(text_len);
        if let Some(bad) = padding.iter().position(|&b| b != 0) {
            return Err(self.invalid_at(offset + text_len + bad));
        }
        let text =
            core::str::from_utf8(text).map_err(|e| self.invalid_at(offset + e.valid_up_to()))?;
        FixedStr::new(text).ok_or_else(|| self.invalid_at(offset))
    }

    /// `n: u8` then `n` `f32`s, bit-exact.
    fn vector<const N: usize>(&mut self) -> Result<Vector<N>, DecodeError> {
        let offset = self.r.pos;
        let count = usize::from(self.count(N)?);
        let mut values = [0f32; N];
        for value in values.iter_mut().take(count) {
            *value = self.f32()?;
        }
        Vector::from_slice(&values[..count]).ok_or_else(|| self.invalid_at(offset))
    }
}
