#!/usr/bin/env bash
# Type-checks the whole workspace for aarch64 boards (Raspberry Pi 4/5, Jetson, RK3588)
# from an x86_64 machine: the Rust target from rustup, a cross C compiler for the C in
# lz4-sys and zstd-sys, and pkg-config allowed to cross for libudev (gilrs). Not part of
# tests/run.sh: a cold check takes longer than the test command's budget allows (see
# deploy/README.md); an incremental one takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add aarch64-unknown-linux-gnu
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt-get install -y gcc-aarch64-linux-gnu
fi
export PKG_CONFIG_ALLOW_CROSS=1 CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo check --target aarch64-unknown-linux-gnu --workspace --release
