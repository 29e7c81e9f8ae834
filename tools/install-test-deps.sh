#!/usr/bin/env bash
# Everything the test suite needs beyond `pip install ".[test]"` (Debian 12, root):
# headless Chromium for the report page test, and the genuine Caffe2 and BVLC Caffe side
# runtimes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium > /dev/null; then
  echo "Installing Debian's chromium (headless browser for the report test) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium > /dev/null
fi
python3 -m migrate runtimes install caffe2
python3 -m migrate runtimes install caffe
