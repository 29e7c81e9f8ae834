"""Custom layers through plugins: the README's worked example, run for real."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from fixtures_t7 import ROOT, T7_DIR, read_raw

from migrate.runtimes.caffe2.side import run_caffe2

PLUGIN = os.path.join(ROOT, "examples", "plugins", "inn_layers.py")
CUSTOM_CLASS = b"inn.SpatialCrossResponseNormalization"
CASE = "layer_SpatialCrossMapLRN_float"


def _class_name(name: bytes) -> bytes:
    return struct.pack("<i", len(name)) + name


@pytest.fixture
def custom_model(tmp_path, shared_dir) -> str:
    """A real Torch7 LRN model whose layer is renamed to the `inn` package's class,
    as models ported with that package carry it (the math is the same, so real
    Torch7's stored output stays the ground truth)."""
    data = open(os.path.join(T7_DIR, f"{CASE}.t7"), "rb").read()
    old = _class_name(b"nn.SpatialCrossMapLRN")
    assert data.count(old) == 1
    path = tmp_path / "alexnet_lrn.t7"
    path.write_bytes(data.replace(old, _class_name(CUSTOM_CLASS)))
    return str(path)


def migrate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrate.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def test_without_the_plugin_the_custom_class_is_named(custom_model, tmp_path):
    result = migrate(custom_model, "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "inn.SpatialCrossResponseNormalization" in result.stderr
    assert "model.modules[1]" in result.stderr


def test_plugin_file_converts_the_custom_layer(custom_model, tmp_path, caffe2_python):
    out = tmp_path / "out"
    result = migrate(custom_model, "-o", str(out), "--plugin", PLUGIN,
                     "--input-shape", "1x4x9x11", "--caffe2-python", caffe2_python)
    assert result.returncode == 0, result.stderr
    (x,), (expected,) = read_raw(f"{CASE}_input"), read_raw(f"{CASE}_output")
    (y,) = run_caffe2(caffe2_python, str(out / "alexnet_lrn_init_net.pb"),
                      str(out / "alexnet_lrn_predict_net.pb"), [x])
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=1e-4)


def test_installed_plugin_via_entry_point(custom_model, tmp_path):
    site = tmp_path / "site"
    dist = site / "inn_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    shutil.copy(PLUGIN, site / "inn_layers.py")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: inn-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[torch7_migrate.plugins]\ninn = inn_layers\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), ROOT]))
    result = migrate(custom_model, "-o", str(tmp_path / "out"), "--to", "onnx",
                     "--input-shape", "1x4x9x11", env=env)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_broken_plugin_is_one_clear_error(tmp_path, custom_model):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("def broken(:\n")
    result = migrate(custom_model, "--plugin", str(bad), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "bad_plugin.py" in result.stderr and "SyntaxError" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_shows_the_plugin_that_the_tests_run():
    readme = open(os.path.join(ROOT, "README.md")).read()
    code = open(PLUGIN).read().split('"""', 2)[2].strip()
    assert code in readme
