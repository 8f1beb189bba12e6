"""The handful wire protocol, version 1, in Python: frames, COBS, CRC-32, every message.

A second implementation of firmware-bridge/README.md (sections 1-6), checked against
firmware-bridge/golden/frames.txt (tests/test_protocol.py). Floats are carried as their
32-bit patterns (README section 4): every f32 vector of a message is a tuple of ints
(`bits`), converted to a Python float only where a value is used (`f32_from_bits`), so
a decoded frame re-encodes to its own bytes, signalling NaNs included.

Decoding never raises on bad bytes: `Decoder.push` returns a `DecodeError` value for a
frame that fails, in the README's validation order, and resynchronises at the next 0x00.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Optional, Union

PROTOCOL_VERSION = 1
HEADER_LEN = 14
CRC_LEN = 4
MAX_PAYLOAD_LEN = 160
MAX_FRAME_LEN = HEADER_LEN + MAX_PAYLOAD_LEN + CRC_LEN  # 178
MAX_ENCODED_LEN = 180
MAX_STATE_DIM = 32
MAX_ACTION_DIM = 16
MAX_TELEOP_AXES = 8
NAME_LEN = 24
UNIT_LEN = 8

# Message kinds (README section 5).
HELLO = 0x01
CAPABILITIES = 0x02
CHANNEL_INFO = 0x03
STATE = 0x10
COMMAND = 0x11
HEARTBEAT = 0x20
ARM = 0x30
DISARM = 0x31
ESTOP = 0x32
RESET = 0x33
RESET_TO = 0x34
TELEOP = 0x40
FAULT = 0x50

# Arm states.
DISARMED, ARMED, ESTOPPED, FAULTED = 0, 1, 2, 3
# Capability bits.
CAP_RESET = 1 << 0
CAP_TELEOP = 1 << 1
CAP_LOCKSTEP = 1 << 2
CAP_RESET_TO = 1 << 3
# Fault flags.
FAULT_WATCHDOG = 1 << 0
FAULT_HOST_TIMEOUT = 1 << 1
FAULT_ESTOP = 1 << 2
FAULT_BAD_COMMAND = 1 << 3
FAULT_SENSOR = 1 << 4
FAULT_LIMIT = 1 << 5
# Fault codes.
WATCHDOG, HOST_TIMEOUT, ESTOP_CODE, BAD_COMMAND, SENSOR, LIMIT = 1, 2, 3, 4, 5, 6
UNSUPPORTED, VERSION_MISMATCH, BAD_RESET_STATE = 7, 8, 9
# BadResetState reasons (detail = reason << 8 | index).
RESET_LENGTH, RESET_NOT_FINITE, RESET_OUT_OF_RANGE = 1, 2, 3


def f32_bits(value: float) -> int:
    """The bit pattern of `value` rounded to binary32 (beyond its range: ±inf, as a
    cast in Rust gives)."""
    try:
        return struct.unpack("<I", struct.pack("<f", value))[0]
    except OverflowError:
        return 0x7F800000 if value > 0 else 0xFF800000


def f32_from_bits(bits: int) -> float:
    """The value of a binary32 bit pattern (a signalling NaN comes back quiet: use only
    to compute, never to re-encode)."""
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def f32_is_finite(bits: int) -> bool:
    return (bits >> 23) & 0xFF != 0xFF


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (zlib's)."""
    return zlib.crc32(data) & 0xFFFFFFFF


# Messages: frozen dataclasses; f32 vectors as tuples of bit patterns.


@dataclasses.dataclass(frozen=True)
class Hello:
    protocol_min: int
    protocol_max: int


@dataclasses.dataclass(frozen=True)
class Capabilities:
    protocol: int
    robot_id: str
    firmware_version: tuple
    state_dim: int
    action_dim: int
    control_period_us: int
    watchdog_timeout_us: int
    heartbeat_interval_us: int
    capabilities: int


@dataclasses.dataclass(frozen=True)
class ChannelInfo:
    kind: int  # 0 state, 1 action
    index: int
    name: str
    unit: str
    min_bits: int
    max_bits: int
    safe_bits: int


@dataclasses.dataclass(frozen=True)
class State:
    arm_state: int
    fault_flags: int
    last_command_seq: int
    bits: tuple


@dataclasses.dataclass(frozen=True)
class Command:
    seq: int
    valid_until_us: int
    bits: tuple


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    arm_state: int
    fault_flags: int


@dataclasses.dataclass(frozen=True)
class Empty:
    """Arm, Disarm, EStop: no payload; the frame's kind says which."""


@dataclasses.dataclass(frozen=True)
class Reset:
    seed: int


@dataclasses.dataclass(frozen=True)
class ResetTo:
    bits: tuple


@dataclasses.dataclass(frozen=True)
class Teleop:
    buttons: int
    axes_bits: tuple


@dataclasses.dataclass(frozen=True)
class Fault:
    code: int
    detail: int


Message = Union[
    Hello,
    Capabilities,
    ChannelInfo,
    State,
    Command,
    Heartbeat,
    Empty,
    Reset,
    ResetTo,
    Teleop,
    Fault,
]


