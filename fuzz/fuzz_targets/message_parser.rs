#![no_main]
//! `handful_protocol::fuzzing::message_parser`; the body's docs say what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| handful_protocol::fuzzing::message_parser(data));
