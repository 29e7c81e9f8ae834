"""SpyNet's whole coarse-to-fine pyramid as one network (`migrate spynet-pyramid`), against
real Torch7 running SpyNet's own spynet.lua with the real level models
(../shared/fixtures/real/spynet_pyramid): every level's recorded intermediates and the
final flow, in real Caffe2 (one process for every net), onnxruntime, PyTorch,
ExecuTorch, LiteRT and TensorFlow; check-mobile; the layer-by-layer report on a corrupted
weight; bad input."""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import onnx
import pytest
from fixtures_t7 import REAL_DIR

from migrate.cli import main
from migrate.core.formats.caffe2_pb2 import NetDef
from migrate.core.model import RunResult
from migrate.core.registry import WRITERS
from migrate.readers.spynet import SpyNetPyramid
from migrate.readers.spynet.levels import geometry
from migrate.readers.spynet.pyramid import build
from migrate.runtimes.caffe2.api import layer_ops
from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
from migrate.runtimes.ort.api import run_model
from migrate.verify.layerwise import compare_runs, format_table, run_files, runtime_missing
from migrate.writers.caffe2.mobile import check_mobile_files

MODELS = os.path.join(REAL_DIR, "spynet")
FIXTURES = os.path.join(REAL_DIR, "spynet_pyramid")
TYPES = {"F": "sintelFinal", "K": "kittiFinal"}
LEVELS = 4  # 128x160: 16x20, 32x40, 64x80, 128x160
LEVEL_ATOL = 1e-4  # every recorded per-level tensor
FLOW_ATOL = 1e-3  # the final flow, pixels
CORRUPTED = "level3.model.modules[5]"  # the third convolution of level 3


def raw(name: str) -> np.ndarray:
    (path,) = glob.glob(os.path.join(FIXTURES, "raw", f"{name}.*.f64"))
    shape = [int(d) for d in os.path.basename(path).split(".")[-2].split("x")]
    return np.fromfile(path, "<f8").reshape(shape)


def images(t: str) -> list[np.ndarray]:
    return [raw(f"spynet_pyramid_{t}_pair1_im{k}")[None].astype(np.float32) for k in (1, 2)]


def recorded_layers(t: str) -> dict[str, np.ndarray]:
    """What real Torch7 recorded, under the layer path of the step that computes it."""
    stem = f"spynet_pyramid_{t}_pair1"
    layers = {"input.normalize": raw(f"{stem}_input")}
    for k in range(1, LEVELS + 1):
        steps = {"modelin": "modelin", "model.modules[9]": "residual"}
        if k < LEVELS:  # the finest level's images are the input itself
            steps["images"] = "images"
        if k > 1:  # level 1 has no glue before its network; its flow is the residual
            steps.update(upflow="upflow", flowinit="flowinit", warp="warped", flow="flow")
        for step, name in steps.items():
            layers[f"level{k}.{step}"] = raw(f"{stem}_level{k}_{name}")
    return layers


def torch7_run(t: str) -> RunResult:
    return RunResult([raw(f"spynet_pyramid_{t}_pair1_flow")[None]], recorded_layers(t))


def graph(t: str):
    return build(SpyNetPyramid(MODELS, TYPES[t]), [[1, 3, 128, 160]], 1 << 40).model


def cli(*args: str) -> int:
    return main(["spynet-pyramid", *args])


def convert(t: str, to: str, out: str, *extra: str) -> int:
    return cli(MODELS, "--type", TYPES[t], "--input-shape", "1x3x128x160", "--to", to,
               "-o", out, *extra)


def check_against_torch7(t: str, run: RunResult, runtime: str) -> None:
    """Every recorded tensor within LEVEL_ATOL, the final flow within FLOW_ATOL px."""
    result = compare_runs(graph(t), torch7_run(t), run, runtime=runtime,
                          reference_label="real Torch7", atol=LEVEL_ATOL, rtol=0)
    compared = {row.path for row in result.layers if row.max_abs is not None}
    assert compared == set(recorded_layers(t)), sorted(set(recorded_layers(t)) - compared)
    assert result.first_divergence is None, format_table(result, LEVEL_ATOL, 0)
    flow = np.asarray(run.outputs[0], np.float64)
    assert flow.shape == (1, 2, 128, 160)
    assert np.abs(flow - torch7_run(t).outputs[0]).max() < FLOW_ATOL


