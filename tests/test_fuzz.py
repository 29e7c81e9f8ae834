"""Hostile and broken model files of every source format: only the project's own error
type ever escapes, no case hangs, memory stays bounded (bench/fuzz.py; about a minute)."""

from __future__ import annotations

import os

import pytest
from fixtures_t7 import SHARED

from bench.fuzz import run_fuzz

FUZZ_SECONDS = float(os.environ.get("MIGRATE_FUZZ_SECONDS", "60"))
# seconds per format; the Torch7 decoder has the most code to reach
SHARE = {"torch7": 0.4, "onnx": 0.2, "caffe2": 0.2}


@pytest.mark.parametrize("fmt", sorted(SHARE))
def test_fuzzed_fixtures_fail_cleanly(fmt, shared_dir):
    stats = run_fuzz(FUZZ_SECONDS * SHARE[fmt], seed=20261124, shared=SHARED, formats=[fmt])
    assert stats.cases >= 300, f"only {stats.cases} cases ran"
    assert not stats.failures, "\n".join(stats.failures[:20])
    # the mutations reach every stage: decoding errors, conversion errors, and
    # damaged-but-valid files that still convert
    assert stats.outcomes.get("error:TruncatedFileError", 0) > 0
    assert stats.outcomes.get("error:CorruptFileError", 0) > 0
    assert stats.outcomes.get("converted", 0) > 0
