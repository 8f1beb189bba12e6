"""The Python codec against firmware-bridge/golden/frames.txt (README section 11): each
vector's fields encode to its frame and wire bytes exactly, its wire bytes decode to its
fields (floats as bit patterns), the CRC is the frame's last four bytes, and every
single-bit corruption of a frame is rejected. Plain unittest:

    .venv/bin/python -m unittest discover -s firmware-bridge/gym/tests
"""

import math
import pathlib
import re
import struct
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from handful_gym import protocol as p  # noqa: E402

GOLDEN = HERE.parents[1] / "golden" / "frames.txt"

KINDS = {
    "Hello": p.HELLO,
    "Capabilities": p.CAPABILITIES,
    "ChannelInfo": p.CHANNEL_INFO,
    "State": p.STATE,
    "Command": p.COMMAND,
    "Heartbeat": p.HEARTBEAT,
    "Arm": p.ARM,
    "Disarm": p.DISARM,
    "EStop": p.ESTOP,
    "Reset": p.RESET,
    "ResetTo": p.RESET_TO,
    "Teleop": p.TELEOP,
    "Fault": p.FAULT,
}


def float_bits(text: str) -> int:
    nan = re.fullmatch(r"NaN\(0x([0-9a-f]{8})\)", text)
    if nan:
        return int(nan.group(1), 16)
    value = {"inf": math.inf, "-inf": -math.inf}.get(text)
    bits = p.f32_bits(float(text) if value is None else value)
    return bits


def vector(text: str) -> tuple:
    inner = text.strip()[1:-1].strip()
    return tuple(float_bits(v.strip()) for v in inner.split(",")) if inner else ()