@pytest.fixture(scope="module")
def spynet(shared_dir):
    if not os.path.isfile(os.path.join(FIXTURES, "raw", "spynet_pyramid_pair1_gtflow"
                                                        ".2x128x160.f64")):
        pytest.skip("the SpyNet pyramid fixtures are not in ../shared")
    return MODELS


@pytest.fixture(scope="module")
def caffe2_runs(spynet, caffe2_python, tmp_path_factory):
    """Both types written by the command (no verification: it would start a Caffe2
    process of its own), one with a corrupted weight; all three run in ONE Caffe2
    process with every layer's output traced."""
    out = tmp_path_factory.mktemp("spynet_caffe2")
    pairs = {}
    for t in TYPES:
        assert convert(t, "caffe2", str(out / t), "--no-verify") == 0
        (init,) = glob.glob(str(out / t / "*_init_net.pb"))
        pairs[t] = (init, init.replace("_init_net.pb", "_predict_net.pb"))
    corrupt_dir = out / "corrupted"
    shutil.copytree(out / "F", corrupt_dir)
    init, predict = (os.path.join(corrupt_dir, os.path.basename(p)) for p in pairs["F"])
    _corrupt_caffe2_weight(init, predict, CORRUPTED)
    pairs["F corrupted"] = (init, predict)
    assert cli(MODELS, "--input-shape", "1x3x120x150", "-o", str(out / "resized"),
               "--no-verify") == 0
    (init,) = glob.glob(str(out / "resized" / "*_init_net.pb"))
    pairs["F resized"] = (init, init.replace("_init_net.pb", "_predict_net.pb"))
    jobs = {}
    for name, (init, predict) in pairs.items():
        ops = layer_ops(predict)
        frames = cropped("F") if name == "F resized" else images(name[0])
        jobs[name] = (Caffe2Job(init, predict, frames,
                                trace=sorted(i for i, _ in ops.values())), ops)
    run_caffe2_jobs(caffe2_python, [job for job, _ in jobs.values()])
    runs = {}
    for name, (job, ops) in jobs.items():
        assert job.error is None, f"{name}: {job.error}"
        runs[name] = RunResult(job.outputs, {path: job.traced[i] for path, (i, _) in ops.items()})
    return pairs, runs


def _corrupt_caffe2_weight(init: str, predict: str, layer: str) -> None:
    net = NetDef.FromString(open(predict, "rb").read())
    (conv,) = [op for op in net.op if op.type == "Conv" and op.debug_info.startswith(layer + " ")]
    weight = conv.input[1]
    init_net = NetDef.FromString(open(init, "rb").read())
    (fill,) = [op for op in init_net.op if op.output[0] == weight]
    (values,) = [arg for arg in fill.arg if arg.name == "values"]
    values.floats[0] += 1.0
    open(init, "wb").write(init_net.SerializeToString())


# -- every level of the pyramid against real Torch7 ----------------------------------------

@pytest.mark.parametrize("t", TYPES)
def test_every_level_matches_real_torch7_in_caffe2(t, caffe2_runs):
    check_against_torch7(t, caffe2_runs[1][t], "Caffe2")


def test_caffe2_pair_is_mobile_ready(caffe2_runs):
    report = check_mobile_files(list(caffe2_runs[0]["F"]))
    assert report.ok, report.problems


