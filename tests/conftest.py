"""Shared test fixtures: the ground-truth folder and the Caffe2 side runtime."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures_t7 import SHARED  # noqa: E402

from migrate.runtimes.caffe.side import find_caffe_python  # noqa: E402
from migrate.runtimes.caffe2.side import find_caffe2_python  # noqa: E402


def pytest_report_header(config):
    python = find_caffe2_python()
    return [f"shared ground truth: {SHARED} ({'present' if os.path.isdir(SHARED) else 'ABSENT'})",
            f"Caffe2 side runtime: {python or 'not provisioned'}",
            f"Caffe side runtime: {find_caffe_python() or 'not provisioned'}"]


@pytest.fixture(scope="session")
def shared_dir() -> str:
    if not os.path.isdir(SHARED):
        pytest.skip("../shared (ground truth) is not present")
    return SHARED


@pytest.fixture(scope="session")
def caffe2_python() -> str:
    """The genuine Caffe2 interpreter; CI provisions it, so there a missing one fails."""
    python = find_caffe2_python()
    if python is None:
        message = "Caffe2 side runtime not provisioned (run tools/provision-caffe2.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def caffe_python() -> str:
    """The genuine BVLC Caffe interpreter; CI provisions it, so there a missing one fails."""
    python = find_caffe_python()
    if python is None:
        message = "Caffe side runtime not provisioned (run migrate runtimes install caffe)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python
