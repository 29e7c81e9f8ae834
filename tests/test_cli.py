"""The `migrate` command end to end, as a user runs it."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import numpy as np
from fixtures_t7 import PROJECT_FIXTURES, T7_DIR

from migrate.runtimes.caffe2.side import run_caffe2
from migrate.runtimes.ort.api import run_onnx

EXAMPLE = os.path.join(PROJECT_FIXTURES, "torch7", "d_spynet_level_float.t7")


def migrate(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrate.cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_console_script_is_installed():
    assert shutil.which("migrate"), "pip install . should put `migrate` on PATH"


def test_help_explains_usage():
    result = migrate("--help")
    assert result.returncode == 0
    for text in ("--to", "--input-shape", "--no-verify", "--caffe2-python", "inspect"):
        assert text in result.stdout


def test_default_conversion_writes_verified_caffe2_pair(tmp_path, caffe2_python):
    result = migrate(EXAMPLE, "--caffe2-python", caffe2_python, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    stem = "d_spynet_level_float"
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{stem}_{s}" for s in ("init_net.pb", "predict_net.pb", "predict_net.pbtxt"))
    assert "10 modules converted" in result.stdout
    assert "Caffe2 (real runtime)" in result.stdout and "OK" in result.stdout
    # The written pair, run again here, reproduces real Torch7's stored output.
    x = np.fromfile(os.path.join(T7_DIR, "raw", "d_spynet_level_float_input.1x8x24x32.f64"))
    expected = np.fromfile(os.path.join(T7_DIR, "raw", "d_spynet_level_float_output.1x2x24x32.f64"))
    (y,) = run_caffe2(caffe2_python, str(tmp_path / f"{stem}_init_net.pb"),
                      str(tmp_path / f"{stem}_predict_net.pb"), [x.reshape(1, 8, 24, 32)])
    np.testing.assert_allclose(y.reshape(-1), expected, atol=1e-4)


def test_onnx_target_with_input_shape(tmp_path):
    out = tmp_path / "out"
    result = migrate(EXAMPLE, "-o", str(out), "--to", "onnx", "--input-shape", "1x8x24x32")
    assert result.returncode == 0, result.stderr
    assert "input 1x8x24x32" in result.stdout and "OK" in result.stdout
    (y,) = run_onnx(str(out / "d_spynet_level_float.onnx"), [np.zeros((1, 8, 24, 32))])
    assert y.shape == (1, 2, 24, 32)


def test_missing_caffe2_runtime_is_reported_not_hidden(tmp_path):
    env_python = tmp_path / "no-such-python"
    result = migrate(EXAMPLE, "-o", str(tmp_path), "--caffe2-python", str(env_python))
    assert result.returncode != 0
    assert "cannot import caffe2" in result.stderr
    assert not any(f.endswith(".pb") for f in os.listdir(tmp_path))


def _renamed(data: bytes, old: bytes, new: bytes) -> bytes:
    pack = struct.Struct("<i").pack
    return data.replace(pack(len(old)) + old, pack(len(new)) + new)


def test_unsupported_layers_are_all_named_and_nothing_is_written(tmp_path, shared_dir):
    # A real model whose layers carry classes of packages we have no converter for
    data = open(os.path.join(T7_DIR, "c_residual_float.t7"), "rb").read()
    data = _renamed(data, b"nn.MulConstant", b"dpnn.Constant")
    data = _renamed(data, b"nn.JoinTable", b"fbnn.FancyJoin")
    model = tmp_path / "custom.t7"
    model.write_bytes(data)
    out = tmp_path / "out"
    result = migrate(str(model), "-o", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    message = result.stderr
    assert "custom.t7" in message and "dpnn.Constant" in message and "fbnn.FancyJoin" in message
    for where in ("model.modules[6].modules[1] (dpnn.Constant)",
                  "model.modules[6].modules[2].modules[2] (dpnn.Constant)",
                  "model.modules[7] (fbnn.FancyJoin)"):
        assert where in message
    assert not out.exists() or os.listdir(out) == []
    inspect = migrate("inspect", str(model))
    assert inspect.returncode == 0
    assert "NO      model.modules[6].modules[1]  dpnn.Constant" in inspect.stdout
    assert "3 module(s) have no converter" in inspect.stdout


def test_corrupt_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "broken.t7"
    data = open(EXAMPLE, "rb").read()
    bad.write_bytes(data[: len(data) // 2])
    result = migrate(str(bad), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("migrate: error: ") and "broken.t7" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "out") or os.listdir(tmp_path / "out") == []


def test_bad_input_shape_is_a_usage_error(tmp_path):
    result = migrate(EXAMPLE, "--input-shape", "1xfoo", "-o", str(tmp_path))
    assert result.returncode == 2 and "--input-shape" in result.stderr


# numpy's OpenBLAS (the scipy-openblas build numpy wheels ship), asked how many threads
# its pool has
_BLAS_THREADS = (
    "import ctypes; "
    "path = next(l.split()[-1] for l in open('/proc/self/maps') if 'openblas' in l.lower()); "
    "blas_threads = ctypes.CDLL(path).scipy_openblas_get_num_threads64_()")


def test_blas_threads_are_off_in_the_command_only():
    """The command imports numpy with OpenBLAS's pool at one thread (its spinning threads
    cost CPU for nothing) but leaves the environment of child processes as it was."""
    code = ("import os, sys; from migrate.cli import main; "
            f"code = main(['inspect', {EXAMPLE!r}]); {_BLAS_THREADS}; "
            "print(code, 'OPENBLAS_NUM_THREADS' in os.environ, blas_threads)")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    # exit 0, the variable gone again, a pool of one thread
    assert result.stdout.splitlines()[-1] == "0 False 1", result.stdout + result.stderr


def test_inspect_lists_modules_and_support():
    result = migrate("inspect", EXAMPLE)
    assert result.returncode == 0
    assert "model.modules[1]  nn.SpatialConvolution" in result.stdout
    assert "every module is supported" in result.stdout