@pytest.mark.parametrize("t", TYPES)
def test_every_level_matches_real_torch7_in_onnxruntime(t, spynet, tmp_path, capsys):
    """The command verifies the ONNX file against real Torch7's flow (--expected) with
    the frames as SpyNet loads them (8-bit PPM / 255); then every level's steps."""
    stem = f"spynet_pyramid_{t}_pair1"
    frames = [os.path.join(FIXTURES, f"spynet_pyramid_pair1_im{k}.ppm") for k in (1, 2)]
    assert convert(t, "onnx", str(tmp_path), "--input", frames[0], "--input", frames[1],
                   "--expected", os.path.join(FIXTURES, f"{stem}_flow.t7"),
                   "--atol", str(FLOW_ATOL)) == 0
    assert "onnxruntime (real runtime) vs the expected outputs" in capsys.readouterr().out
    (path,) = glob.glob(str(tmp_path / "*.onnx"))
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["im1", "im2"]
    assert [o.name for o in model.graph.output] == ["flow"]
    assert sum(n.op_type == "GridSample" for n in model.graph.node) == LEVELS - 1
    check_against_torch7(t, run_files("onnxruntime", {"onnx": path}, images(t), layers=True),
                         "onnxruntime")


def test_gather_warp_matches_real_torch7(spynet):
    """The warp spelled out with Gather (for targets without a sampler), in onnxruntime."""
    model = build(SpyNetPyramid(MODELS, "kittiFinal", "gather"), [[1, 3, 128, 160]], 1 << 40)
    assert not any(node.op_type == "GridSample" for node in model.model.graph)
    check_against_torch7("K", run_model(model.model, images("K"), layers=True), "onnxruntime")


@pytest.mark.parametrize("t", TYPES)
def test_every_level_matches_real_torch7_in_pytorch(t, spynet, tmp_path, capsys):
    """Also the command's own check (--report): PyTorch against the source graph in
    onnxruntime, every level's steps, on its synthetic moving pair."""
    if WRITERS.get("pytorch") is None or runtime_missing("torch"):
        pytest.skip("no PyTorch writer or runtime here")
    assert convert(t, "pytorch", str(tmp_path), "--report") == 0
    printed = capsys.readouterr().out
    assert "level4.warp (nn.BilinearSamplerBHWD)" in printed
    assert "every layer within" in printed and "synthetic 128x160 image pair" in printed
    assert glob.glob(str(tmp_path / "*.report.html"))
    files = {"code": glob.glob(str(tmp_path / "*.py"))[0],
             "weights": glob.glob(str(tmp_path / "*.safetensors"))[0],
             "meta": [p for p in glob.glob(str(tmp_path / "*.json")) if ".report." not in p][0]}
    check_against_torch7(t, run_files("torch", files, images(t), layers=True), "PyTorch")


@pytest.mark.parametrize(("to", "t", "warp"), [("tflite", "F", "auto"),
                                               ("tflite", "K", "gather"), ("tf", "F", "auto")])
def test_every_level_matches_real_torch7_in_litert_and_tensorflow(to, t, warp, spynet,
                                                                   tmp_path):
    """LiteRT and TensorFlow: the warp as GridSample's Gather-of-four-neighbours
    construction (default), or the pyramid's own Gather warp; channels last throughout
    with no Transpose op left; every level's steps against real Torch7."""
    spec = WRITERS.get(to)
    why = runtime_missing(spec.runtime)
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    assert convert(t, to, str(tmp_path), "--warp", warp, "--no-verify") == 0
    files = spec.load().recognize(sorted(glob.glob(str(tmp_path / "*"))))
    with open(files["json"]) as fh:
        assert json.load(fh)["transposes"] == []
    check_against_torch7(t, run_files(spec.runtime, files, images(t), layers=True),
                         "LiteRT" if to == "tflite" else "TensorFlow")


