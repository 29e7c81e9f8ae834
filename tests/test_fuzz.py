"""Hostile and broken .t7 files: only the project's own error type ever escapes, no
case hangs, memory stays bounded (bench/fuzz.py; about a minute here)."""

from __future__ import annotations

import os

from fixtures_t7 import SHARED

from bench.fuzz import run_fuzz

FUZZ_SECONDS = float(os.environ.get("MIGRATE_FUZZ_SECONDS", "60"))


def test_fuzzed_fixtures_fail_cleanly(shared_dir):
    stats = run_fuzz(FUZZ_SECONDS, seed=20261124, shared=SHARED)
    assert stats.cases >= 1000, f"only {stats.cases} cases ran"
    assert not stats.failures, "\n".join(stats.failures[:20])
    # the mutations reach every stage: decoding errors, conversion errors, and
    # damaged-but-valid files that still convert
    assert stats.outcomes.get("error:TruncatedFileError", 0) > 0
    assert stats.outcomes.get("error:CorruptFileError", 0) > 0
    assert stats.outcomes.get("converted", 0) > 0
