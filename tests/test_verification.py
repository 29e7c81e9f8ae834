"""Proof to the user: layer-by-layer verification, reports, the mobile check and
preprocessing folded into the first layer."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from fixtures_t7 import PROJECT_FIXTURES, REAL_DIR, T7_DIR, read_raw

from migrate.core.formats.caffe2_pb2 import NetDef
from migrate.core.passes.preprocessing import Preprocessing, fold_input_preprocessing
from migrate.readers.torch7.reader import read_torch7
from migrate.runtimes.caffe2.side import run_caffe2
from migrate.runtimes.ort.api import run_onnx
from migrate.writers.caffe2.mobile import check_mobile
from migrate.writers.caffe2.writer import build_nets, write_caffe2

SPYNET_LEVEL = os.path.join(PROJECT_FIXTURES, "torch7", "d_spynet_level_float.t7")


def migrate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrate.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.fixture
def converted(tmp_path, caffe2_python):
    result = migrate(SPYNET_LEVEL, "-o", str(tmp_path), "--input-shape", "1x8x24x32",
                     "--caffe2-python", caffe2_python)
    assert result.returncode == 0, result.stderr
    stem = tmp_path / "d_spynet_level_float"
    return str(stem) + "_init_net.pb", str(stem) + "_predict_net.pb"


def _corrupt(init_net: str, blob: str) -> None:
    net = NetDef.FromString(open(init_net, "rb").read())
    (fill,) = [op for op in net.op if op.output[0] == blob]
    values = next(a for a in fill.arg if a.name == "values")
    values.floats[7] += 0.25
    open(init_net, "wb").write(net.SerializeToString())


def test_verify_names_the_layer_whose_weight_was_corrupted(converted, tmp_path, caffe2_python):
    init_net, predict_net = converted
    sample = tmp_path / "sample.npy"
    np.save(sample, read_raw("d_spynet_level_float_input")[0].astype(np.float32))
    ok = migrate("verify", SPYNET_LEVEL, init_net, predict_net, "--input", str(sample),
                 "--caffe2-python", caffe2_python)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every layer within" in ok.stdout

    _corrupt(init_net, "conv3_w")  # the third convolution: module 5 of the Sequential
    bad = migrate("verify", SPYNET_LEVEL, predict_net, init_net, "--input", str(sample),
                  "--caffe2-python", caffe2_python, "--report", str(tmp_path / "v.html"))
    assert bad.returncode == 1
    assert ("first divergence: model.modules[5] (nn.SpatialConvolution) (blob conv3)"
            in bad.stdout)
    assert "first divergence at model.modules[5] (nn.SpatialConvolution)" in bad.stderr
    lines = [line for line in bad.stdout.splitlines() if "model.modules[" in line]
    assert all("exceeds" not in line for line in lines[:4])  # layers before it agree
    assert "Fix-ups applied" in open(tmp_path / "v.html").read()
    assert os.path.exists(tmp_path / "v.json")


def test_verify_without_caffe2_runtime_says_it_did_not_run(converted, tmp_path):
    init_net, predict_net = converted
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MIGRATE_CAFFE2_PYTHON"}
    env.update(PATH=str(bin_dir), MIGRATE_CAFFE2_HOME=str(tmp_path / "none"))
    result = migrate("verify", SPYNET_LEVEL, init_net, predict_net, "--input-shape",
                     "1x8x24x32", env=env)
    assert result.returncode == 1
    assert "NOT RUN" in result.stdout and "NOT executed" in result.stdout


def test_report_page_renders_in_a_real_browser(tmp_path, caffe2_python):
    result = migrate(os.path.join(T7_DIR, "c_residual_float.t7"), "--report", "-o",
                     str(tmp_path), "--input-shape", "1x4x8x8", "--caffe2-python", caffe2_python)
    assert result.returncode == 0, result.stderr
    assert "every layer within" in result.stdout  # the table printed on the terminal
    page = tmp_path / "c_residual_float.report.html"
    data = (tmp_path / "c_residual_float.report.json").read_text()
    assert '"verdict": "PASS"' in data and "model.modules[4] (nn.Concat)" not in data
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert "PASS" in dom and "<svg" in dom and dom.count("<tr") >= 10
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1100,1400", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_mobile_check_passes_on_every_spynet_export(tmp_path, shared_dir):
    models = sorted(glob.glob(os.path.join(REAL_DIR, "spynet", "*.t7")))
    assert len(models) == 28
    for path in models:
        stem = os.path.basename(path)[:-3]
        nets = build_nets(read_torch7(path, [[1, 8, 24, 32]]).model, stem)
        paths = write_caffe2(nets, str(tmp_path), stem)
        report = check_mobile(paths["predict_net"])
        assert report.ok, (stem, report.problems)
        assert report.init_net == paths["init_net"]


def test_mobile_check_rejects_ops_outside_the_mobile_set(converted, tmp_path):
    init_net, predict_net = converted
    net = NetDef.FromString(open(predict_net, "rb").read())
    last = net.op[-1].output[0]
    net.op.add(type="ATen", input=[last], output=["aten_out"])
    net.op.add(type="Permute", input=["aten_out"], output=["permuted"])  # a Caffe fork layer
    dropout = net.op.add(type="Dropout", input=["permuted"], output=["dropped", "mask"])
    dropout.arg.add(name="is_test", i=1)  # in Caffe2's own Android SqueezeNet: allowed
    conv = net.op[0]
    conv.engine = "CUDNN"
    bad = tmp_path / "bad_predict_net.pb"
    bad.write_bytes(net.SerializeToString())
    result = migrate("check-mobile", str(bad), "--init-net", init_net)
    assert result.returncode == 1
    assert "ATen operators are not available in mobile builds" in result.stdout
    assert "operator 'Permute' is not registered in Caffe2's CPU build" in result.stdout
    assert "Dropout" not in result.stdout
    assert "engine 'CUDNN' is not available on mobile CPUs" in result.stdout
    good = migrate("check-mobile", predict_net)
    assert good.returncode == 0 and "mobile-ready" in good.stdout


@pytest.mark.parametrize("case", ["h_legacy_bn_runningstd_double", "b_misc_layers_float"])
def test_folded_preprocessing_takes_raw_rgb_input(case, tmp_path, caffe2_python, shared_dir):
    """The model expects ((BGR image) - mean) * scale; the folded model takes the raw
    RGB image and must reproduce real Torch7's output for the normalized input."""
    (x,), (expected,) = read_raw(f"{case}_input"), read_raw(f"{case}_output")
    mean_rgb, scale = np.array([123.7, 116.3, 103.5]), 1 / 58.0
    mean_bgr = mean_rgb[::-1]
    raw_bgr = x / scale + mean_bgr.reshape(1, 3, 1, 1)
    raw_rgb = raw_bgr[:, ::-1]
    model = read_torch7(os.path.join(T7_DIR, f"{case}.t7"), [x.shape]).model
    notes = fold_input_preprocessing(model, Preprocessing(True, list(mean_rgb), scale))
    assert any("BGR->RGB" in n for n in notes) and any("scale" in n for n in notes)
    (ours,) = run_onnx(model, [raw_rgb])
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=1e-4)
    paths = write_caffe2(build_nets(model, case), str(tmp_path), case)
    (theirs,) = run_caffe2(caffe2_python, paths["init_net"], paths["predict_net"], [raw_rgb])
    np.testing.assert_allclose(theirs, expected, atol=1e-4, rtol=1e-4)


