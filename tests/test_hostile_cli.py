"""Hostile input through the command line: one line `migrate: error: FILE: ...`,
exit status 2, no traceback (unless --debug), and nothing written."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from fixtures_t7 import PROJECT_FIXTURES, REAL_DIR, T7_DIR

from bench.fuzz import deep_modules, deep_tables, self_containing_module

LENET = os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7")


def migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrate.cli", *args], capture_output=True,
                          text=True, timeout=300)


def _hostile_files() -> dict[str, bytes]:
    data = open(LENET, "rb").read()
    return {
        "empty.t7": b"",
        "truncated.t7": data[: len(data) // 3],
        "random.t7": np.random.default_rng(3).integers(0, 256, 10_000, np.uint8).tobytes(),
        "png_named_t7.t7": b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        "deep_tables.t7": deep_tables(100_000),
        "deep_modules.t7": deep_modules(1_000),
        "self_containing.t7": self_containing_module(),
    }


@pytest.mark.parametrize("name", sorted(_hostile_files()))
def test_hostile_file_gives_one_line_and_exit_2(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(_hostile_files()[name])
    out = tmp_path / "out"
    result = migrate(str(path), "-o", str(out), "--input-shape", "1x3x8x8")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"migrate: error: {path}: ")
    assert "Traceback" not in result.stderr
    assert not out.exists() or os.listdir(out) == []


def test_declared_size_over_the_limit(tmp_path):
    result = migrate(LENET, "--max-bytes", "64K", "-o", str(tmp_path))
    assert result.returncode == 2 and "--max-bytes" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "random.t7"
    path.write_bytes(b"\x07\0\0\0" * 50)
    result = migrate(str(path), "--debug", "-o", str(tmp_path))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_lua_function_is_data_not_code(tmp_path, shared_dir):
    path = os.path.join(REAL_DIR, "python-torchfile", "function.t7")
    if not os.path.exists(path):
        pytest.skip("torchfile's function.t7 not in ../shared")
    result = migrate(path, "-o", str(tmp_path))
    assert result.returncode == 2
    assert "holds no Torch7 module" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"\xff" * 64, b"\x0a\x05hello" * 3])
def test_hostile_netdef_onnx_and_npy_inputs(content, tmp_path):
    predict, init = tmp_path / "x_predict_net.pb", tmp_path / "x_init_net.pb"
    model_onnx, sample = tmp_path / "x.onnx", tmp_path / "sample.npy"
    for path in (predict, init, model_onnx, sample):
        path.write_bytes(content)
    results = [
        migrate("check-mobile", str(predict)),
        migrate("verify", LENET, str(init), str(predict), "--input-shape", "1x1x28x28"),
        migrate("verify", LENET, str(model_onnx), "--input-shape", "1x1x28x28"),
        migrate(LENET, "--input", str(sample), "-o", str(tmp_path / "out")),
    ]
    for result in results:
        assert result.returncode in (1, 2), result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() or result.stdout.strip()


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_missing_file_or_folder_is_a_usage_error(kind, tmp_path):
    path = tmp_path / "model.t7"
    if kind == "folder":
        path.mkdir()
    result = migrate(str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = "no such file" if kind == "missing" else "migrate batch"
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert result.stderr.startswith(f"migrate: error: {path}: ") and expected in result.stderr


def _with_fields(tmp_path, fixture: str, **changes: tuple[float, float]):
    """A real fixture with numeric module fields changed, field=(old, new) (a damaged file)."""
    source = os.path.join(T7_DIR, f"{fixture}.t7")
    if not os.path.exists(source):
        pytest.skip("../shared fixtures not present")
    data = bytearray(open(source, "rb").read())
    for field, (old, new) in changes.items():
        name = field.encode()
        key = struct.pack("<ii", 2, len(name)) + name + struct.pack("<i", 1)  # string key, number
        at = data.index(key) + len(key)
        assert struct.unpack("<d", data[at:at + 8])[0] == old
        data[at:at + 8] = struct.pack("<d", new)
    path = tmp_path / f"{fixture}_damaged.t7"
    path.write_bytes(data)
    return path


def _padding_with_pad(tmp_path, pad: float):
    return _with_fields(tmp_path, "layer_Padding_channels_float", pad=(2.0, pad))


def test_absurd_padding_is_too_large_not_an_allocation(tmp_path):
    path = _padding_with_pad(tmp_path, 2.0**31 - 1)
    result = migrate(str(path), "-o", str(tmp_path / "out"), "--input-shape", "1x4x9x11")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.modules[1] (nn.Padding)" in result.stderr and "GB" in result.stderr
    assert not (tmp_path / "out").exists()


def test_large_padding_costs_nothing_in_the_written_nets(tmp_path):
    # 131072 channels of padding = a 52 MB block: filled at run time, not stored.
    path = _padding_with_pad(tmp_path, 131072.0)
    out = tmp_path / "out"
    result = migrate(str(path), "-o", str(out), "--input-shape", "1x4x9x11", "--no-verify")
    assert result.returncode == 0, result.stderr
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    assert sizes[f"{path.stem}_init_net.pb"] < 1024, sizes


def test_huge_dilated_pooling_window_is_refused_for_caffe2(tmp_path):
    path = _with_fields(tmp_path, "layer_SpatialDilatedMaxPooling_float",
                        kW=(2.0, 40.0), kH=(2.0, 40.0))
    result = migrate(str(path), "-o", str(tmp_path / "out"), "--input-shape", "1x4x90x90")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nn.SpatialDilatedMaxPooling" in result.stderr and "40x40" in result.stderr


def test_onnxruntime_failure_is_a_verification_error(tmp_path, capfd):
    import onnx
    from onnx import TensorProto, helper

    from migrate.core.errors import VerificationError
    from migrate.runtimes.ort.api import run_onnx

    # a window larger than the (dynamically sized) input: fails only when run
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[5, 5])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "pool.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(VerificationError, match="onnxruntime failed to run the model"):
        run_onnx(str(path), [np.zeros((1, 1, 3, 3), np.float32)])
    assert "onnxruntime" not in capfd.readouterr().err  # no log lines of its own


def test_pooling_window_larger_than_its_input_is_a_conversion_error(tmp_path):
    path = _with_fields(tmp_path, "layer_SpatialDilatedMaxPooling_float", kH=(2.0, 131072.0))
    result = migrate(str(path), "-o", str(tmp_path / "out"), "--to", "onnx",
                     "--input-shape", "1x4x9x11")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.modules[1] (nn.SpatialDilatedMaxPooling)" in result.stderr
    assert "negative shape" in result.stderr and len(result.stderr.splitlines()) == 1
