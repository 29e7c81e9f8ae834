#!/usr/bin/env bash
# Provision a genuine Caffe2 side runtime for verification (Debian 12, x86_64, root).
#
# Caffe2 last shipped in the torch 1.10.2 wheel for CPython 3.9, which Debian 12
# does not carry. We unpack CPython 3.9 from Debian 11 packages (dpkg -x, nothing
# is installed system-wide), make a venv from it, install that wheel, and put a
# launcher named `caffe2-python` on PATH, which is where `migrate` looks for it.
#
# Usage: tools/provision-caffe2.sh [RUNTIME_DIR]
#   RUNTIME_DIR defaults to $MIGRATE_CAFFE2_HOME or ~/.cache/torch7-migrate/caffe2.
# Running it again is cheap: an existing working runtime is kept.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
source "$(dirname "$0")/../debian11.sh"

RUNTIME=${1:-${MIGRATE_CAFFE2_HOME:-$HOME/.cache/torch7-migrate/caffe2}}
mkdir -p "$RUNTIME"
RUNTIME=$(cd "$RUNTIME" && pwd)
INTERP_ROOT=$RUNTIME/cpython39
VENV=$RUNTIME/venv
if [ -w /usr/local/bin ]; then BIN_DIR=/usr/local/bin; else BIN_DIR=$HOME/.local/bin; fi
CHECK='from caffe2.python import workspace, core; from caffe2.python.predictor import mobile_exporter; print(len(workspace.RegisteredOperators()))'

install_launcher() {
  mkdir -p "$BIN_DIR"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$VENV/bin/python" > "$BIN_DIR/caffe2-python"
  chmod +x "$BIN_DIR/caffe2-python"
  echo "caffe2-python -> $VENV/bin/python ($BIN_DIR/caffe2-python)"
}

if [ -x "$VENV/bin/python" ] && ops=$("$VENV/bin/python" -c "$CHECK" 2>/dev/null); then
  echo "Caffe2 runtime already provisioned in $RUNTIME ($ops operators)"
  install_launcher
  exit 0
fi

echo "Provisioning the Caffe2 side runtime in $RUNTIME ..."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. CPython 3.9 from Debian 11 packages, its extension modules pointed at the bundled
#    Debian 11 libraries (OpenSSL 1.1, libffi 7, libmpdec 3), and a venv of it.
bullseye_download "$WORK/debs" "${PYTHON39_DEBS[@]}"
bullseye_unpack "$WORK/debs" "$INTERP_ROOT"
python39_fix_rpaths "$INTERP_ROOT" "$WORK"
python39_venv "$INTERP_ROOT" "$VENV" "$WORK"

# 2. Caffe2 lives inside torch 1.10.2; its Python modules need these versions.
"$VENV/bin/pip" install -q torch==1.10.2 numpy==1.23.5 protobuf==3.20.3 future six setuptools==69.5.1
ops=$("$VENV/bin/python" -c "$CHECK")
echo "Caffe2 runtime ready: $ops operators"
install_launcher
