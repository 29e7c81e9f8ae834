#!/usr/bin/env bash
# Regenerate the *_pb2.py modules of migrate/core/formats/ from our .proto schemas.
# The generated code must suit the pinned protobuf runtime (6.x): grpcio-tools 1.76
# bundles a protoc of that line. Run after editing a .proto; commit both files.
set -euo pipefail
cd "$(dirname "$0")/../migrate/core/formats"
TOOLS=$(mktemp -d)
trap 'rm -rf "$TOOLS"' EXIT
python3 -m pip install -q --target "$TOOLS" grpcio-tools==1.76.0
for proto in *.proto; do
  PYTHONPATH=$TOOLS python3 -m grpc_tools.protoc -I. --python_out=. "$proto"
  echo "compiled $proto"
done