@dataclasses.dataclass(frozen=True)
class Frame:
    kind: int
    seq: int
    timestamp_us: int
    message: Message


@dataclasses.dataclass(frozen=True)
class DecodeError:
    """Why one frame was discarded: `what` is the README's variant name (Cobs, TooShort,
    Crc, UnsupportedVersion, UnknownKind, Length, InvalidField, Overflow)."""

    what: str
    detail: str = ""


class EncodeError(ValueError):
    pass


def _str_field(text: str, size: int) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > size:
        raise EncodeError(f"{text!r} is {len(raw)} bytes of UTF-8, at most {size} fit")
    return raw + bytes(size - len(raw))


def _vector(bits: tuple, capacity: int) -> bytes:
    if len(bits) > capacity:
        raise EncodeError(f"{len(bits)} values, at most {capacity} fit")
    return bytes([len(bits)]) + b"".join(struct.pack("<I", b) for b in bits)


def payload(kind: int, m: Message) -> bytes:
    """The payload bytes of message `m` of `kind`."""
    if kind == HELLO:
        return struct.pack("<BB", m.protocol_min, m.protocol_max)
    if kind == CAPABILITIES:
        major, minor, patch = m.firmware_version
        return (
            struct.pack("<B", m.protocol)
            + _str_field(m.robot_id, NAME_LEN)
            + struct.pack(
                "<BBBBBIIII",
                major,
                minor,
                patch,
                m.state_dim,
                m.action_dim,
                m.control_period_us,
                m.watchdog_timeout_us,
                m.heartbeat_interval_us,
                m.capabilities,
            )
        )
    if kind == CHANNEL_INFO:
        return (
            struct.pack("<BB", m.kind, m.index)
            + _str_field(m.name, NAME_LEN)
            + _str_field(m.unit, UNIT_LEN)
            + struct.pack("<III", m.min_bits, m.max_bits, m.safe_bits)
        )
    if kind == STATE:
        return struct.pack("<BII", m.arm_state, m.fault_flags, m.last_command_seq) + _vector(
            m.bits, MAX_STATE_DIM
        )
    if kind == COMMAND:
        return struct.pack("<IQ", m.seq, m.valid_until_us) + _vector(m.bits, MAX_ACTION_DIM)
    if kind == HEARTBEAT:
        return struct.pack("<BI", m.arm_state, m.fault_flags)
    if kind in (ARM, DISARM, ESTOP):
        return b""
    if kind == RESET:
        return struct.pack("<Q", m.seed)
    if kind == RESET_TO:
        return _vector(m.bits, MAX_STATE_DIM)
    if kind == TELEOP:
        return struct.pack("<I", m.buttons) + _vector(m.axes_bits, MAX_TELEOP_AXES)
    if kind == FAULT:
        return struct.pack("<HI", m.code, m.detail)
    raise EncodeError(f"unknown kind 0x{kind:02x}")


