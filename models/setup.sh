#!/usr/bin/env bash
# All of handful's set-up on a machine of this kind (Debian, Rust, Python 3 with pip):
#   - the one system package the build needs: libudev-dev (the gamepad crate, gilrs, links
#     libudev), installed with apt-get when missing (as root; otherwise it says how);
#   - a Python venv at <repo>/.venv with pinned onnxruntime, onnx and numpy (the scripts in
#     models/ write and check ONNX ensembles with them), and gymnasium with mujoco (the
#     stand-in firmware of firmware-bridge/gym serves their environments as robots);
#   - the ONNX Runtime shared library taken from the onnxruntime wheel, copied to
#     models/runtime/libonnxruntime.so, where the binary and the tests look for it.
# Idempotent: a second run only checks. Both .venv and models/runtime are gitignored.
set -euo pipefail

if ! pkg-config --exists libudev 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing libudev-dev (for the gamepad)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libudev-dev pkg-config >/dev/null
    else
        echo "setup: libudev-dev is missing: run 'sudo apt-get install libudev-dev pkg-config'" >&2
        exit 1
    fi
fi

ORT_VERSION="1.31.1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
RUNTIME_DIR="$REPO/models/runtime"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating venv at $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# rerun-sdk: its `rerun` CLI reads back the .rrd files the viz tests write. gymnasium,
# mujoco and imageio (which gymnasium's MuJoCo environments import): firmware-bridge/gym.
want="onnxruntime==$ORT_VERSION onnx==1.23.2 numpy==2.4.6 pyarrow==22.0.0 pandas==2.3.3 rerun-sdk==0.36.3"
want="$want gymnasium==1.4.0 mujoco==4.0.1 imageio==2.38.2"
if ! "$VENV/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
want = dict(p.split("==") for p in "$want".split())
sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)
PY
then
    echo "setup: installing $want"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want
fi

capi="$("$VENV/bin/python" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
lib="$capi/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$lib" ]; then
    echo "setup: $lib not found in the onnxruntime wheel; files there:" >&2
    ls "$capi" >&2
    exit 1
fi

mkdir -p "$RUNTIME_DIR"
if ! cmp -s "$lib" "$RUNTIME_DIR/libonnxruntime.so"; then
    # A copy, not a symlink: the library stays valid if the venv is rebuilt meanwhile.
    cp "$lib" "$RUNTIME_DIR/libonnxruntime.so.tmp"
    mv "$RUNTIME_DIR/libonnxruntime.so.tmp" "$RUNTIME_DIR/libonnxruntime.so"
fi
echo "$ORT_VERSION" > "$RUNTIME_DIR/VERSION"
echo "setup: ONNX Runtime $ORT_VERSION at $RUNTIME_DIR/libonnxruntime.so"
