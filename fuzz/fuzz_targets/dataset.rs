#![no_main]
//! `handful::fuzzing::dataset`; the body's docs say what it checks.
//!
//! The dataset code contains panics of the third-party parquet/arrow decoders at its
//! boundary (`catch_unwind`, turned into a `DatasetError` naming the file). libFuzzer's
//! panic hook aborts before any unwinding, so this target wraps it: a panic raised in
//! those crates' own source unwinds to that boundary (and, if the boundary missed it, on
//! to libfuzzer-sys's `catch_unwind`, which aborts: a crash); every other panic aborts
//! at once, as before.

use std::sync::Once;

/// Source paths of the crates whose panics the dataset code contains.
const CONTAINED: [&str; 4] = ["/parquet-", "/arrow-", "/thrift-", "/snap-"];

fn contain_third_party_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let aborting = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let third_party = info
                .location()
                .is_some_and(|l| CONTAINED.iter().any(|c| l.file().contains(c)));
            if !third_party {
                aborting(info);
            }
        }));
    });
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    contain_third_party_panics();
    handful::fuzzing::dataset(data);
});