def frame_bytes(frame: Frame) -> bytes:
    """The frame before COBS: header, payload, CRC."""
    body = struct.pack(
        "<BBIQ",
        PROTOCOL_VERSION,
        frame.kind,
        frame.seq & 0xFFFFFFFF,
        frame.timestamp_us & 0xFFFFFFFFFFFFFFFF,
    ) + payload(frame.kind, frame.message)
    return body + struct.pack("<I", crc32(body))


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> Optional[bytes]:
    """`None` when `data` is not valid COBS."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        end = i + code
        if code == 0 or end > len(data):
            return None
        out += data[i + 1 : end]
        i = end
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode(frame: Frame) -> bytes:
    """The frame on the wire: COBS, then the 0x00 delimiter."""
    return cobs_encode(frame_bytes(frame)) + b"\x00"


# Decoding.

_FIXED_LEN = {
    HELLO: 2,
    CAPABILITIES: 46,
    CHANNEL_INFO: 46,
    HEARTBEAT: 5,
    ARM: 0,
    DISARM: 0,
    ESTOP: 0,
    RESET: 8,
    FAULT: 6,
}
# Vector kinds: (fixed part before n, capacity).
_VECTOR = {STATE: (9, MAX_STATE_DIM), COMMAND: (12, MAX_ACTION_DIM), RESET_TO: (0, MAX_STATE_DIM),
           TELEOP: (4, MAX_TELEOP_AXES)}


class _Invalid(Exception):
    def __init__(self, offset: int):
        self.offset = offset


def _read_str(p: bytes, offset: int, size: int) -> str:
    raw = p[offset : offset + size]
    end = raw.find(0)
    if end >= 0 and any(raw[end:]):
        raise _Invalid(offset)
    text = raw if end < 0 else raw[:end]
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid(offset) from None


def _bits(p: bytes, offset: int, n: int) -> tuple:
    return struct.unpack_from(f"<{n}I", p, offset)


def parse_payload(kind: int, p: bytes) -> Union[Message, DecodeError]:
    if kind in _VECTOR:
        fixed, capacity = _VECTOR[kind]
        if len(p) < fixed + 1:
            return DecodeError("Length", f"kind 0x{kind:02x} len {len(p)}")
        n = p[fixed]
        if n > capacity:
            return DecodeError("InvalidField", f"kind 0x{kind:02x} offset {fixed}")
        if len(p) != fixed + 1 + 4 * n:
            return DecodeError("Length", f"kind 0x{kind:02x} len {len(p)}")
        values = _bits(p, fixed + 1, n)
    elif len(p) != _FIXED_LEN[kind]:
        return DecodeError("Length", f"kind 0x{kind:02x} len {len(p)}")
    try:
        if kind == HELLO:
            return Hello(p[0], p[1])
        if kind == CAPABILITIES:
            robot_id = _read_str(p, 1, NAME_LEN)
            major, minor, patch, sd, ad, period, watchdog, heartbeat, caps = struct.unpack_from(
                "<BBBBBIIII", p, 25
            )
            if sd > MAX_STATE_DIM:
                raise _Invalid(28)
            if ad > MAX_ACTION_DIM:
                raise _Invalid(29)
            return Capabilities(p[0], robot_id, (major, minor, patch), sd, ad, period, watchdog,
                                heartbeat, caps)
        if kind == CHANNEL_INFO:
            if p[0] > 1:
                raise _Invalid(0)
            if p[1] >= (MAX_STATE_DIM if p[0] == 0 else MAX_ACTION_DIM):
                raise _Invalid(1)
            name = _read_str(p, 2, NAME_LEN)
            unit = _read_str(p, 26, UNIT_LEN)
            lo, hi, safe = struct.unpack_from("<III", p, 34)
            return ChannelInfo(p[0], p[1], name, unit, lo, hi, safe)
        if kind == STATE:
            if p[0] > 3:
                raise _Invalid(0)
            arm, flags, last = struct.unpack_from("<BII", p, 0)
            return State(arm, flags, last, values)
        if kind == COMMAND:
            seq, valid_until = struct.unpack_from("<IQ", p, 0)
            return Command(seq, valid_until, values)
        if kind == HEARTBEAT:
            if p[0] > 3:
                raise _Invalid(0)
            return Heartbeat(*struct.unpack_from("<BI", p, 0))
        if kind in (ARM, DISARM, ESTOP):
            return Empty()
        if kind == RESET:
            return Reset(struct.unpack_from("<Q", p, 0)[0])
        if kind == RESET_TO:
            return ResetTo(values)
        if kind == TELEOP:
            return Teleop(struct.unpack_from("<I", p, 0)[0], values)
        if kind == FAULT:
            code, detail = struct.unpack_from("<HI", p, 0)
            if not 1 <= code <= 9:
                raise _Invalid(0)
            return Fault(code, detail)
    except _Invalid as invalid:
        return DecodeError("InvalidField", f"kind 0x{kind:02x} offset {invalid.offset}")
    raise AssertionError("unreachable")


KNOWN_KINDS = frozenset(_FIXED_LEN) | frozenset(_VECTOR) | {CAPABILITIES, CHANNEL_INFO}


def decode_frame(raw: bytes) -> Union[Frame, DecodeError]:
    """Validates an un-stuffed frame (README section 4's order)."""
    if len(raw) < HEADER_LEN + CRC_LEN:
        return DecodeError("TooShort", f"len {len(raw)}")
    received = struct.unpack_from("<I", raw, len(raw) - CRC_LEN)[0]
    computed = crc32(raw[:-CRC_LEN])
    if received != computed:
        return DecodeError("Crc", f"received 0x{received:08x} computed 0x{computed:08x}")
    version, kind, seq, timestamp_us = struct.unpack_from("<BBIQ", raw, 0)
    if version != PROTOCOL_VERSION:
        return DecodeError("UnsupportedVersion", str(version))
    if kind not in KNOWN_KINDS:
        return DecodeError("UnknownKind", f"0x{kind:02x}")
    message = parse_payload(kind, raw[HEADER_LEN:-CRC_LEN])
    if isinstance(message, DecodeError):
        return message
    return Frame(kind, seq, timestamp_us, message)


class Decoder:
    """Byte-at-a-time frame decoder (README section 1)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def push(self, byte: int) -> Union[None, Frame, DecodeError]:
        if byte != 0:
            if self._overflow:
                return None
            self._buf.append(byte)
            if len(self._buf) > MAX_ENCODED_LEN:
                self._buf.clear()
                self._overflow = True
            return None
        if self._overflow:
            self._overflow = False
            return DecodeError("Overflow")
        if not self._buf:
            return None
        data = bytes(self._buf)
        self._buf.clear()
        raw = cobs_decode(data)
        if raw is None:
            return DecodeError("Cobs")
        return decode_frame(raw)

    def feed(self, data: bytes) -> list:
        """Every result `push` gives for `data`, in order (frames and errors)."""
        out = []
        for byte in data:
            result = self.push(byte)
            if result is not None:
                out.append(result)
        return out
