"""The format-agnostic engine as a user meets it: formats found by content, the format
matrix, the public API, output-folder and input mistakes, recorded reference outputs,
source files never written to."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
from fixtures_t7 import PROJECT_FIXTURES, REAL_DIR, T7_DIR, read_raw
from onnx import helper

import migrate
from migrate.runtimes.ort.api import run_onnx

EXAMPLE = os.path.join(PROJECT_FIXTURES, "torch7", "d_spynet_level_float.t7")
LIGHT = os.path.join(REAL_DIR, "onnx", "backend", "light")


def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("migrate: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# -- formats found by content ---------------------------------------------------------------

def test_formats_lists_sources_targets_and_runtimes():
    result = run("formats")
    assert result.returncode == 0, result.stderr
    for name in ("torch7", "onnx", "caffe2", "onnxruntime"):
        assert name in result.stdout
    assert "installed" in result.stdout
    listing = run("runtimes")
    assert listing.returncode == 0 and "onnxruntime" in listing.stdout
    one_line_error(run("runtimes", "install"), "name a runtime")
    one_line_error(run("runtimes", "install", "onnxruntime"), "pip")


def test_an_onnx_file_named_t7_is_read_as_onnx(tmp_path, shared_dir):
    disguised = tmp_path / "squeezenet.t7"
    disguised.write_bytes(open(os.path.join(LIGHT, "light_squeezenet.onnx"), "rb").read())
    result = run(str(disguised), "--to", "onnx", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "(onnx)" in result.stdout and "OK" in result.stdout


@pytest.mark.parametrize(("content", "words"), [
    (b"just some notes\nabout a model\n", "a text file"),
    (bytes(range(256)) * 20, "binary data of no format known here"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "a NumPy array"),
    (b"", "an empty file"),
])
def test_unknown_files_say_what_they_look_like(content, words, tmp_path):
    path = tmp_path / "model.t7"
    path.write_bytes(content)
    one_line_error(run(str(path), "-o", str(tmp_path / "out")), words, "Formats read: ")
    assert not (tmp_path / "out").exists()


def test_pytorch_checkpoint_saved_as_t7_is_named(tmp_path):
    """Old PyTorch code saved checkpoints as ckpt.t7: a torch.save zip, not Torch7."""
    path = tmp_path / "ckpt.t7"
    try:
        import torch

        torch.save({"net": {"w": torch.zeros(2)}, "acc": 93.1}, str(path))
    except ImportError:  # the layout torch.save writes (a zip with <name>/data.pkl)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("ckpt/data.pkl", b"\x80\x02}q\x00.")
            archive.writestr("ckpt/version", b"3\n")
    result = run(str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PyTorch checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_two_files_of_different_formats_are_refused(tmp_path, shared_dir):
    result = run(EXAMPLE, os.path.join(LIGHT, "light_squeezenet.onnx"), "-o", str(tmp_path))
    one_line_error(result, "different formats")


# -- output folder and input mistakes: one line, exit 2, nothing written ----------------------

def test_output_folder_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    one_line_error(run(EXAMPLE, "-o", str(target), "--no-verify"), "is a file")
    assert target.read_text() == "keep me"


def test_output_folder_under_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    one_line_error(run(EXAMPLE, "-o", str(blocker / "out"), "--no-verify"), "is a file")


def test_output_folder_that_cannot_be_created(tmp_path):
    one_line_error(run(EXAMPLE, "-o", "/proc/no-such-place/out", "--no-verify"), "output folder")


def test_batch_output_folder_that_is_a_file(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "m.t7").write_bytes(open(EXAMPLE, "rb").read())
    target = tmp_path / "taken"
    target.write_text("x")
    one_line_error(run("batch", str(archive), "-o", str(target)), "is a file")


def test_input_of_the_wrong_shape_names_the_expected_shape(tmp_path, shared_dir):
    sample = tmp_path / "x.npy"
    np.save(sample, np.zeros((1, 3, 10, 10), np.float32))
    result = run(os.path.join(LIGHT, "light_squeezenet.onnx"), "--to", "onnx", "--input",
                 str(sample), "-o", str(tmp_path / "out"))
    one_line_error(result, "1x3x224x224")


def test_expected_outputs_recorded_by_torch7_are_the_reference(tmp_path, shared_dir):
    """--input and --expected take Torch7 tensor files: real Torch7's own numbers."""
    model = os.path.join(T7_DIR, "a_lenet_float.t7")
    result = run(model, "--to", "onnx", "-o", str(tmp_path),
                 "--input", os.path.join(T7_DIR, "a_lenet_float_input.t7"),
                 "--expected", os.path.join(T7_DIR, "a_lenet_float_output.t7"))
    assert result.returncode == 0, result.stderr
    assert "vs the expected outputs (" in result.stdout and "a_lenet_float_output.t7" in \
        result.stdout and "OK" in result.stdout
    # a wrong expectation is a verification failure (exit 1), not a pass
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, read_raw("a_lenet_float_output")[0].astype(np.float32) + 0.5)
    bad = run(model, "--to", "onnx", "-o", str(tmp_path / "bad"),
              "--input", os.path.join(T7_DIR, "a_lenet_float_input.t7"), "--expected", str(wrong))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert not (tmp_path / "bad" / "a_lenet_float.onnx").exists()