def test_preprocessing_flags_reach_the_report(tmp_path, caffe2_python, shared_dir):
    model = os.path.join(T7_DIR, "h_legacy_bn_runningstd_double.t7")
    result = migrate(model, "-o", str(tmp_path), "--report", "--input-bgr-to-rgb",
                     "--input-mean", "123.7,116.3,103.5", "--input-scale", "0.017",
                     "--input-shape", "1x3x7x7", "--caffe2-python", caffe2_python)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "h_legacy_bn_runningstd_double.report.html").read_text()
    assert "BGR-&gt;RGB folded" in page and "mean folded into the first convolution" in page


def test_verify_takes_an_image_as_input(tmp_path, caffe2_python, shared_dir):
    cv2 = pytest.importorskip("cv2")
    model = os.path.join(T7_DIR, "h_legacy_bn_runningstd_double.t7")
    image = tmp_path / "sample.png"
    pixels = np.random.default_rng(4).integers(0, 256, (7, 7, 3), dtype=np.uint8)
    cv2.imwrite(str(image), pixels)
    converted = migrate(model, "-o", str(tmp_path), "--input", str(image),
                        "--caffe2-python", caffe2_python)
    assert converted.returncode == 0, converted.stderr
    assert "the given 1x3x7x7 input" in converted.stdout
    stem = tmp_path / "h_legacy_bn_runningstd_double"
    result = migrate("verify", model, f"{stem}_init_net.pb", f"{stem}_predict_net.pb",
                     "--input", str(image), "--caffe2-python", caffe2_python)
    assert result.returncode == 0, result.stdout + result.stderr


def test_failed_verification_keeps_the_report_and_no_model_files(tmp_path, caffe2_python,
                                                                 shared_dir):
    # a plugin that breaks the Caffe2 writer's Tanh (emits Sigmoid): a real mismatch
    plugin = tmp_path / "broken_writer.py"
    plugin.write_text(
        "from migrate.plugins import caffe2_converter\n\n"
        "@caffe2_converter('Tanh')\n"
        "def wrong_tanh(w, node):\n"
        "    w.simple('Sigmoid', 'tanh', node)\n")
    model = os.path.join(T7_DIR, "f_nngraph_residual_float.t7")
    out = tmp_path / "out"
    result = migrate(model, "-o", str(out), "--report", "--plugin", str(plugin),
                     "--input-shape", "1x3x10x10", "--caffe2-python", caffe2_python)
    assert result.returncode == 1
    assert "first divergence at model.modules[7] (nn.Tanh)" in result.stderr
    assert sorted(os.listdir(out)) == ["f_nngraph_residual_float.report.html",
                                       "f_nngraph_residual_float.report.json"]
    # the report lists no deleted files, and keeps fix-ups apart from plain notes
    page = (out / "f_nngraph_residual_float.report.html").read_text()
    assert "none: verification failed, so the converted files were not kept" in page
    assert "_init_net.pb" not in page.split("<h2>Files</h2>")[1].split("<h2>")[0]
    data = json.loads((out / "f_nngraph_residual_float.report.json").read_text())
    assert data["files"] == {}
    assert not any("inferred" in f for f in data["fixups"])