def fields_of(body: str) -> dict:
    """`a=1 b="x y" c=[1.0, 2.0]` → {name: text}."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\S+)', body):
        out[m.group(1)] = m.group(2)
    return out


def enum_value(text: str) -> int:
    return int(re.search(r"\((\d+)\)", text).group(1))


def message_of(name: str, f: dict):
    num = lambda key: int(f[key], 0)  # noqa: E731
    if name == "Hello":
        return p.Hello(num("protocol_min"), num("protocol_max"))
    if name == "Capabilities":
        version = tuple(int(v) for v in f["firmware_version"].split("."))
        return p.Capabilities(
            num("protocol"),
            f["robot_id"][1:-1],
            version,
            num("state_dim"),
            num("action_dim"),
            num("control_period_us"),
            num("watchdog_timeout_us"),
            num("heartbeat_interval_us"),
            num("capabilities"),
        )
    if name == "ChannelInfo":
        return p.ChannelInfo(
            enum_value(f["kind"]),
            num("index"),
            f["name"][1:-1],
            f["unit"][1:-1],
            float_bits(f["min"]),
            float_bits(f["max"]),
            float_bits(f["safe"]),
        )
    if name == "State":
        return p.State(enum_value(f["arm_state"]), num("fault_flags"), num("last_command_seq"),
                       vector(f["values"]))
    if name == "Command":
        return p.Command(num("seq"), num("valid_until_us"), vector(f["values"]))
    if name == "Heartbeat":
        return p.Heartbeat(enum_value(f["arm_state"]), num("fault_flags"))
    if name in ("Arm", "Disarm", "EStop"):
        return p.Empty()
    if name == "Reset":
        return p.Reset(num("seed"))
    if name == "ResetTo":
        return p.ResetTo(vector(f["values"]))
    if name == "Teleop":
        return p.Teleop(num("buttons"), vector(f["axes"]))
    if name == "Fault":
        return p.Fault(enum_value(f["code"]), num("detail"))
    raise ValueError(name)


def golden_vectors():
    for line in GOLDEN.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, fields, frame_hex, wire_hex = (part.strip() for part in line.split(" | "))
        head = re.match(r"seq=(\d+) timestamp_us=(\d+) kind=(0x[0-9a-f]{2}) (\w+)(.*)$", fields)
        seq, timestamp_us, kind, message_name, rest = head.groups()
        rest = rest.strip()
        body = rest[1:-1] if rest.startswith("{") else ""
        frame = p.Frame(
            KINDS[message_name],
            int(seq),
            int(timestamp_us),
            message_of(message_name, fields_of(body)),
        )
        assert frame.kind == int(kind, 16), name
        yield name, frame, bytes.fromhex(frame_hex), bytes.fromhex(wire_hex)


class GoldenVectors(unittest.TestCase):
    def test_the_golden_file_has_every_kind(self):
        vectors = list(golden_vectors())
        self.assertGreaterEqual(len(vectors), 27)
        self.assertEqual({f.kind for _, f, _, _ in vectors}, set(KINDS.values()))

    def test_fields_encode_to_the_frame_and_wire_bytes(self):
        for name, frame, frame_raw, wire in golden_vectors():
            with self.subTest(name):
                self.assertEqual(p.frame_bytes(frame).hex(), frame_raw.hex())
                self.assertEqual(p.encode(frame).hex(), wire.hex())

    def test_wire_bytes_decode_to_the_fields(self):
        for name, frame, _, wire in golden_vectors():
            with self.subTest(name):
                decoded = p.Decoder().feed(wire)
                self.assertEqual(decoded, [frame])
                # Canonical: re-encoding gives the same bytes (NaN payloads kept).
                self.assertEqual(p.encode(decoded[0]), wire)

    def test_the_crc_is_the_frames_last_four_bytes(self):
        for name, _, frame_raw, _ in golden_vectors():
            with self.subTest(name):
                (stored,) = struct.unpack("<I", frame_raw[-4:])
                self.assertEqual(stored, p.crc32(frame_raw[:-4]))
        self.assertEqual(p.crc32(b"123456789"), 0xCBF43926)

    def test_values_beyond_f32_become_infinities(self):
        self.assertEqual(p.f32_bits(1e300), 0x7F800000)
        self.assertEqual(p.f32_bits(-1e300), 0xFF800000)
        self.assertEqual(p.f32_bits(0.1), 0x3DCCCCCD)

    def test_every_single_bit_flip_of_a_frame_is_rejected(self):
        for name, _, frame_raw, _ in golden_vectors():
            with self.subTest(name):
                for bit in range(len(frame_raw) * 8):
                    corrupt = bytearray(frame_raw)
                    corrupt[bit // 8] ^= 1 << (bit % 8)
                    result = p.Decoder().feed(p.cobs_encode(bytes(corrupt)) + b"\x00")
                    self.assertEqual(len(result), 1)
                    self.assertIsInstance(result[0], p.DecodeError)


class Framing(unittest.TestCase):
    def frames(self):
        return [f for _, f, _, _ in golden_vectors()]

    def test_back_to_back_frames_with_empty_delimiters_and_garbage_between(self):
        frames = self.frames()
        stream = b"\x00\x00" + b"".join(p.encode(f) + b"\x00" for f in frames)
        self.assertEqual(p.Decoder().feed(stream), frames)
        decoder = p.Decoder()
        out = decoder.feed(b"\x13\x37\x00" + p.encode(frames[0]))
        self.assertIsInstance(out[0], p.DecodeError)
        self.assertEqual(out[1:], [frames[0]])

    def test_an_overlong_run_is_one_overflow_then_the_decoder_resynchronises(self):
        frame = self.frames()[0]
        out = p.Decoder().feed(b"\x01" * 500 + b"\x00" + p.encode(frame))
        self.assertEqual(out, [p.DecodeError("Overflow"), frame])

    def test_validation_order(self):
        def decode(raw):
            return p.Decoder().feed(p.cobs_encode(raw) + b"\x00")[0]

        def with_crc(body):
            return body + struct.pack("<I", p.crc32(body))

        header = struct.pack("<BBIQ", 1, p.ARM, 0, 0)
        self.assertEqual(decode(b"\x01" * 10).what, "TooShort")
        self.assertEqual(decode(with_crc(struct.pack("<BBIQ", 2, p.ARM, 0, 0))).what,
                         "UnsupportedVersion")
        self.assertEqual(decode(with_crc(struct.pack("<BBIQ", 1, 0x77, 0, 0))).what,
                         "UnknownKind")
        self.assertEqual(decode(with_crc(header + b"\x00")).what, "Length")
        state = struct.pack("<BBIQ", 1, p.STATE, 0, 0) + struct.pack("<BIIB", 0, 0, 0, 33)
        self.assertEqual(decode(with_crc(state)).what, "InvalidField")
        bad_arm = struct.pack("<BBIQ", 1, p.STATE, 0, 0) + struct.pack("<BIIB", 4, 0, 0, 0)
        self.assertEqual(decode(with_crc(bad_arm)).what, "InvalidField")
        self.assertEqual(p.Decoder().feed(b"\x05\x01\x00")[0].what, "Cobs")


if __name__ == "__main__":
    unittest.main()
