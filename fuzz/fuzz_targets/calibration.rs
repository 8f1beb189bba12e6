#![no_main]
//! `handful::fuzzing::calibration`; the body's docs say what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| handful::fuzzing::calibration(data));
