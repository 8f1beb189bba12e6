#![no_main]
//! `handful::fuzzing::planner_toml`; the body's docs say what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| handful::fuzzing::planner_toml(data));
