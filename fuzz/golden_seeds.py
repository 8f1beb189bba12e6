#!/usr/bin/env python3
"""Seeds of the protocol targets from the golden vectors (firmware-bridge/golden/frames.txt).

frame_decoder: each vector's wire bytes, all of them as one stream, and the stream with
garbage, a lone delimiter and an overlong run in front (resynchronisation).
message_parser: each vector's kind byte followed by its payload (header and CRC off).
Run from anywhere: python3 fuzz/golden_seeds.py
"""
from pathlib import Path

root = Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"
vectors = []
for line in (root / "firmware-bridge/golden/frames.txt").read_text().splitlines():
    if not line.strip() or line.startswith("#"):
        continue
    name, _fields, frame_hex, wire_hex = [f.strip() for f in line.split(" | ")]
    vectors.append((name, bytes.fromhex(frame_hex), bytes.fromhex(wire_hex)))

decoder = corpus / "frame_decoder"
parser = corpus / "message_parser"
decoder.mkdir(parents=True, exist_ok=True)
parser.mkdir(parents=True, exist_ok=True)
for name, frame, wire in vectors:
    (decoder / f"golden-{name}").write_bytes(wire)
    (parser / f"golden-{name}").write_bytes(frame[1:2] + frame[14:-4])
stream = b"".join(wire for _, _, wire in vectors)
(decoder / "stream-all-golden").write_bytes(stream)
garbage = bytes(range(1, 200)) + b"\x00\x00" + b"\x17" * 300 + b"\x00" + b"\x05\x01\x02"
(decoder / "stream-garbage-then-golden").write_bytes(garbage + stream)
print(f"{len(vectors)} golden vectors -> {decoder}, {parser}")
