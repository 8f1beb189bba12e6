#![no_main]
//! `handful::fuzzing::trainer_toml`; the body's docs say what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| handful::fuzzing::trainer_toml(data));
