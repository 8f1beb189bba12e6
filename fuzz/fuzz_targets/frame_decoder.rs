#![no_main]
//! `handful_protocol::fuzzing::frame_decoder`; the body's docs say what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| handful_protocol::fuzzing::frame_decoder(data));