# -- ONNX sources --------------------------------------------------------------------------

def _function_model(path: str) -> None:
    """An ONNX model whose body is a local function (as dynamo exports write them)."""
    body = helper.make_function(
        "local", "ScaledRelu", ["x", "s"], ["y"],
        [helper.make_node("Mul", ["x", "s"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
        opset_imports=[helper.make_opsetid("", 18)])
    graph = helper.make_graph(
        [helper.make_node("ScaledRelu", ["x", "scale"], ["h"], domain="local", name="act"),
         helper.make_node("Conv", ["h", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(np.float32([[[[0.5]], [[-2.0]]]]).reshape(
            1, 2, 1, 1), "scale"),
            onnx.numpy_helper.from_array(
                np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32), "w")])
    model = helper.make_model(graph, functions=[body], opset_imports=[
        helper.make_opsetid("", 18), helper.make_opsetid("local", 1)])
    onnx.save(model, path)


def test_local_functions_inlined_and_opset_18_converted(tmp_path):
    source = str(tmp_path / "fn.onnx")
    _function_model(source)
    before = sha(source)
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    expected = run_onnx(source, [x])  # onnxruntime on the original file: the truth for ONNX
    summary = migrate.convert(source, to="onnx", out_dir=str(tmp_path / "out"))
    assert any("local functions inlined" in n for n in summary.notes)
    assert any("opset 18 converted to 17" in n for n in summary.notes)
    got = run_onnx(summary.outputs["onnx"], [x])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    assert sha(source) == before


def test_dynamo_export_converts(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            x = torch.nn.functional.max_pool2d(x, 2, ceil_mode=True)
            return torch.softmax(self.fc(x.flatten(1)), -1)

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 7, 7)
    path = str(tmp_path / "net.onnx")
    torch.onnx.export(net, (x,), path, dynamo=True)
    with torch.no_grad():
        expected = net(x).numpy()  # PyTorch's own numbers
    for target in ("onnx", "caffe2"):
        summary = migrate.convert(path, to=target, out_dir=str(tmp_path / target),
                                  inputs=[x.numpy()], expected=[expected],
                                  expected_label="PyTorch")
        if summary.verification.executed:
            assert summary.verification.outputs.passed, summary.verification.outputs.describe()


# -- the public API -----------------------------------------------------------------------------

def test_convert_returns_the_summary_the_cli_prints(tmp_path):
    summary = migrate.convert([EXAMPLE], to="onnx", out_dir=str(tmp_path / "api"),
                              input_shapes=[[1, 8, 24, 32]])
    cli = run(EXAMPLE, "--to", "onnx", "-o", str(tmp_path / "api"), "--input-shape", "1x8x24x32")
    assert cli.returncode == 0, cli.stderr
    assert str(summary) == cli.stdout.strip()
    assert summary.outputs["onnx"].endswith("d_spynet_level_float.onnx")
    assert summary.verification.outputs.passed


def test_load_gives_the_common_graph():
    import onnx_ir as ir

    model = migrate.load(EXAMPLE, input_shapes=[[1, 8, 24, 32]])
    assert isinstance(model, ir.Model)
    assert [n.op_type for n in model.graph][:2] == ["Conv", "Relu"]


# -- check-mobile takes the pair either way ------------------------------------------------------

def test_check_mobile_takes_the_pair_in_either_order(tmp_path, caffe2_python):
    result = run(EXAMPLE, "-o", str(tmp_path), "--no-verify")
    assert result.returncode == 0, result.stderr
    init = str(tmp_path / "d_spynet_level_float_init_net.pb")
    predict = str(tmp_path / "d_spynet_level_float_predict_net.pb")
    for pair in ((init, predict), (predict, init)):
        checked = run("check-mobile", *pair)
        assert checked.returncode == 0 and "mobile-ready" in checked.stdout, checked.stdout
    one_line_error(run("check-mobile", init), "this is an init_net")


# -- batch ---------------------------------------------------------------------------------------

def test_batch_of_an_empty_folder_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(run("batch", str(tmp_path / "empty"), "-o", str(tmp_path / "out")),
                   "no model files found")


def test_batch_mixes_formats_and_never_writes_sources(tmp_path, shared_dir):
    archive = tmp_path / "archive"
    (archive / "onnx").mkdir(parents=True)
    (archive / "t7").mkdir()
    sources = {
        archive / "onnx" / "resnet.onnx": os.path.join(LIGHT, "light_resnet50.onnx"),
        archive / "onnx" / "conv.bin": os.path.join(REAL_DIR, "onnx", "backend",
                                                    "pytorch-converted", "test_Conv2d",
                                                    "model.onnx"),
        archive / "t7" / "lenet.t7": os.path.join(T7_DIR, "a_lenet_float.t7"),
    }
    for dest, src in sources.items():
        dest.write_bytes(open(src, "rb").read())
    before = {str(p): sha(str(p)) for p in sources}
    out = tmp_path / "out"
    result = run("batch", str(archive), "-o", str(out), "--to", "onnx", "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {str(p): sha(str(p)) for p in sources} == before
    report = json.load(open(out / "report.json"))
    assert report["formats"]["onnx"]["models"] == 2 and report["formats"]["torch7"]["models"] == 1
    assert all(m["status"] == "verified" for m in report["models"]), report["models"]
    assert "## By source format" in open(out / "report.md").read()


def _caffe2_pair(folder) -> list[str]:
    """A Caffe2 source: LeNet written by the Caffe2 writer (no verification needed)."""
    lenet = os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7")
    made = run(lenet, "--to", "caffe2", "-o", str(folder), "--no-verify")
    assert made.returncode == 0, made.stderr
    return [str(folder / "a_lenet_float_init_net.pb"),
            str(folder / "a_lenet_float_predict_net.pb")]


def _sources(kind: str, folder) -> list[str]:
    """Copies of one source of each kind, in `folder` (the originals stay out of reach)."""
    if kind == "caffe2":
        return _caffe2_pair(folder / "made")
    originals = {
        "onnx": [os.path.join(LIGHT, "light_squeezenet.onnx")],
        "caffe": [os.path.join(REAL_DIR, "caffe", "mtcnn", f"det1.{ext}")
                  for ext in ("prototxt", "caffemodel")],
    }[kind]
    copies = []
    for path in originals:
        copy = folder / os.path.basename(path)
        copy.write_bytes(open(path, "rb").read())
        copies.append(str(copy))
    return copies


@pytest.mark.parametrize("kind", ["onnx", "caffe", "caffe2"])
def test_conversion_and_verification_never_write_sources(kind, tmp_path, shared_dir):
    """Some converters rewrite the user's model in place; this one never writes a source,
    whichever reader takes it (PyTorch sources: test_pytorch_reader.py)."""
    sources = _sources(kind, tmp_path)
    shape = ["--input-shape", "1x3x12x12"] if kind == "caffe" else []
    before = [sha(p) for p in sources]
    for target in ("onnx", "caffe2"):
        result = run(*sources, *shape, "--to", target, "-o", str(tmp_path / target), "--report")
        assert result.returncode in (0, 1), result.stderr
        assert [sha(p) for p in sources] == before
    (converted,) = [f for f in os.listdir(tmp_path / "onnx") if f.endswith(".onnx")]
    check = run("verify", *sources, str(tmp_path / "onnx" / converted), *shape)
    assert check.returncode == 0, check.stdout + check.stderr
    assert [sha(p) for p in sources] == before


def test_a_guessed_input_size_must_fit_the_flattening_reshape(tmp_path):
    """A Caffe2 LeNet's first layer says 1 channel, not the size; the reshape before its
    FC takes 256 values, which only 28x28 gives. A reshape whose element count cannot
    match is an error when the graph is built (core), so the guess moves on instead of
    writing a model that fails when run; verified against the pair in real Caffe2."""
    sources = _caffe2_pair(tmp_path / "made")
    result = run(*sources, "--to", "onnx", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "input shape 1x1x28x28 inferred" in result.stdout
    assert "Caffe2 (real runtime)" in result.stdout and "OK" in result.stdout


def test_a_reshape_that_cannot_fit_is_a_clear_error(tmp_path):
    bad = helper.make_model(helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "bad",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", onnx.TensorProto.INT64, [2], [1, 50])]),
        opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "bad.onnx"
    onnx.save(bad, str(path))
    result = run(str(path), "--to", "onnx", "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reshape [1, 3, 4, 4] (48 values) to [1, 50]" in lines[0]
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_verify_takes_a_savedmodel_folder(tmp_path):
    pytest.importorskip("tensorflow")
    lenet = os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7")
    written = run(lenet, "--to", "tf", "-o", str(tmp_path), "--no-verify")
    assert written.returncode == 0, written.stderr
    check = run("verify", lenet, str(tmp_path / "a_lenet_float_savedmodel"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "every layer within" in check.stdout
