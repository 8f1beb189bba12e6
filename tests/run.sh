#!/usr/bin/env bash
# Every set-up step and every check, on a fresh machine of this kind: what CI runs
# (.ci/run calls this and nothing else). One profile (release) for build and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash models/setup.sh   # Python venv (.venv) with onnxruntime, onnx, numpy; models/runtime/libonnxruntime.so

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --release