def test_other_targets_reproduce_the_flow_or_refuse_the_warp_clearly(spynet, tmp_path, capsys):
    """Every other writer: its file runs in its real runtime and gives real Torch7's flow,
    or the writer cannot express the warp (BVLC Caffe: no sampler, no Floor): one clear
    line, exit 2."""
    tested = {"caffe2", "onnx", "pytorch", "tflite", "tf"}
    for spec in WRITERS.all():
        if spec.name in tested:
            continue
        out = str(tmp_path / spec.name)
        capsys.readouterr()
        status = convert("F", spec.name, out, "--no-verify")
        err = capsys.readouterr().err
        if status == 2:
            assert err.startswith("migrate: error: ") and err.count("\n") == 1, err
            assert "level2.warp (nn.BilinearSamplerBHWD)" in err and "warp needs" in err, err
            continue
        assert status == 0, err
        why = runtime_missing(spec.runtime)
        if why:
            continue
        files = spec.load().recognize(sorted(glob.glob(os.path.join(out, "*"))))
        run = run_files(spec.runtime, files, images("F"), layers=False)
        flow = np.asarray(run.outputs[0], np.float64).reshape(1, 2, 128, 160)
        assert np.abs(flow - torch7_run("F").outputs[0]).max() < FLOW_ATOL, spec.name


# -- layer by layer: a corrupted weight is found --------------------------------------------

def test_report_names_the_level_and_step_of_a_corrupted_weight(caffe2_runs):
    corrupted = caffe2_runs[1]["F corrupted"]
    # against the source graph in onnxruntime: the very convolution
    reference = run_model(graph("F"), images("F"), layers=True)
    result = compare_runs(graph("F"), reference, corrupted, runtime="Caffe2",
                          reference_label="the source graph", atol=1e-4, rtol=1e-4)
    assert result.first_divergence.path == CORRUPTED
    assert f"first divergence: {CORRUPTED} (cudnn.SpatialConvolution)" in format_table(
        result, 1e-4, 1e-4)
    # against real Torch7's recording: level 3's residual, its first recorded tensor after it
    result = compare_runs(graph("F"), torch7_run("F"), corrupted, runtime="Caffe2",
                          reference_label="real Torch7", atol=LEVEL_ATOL, rtol=0)
    assert result.first_divergence.path == "level3.model.modules[9]"
    passed = [row.path for row in result.layers if row.passed]
    assert "level3.modelin" in passed and "level2.flow" in passed


def test_migrate_verify_names_the_level_and_step(spynet, tmp_path, capsys):
    assert convert("F", "onnx", str(tmp_path), "--no-verify") == 0
    (good,) = glob.glob(str(tmp_path / "*.onnx"))
    model = onnx.load(good)
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv" and any(
        p.key == "source.path" and p.value == CORRUPTED for p in n.metadata_props)]
    (weight,) = [t for t in model.graph.initializer if t.name == conv.input[1]]
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] += 1.0
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    bad = str(tmp_path / "corrupted.onnx")
    onnx.save(model, bad)
    capsys.readouterr()
    assert main(["verify", good, bad]) == 1
    captured = capsys.readouterr()
    assert f"first divergence: {CORRUPTED} (cudnn.SpatialConvolution)" in captured.out
    assert f"first divergence at {CORRUPTED}" in captured.err


# -- the glue's rules -----------------------------------------------------------------------

def test_level_count_follows_spynet_lua():
    # rounded up to a multiple of 32, then the longer side: <= 32 -> 1 ... > 512 -> 6
    for (h, w), levels in {(32, 32): 1, (20, 33): 2, (128, 160): 4, (384, 512): 5,
                           (375, 1242): 6, (436, 1024): 6, (16, 2000): 6}.items():
        assert geometry([[1, 3, h, w]]).levels == levels, (h, w)


def cropped(t: str) -> list[np.ndarray]:
    return [np.ascontiguousarray(im[:, :, :120, :150]) for im in images(t)]


def check_known_motion(flow: np.ndarray) -> None:
    known = raw("spynet_pyramid_pair1_gtflow")[:, :120, :150]
    epe = np.sqrt(((flow - known) ** 2).sum(axis=0))[8:-8, 8:-8].mean()
    zero_epe = np.sqrt((known ** 2).sum(axis=0)).mean()
    assert flow.shape == (2, 120, 150) and epe < 0.1 * zero_epe, (epe, zero_epe)


