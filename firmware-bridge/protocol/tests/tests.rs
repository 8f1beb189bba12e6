//! Integration tests of the wire protocol: one binary, a module per area.

mod common; // frame builders, the golden frame list, raw-frame crafting, strategies
mod errors; // every DecodeError and EncodeError, resynchronisation, overflow
mod fuzz; // property tests: never panics, resynchronises, round trips any frame
mod golden; // committed byte vectors in firmware-bridge/golden/frames.txt
mod roundtrip; // every message kind through encode → decode, NaN bit-exactness
