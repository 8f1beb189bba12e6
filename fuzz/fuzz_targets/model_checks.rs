#![no_main]
//! `handful::fuzzing::model_checks`; the body's docs say what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| handful::fuzzing::model_checks(data));