def test_resized_images_still_give_the_known_motion(spynet):
    """Sizes that are not multiples of 32 are resized inside and the flow scaled back
    (image.scale, DeAdjustFlow): frames cropped to 120x150 still give the known motion."""
    model = build(SpyNetPyramid(MODELS, "sintelFinal"), [[1, 3, 120, 150]], 1 << 40)
    assert any("resized to 128x160" in note for note in model.notes)
    check_known_motion(run_model(model.model, cropped("F")).outputs[0][0])


def test_resized_images_in_caffe2(caffe2_runs):
    model = build(SpyNetPyramid(MODELS, "sintelFinal"), [[1, 3, 120, 150]], 1 << 40).model
    result = compare_runs(model, run_model(model, cropped("F"), layers=True),
                          caffe2_runs[1]["F resized"], runtime="Caffe2",
                          reference_label="the source graph", atol=1e-4, rtol=1e-4)
    assert result.outputs.passed, result.outputs.describe()
    rows = {row.path: row for row in result.layers}
    assert rows["input.scale"].passed and rows["output.deadjust"].passed
    check_known_motion(caffe2_runs[1]["F resized"].outputs[0][0])


def test_chairs_types_reuse_level_5_at_level_6(spynet):
    """chairsClean has no modelL6_4: spynet.lua loads modelL5_4 again; its weights are
    stored once."""
    model = build(SpyNetPyramid(MODELS, "chairsClean"), [[1, 3, 32, 1024]], 1 << 40)
    assert [os.path.basename(p) for p in model.paths] == [f"modelL{k}_4.t7" for k in range(1, 6)]
    convs = [n for n in model.model.graph if n.op_type == "Conv"]
    level5 = [n.inputs[1] for n in convs if n.metadata_props["source.path"].startswith("level5")]
    level6 = [n.inputs[1] for n in convs if n.metadata_props["source.path"].startswith("level6")]
    assert len(level6) == 5 and all(a is b for a, b in zip(level5, level6, strict=True))


# -- bad input: one clear line, exit 2 ---------------------------------------------------------

def _one_line_error(capsys, status: int, *words: str) -> None:
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("migrate: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_bad_input_is_one_clear_line(spynet, tmp_path, capsys):
    out = str(tmp_path / "out")
    shape = ["--input-shape", "1x3x64x64", "-o", out]
    # missing level files
    some = tmp_path / "some"
    some.mkdir()
    shutil.copy(os.path.join(MODELS, "modelL1_F.t7"), some)
    _one_line_error(capsys, cli(str(some), *shape), "missing modelL2_F.t7", "2 level(s)")
    _one_line_error(capsys, cli(str(tmp_path / "none"), *shape), "no such folder")
    # a wrong type, sizes SpyNet cannot take
    _one_line_error(capsys, cli(MODELS, "--type", "sintel", *shape), "unknown --type 'sintel'",
                    "kittiFinal")
    _one_line_error(capsys, cli(MODELS, "--input-shape", "1x3x8x200", "-o", out), "too small")
    _one_line_error(capsys, cli(MODELS, "--input-shape", "1x1x64x64", "-o", out), "RGB")
    _one_line_error(capsys, cli(MODELS, "--input-shape", "1x3x64x64,1x3x64x96", "-o", out),
                    "differ in size")
    _one_line_error(capsys, cli(MODELS, "-o", out), "--input-shape")
    # a folder of files that are not SpyNet's level networks
    other = tmp_path / "other"
    other.mkdir()
    lenet = os.path.join(os.path.dirname(REAL_DIR), "torch7", "a_lenet_float.t7")
    shutil.copy(lenet, other / "modelL1_F.t7")
    (other / "modelL2_F.t7").write_text("not a model\n")
    _one_line_error(capsys, cli(str(other), *shape), "modelL1_F.t7", "not a SpyNet level network")
    shutil.copy(os.path.join(MODELS, "modelL1_F.t7"), other / "modelL1_F.t7")
    _one_line_error(capsys, cli(str(other), *shape), "modelL2_F.t7")
    assert not os.path.exists(out) or not os.listdir(out)
