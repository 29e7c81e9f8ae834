"""Caffe2 as a source: NetDef pairs made by real Caffe2's own tools (caffe_translator,
brew + mobile_exporter, NCHW and NHWC) and the real SqueezeNet predict nets convert and
reproduce what real Caffe2 computes on them; every Torch7 fixture our Caffe2 writer
exports reads back and reproduces real Torch7's outputs; broken pairs fail clearly."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from fixtures_t7 import PROJECT_FIXTURES, ROOT, SHARED, cases, manifest_names

from migrate.core.errors import MigrateError
from migrate.core.formats.caffe2_pb2 import NetDef
from migrate.core.model import WriteOptions
from migrate.core.passes.optimize import optimize
from migrate.pipeline import ConvertOptions, read_source
from migrate.readers.torch7.reader import read_torch7
from migrate.runtimes.ort.api import run_model
from migrate.verify.compare import compare
from migrate.writers.caffe2.writer import write as write_caffe2

ATOL = RTOL = 1e-4
TRANSLATED = ["lenet", "cifar10", "det1", "det2", "det3"]
PAIRS = [f"translated_{n}" for n in TRANSLATED] + [
    "brew_nchw", "brew_nhwc", "squeeze_predict_net", "squeezenet_predict"]
EXAMPLE = os.path.join(PROJECT_FIXTURES, "torch7", "d_spynet_level_float.t7")


def _caffe_pb2_package(tmp: str) -> str | None:
    """caffe_translator imports caffe.proto.caffe_pb2: real Caffe's own generated module,
    from the Caffe side runtime, put alone in a package the Caffe2 runtime can import."""
    caffe = shutil.which("caffe-python")
    if caffe is None:
        return None
    found = subprocess.run([caffe, "-c", "import caffe.proto.caffe_pb2 as m; print(m.__file__)"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        return None
    package = os.path.join(tmp, "caffe_pb2_pkg", "caffe", "proto")
    os.makedirs(package)
    for folder in (package, os.path.dirname(package)):
        open(os.path.join(folder, "__init__.py"), "w").close()
    shutil.copy(found.stdout.strip(), package)
    return os.path.dirname(os.path.dirname(package))


@pytest.fixture(scope="module")
def pairs(caffe2_python, shared_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("caffe2-pairs"))
    args = [caffe2_python, os.path.join(ROOT, "tests", "caffe2_pairs.py"), out, SHARED]
    package = _caffe_pb2_package(out)
    if package:
        args.append(package)
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    made = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            made[entry["name"]] = entry
    return out, made


def _io(folder: str, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(os.path.join(folder, f"{name}_io.npz")) as data:
        ins = [data[k] for k in sorted((k for k in data.files if k.startswith("in")),
                                       key=lambda k: int(k[2:]))]
        outs = [data[k] for k in sorted((k for k in data.files if k.startswith("out")),
                                        key=lambda k: int(k[3:]))]
    return ins, outs


@pytest.mark.caffe2
@pytest.mark.parametrize("name", PAIRS)
def test_pairs_made_by_caffe2_tools_reproduce_caffe2(name, pairs, tmp_path):
    folder, made = pairs
    if name.startswith("translated_") and name not in made:
        if os.environ.get("CI"):
            pytest.fail("the Caffe runtime (for caffe_pb2) is not provisioned")
        pytest.skip("no Caffe runtime: caffe_translator needs caffe.proto.caffe_pb2")
    assert made[name]["ok"], made[name].get("error")
    inputs, expected = _io(folder, name)  # what real Caffe2 computed
    # the pair given in reverse order: told apart by content
    paths = [os.path.join(folder, f"{name}_predict_net.pb"),
             os.path.join(folder, f"{name}_init_net.pb")]
    source = read_source(paths, ConvertOptions(input_shapes=[a.shape for a in inputs]))
    got = run_model(source.model, inputs).outputs
    result = compare(got, expected, ATOL, RTOL)
    assert result.passed, result.describe()


@pytest.mark.caffe2
def test_cleanup_to_caffe2_is_mobile_ready_and_verified(pairs, tmp_path, caffe2_python):
    folder, made = pairs
    name = "brew_nhwc"
    assert made[name]["ok"], made[name].get("error")
    inputs, _ = _io(folder, name)
    sample = tmp_path / "x.npy"
    np.save(sample, inputs[0])
    cli = subprocess.run(
        [sys.executable, "-m", "migrate", os.path.join(folder, f"{name}_init_net.pb"),
         os.path.join(folder, f"{name}_predict_net.pb"), "--to", "caffe2", "-o",
         str(tmp_path / "out"), "--input", str(sample), "--caffe2-python", caffe2_python],
        capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "vs the source files in Caffe2 (real runtime)" in cli.stdout
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == [f"{name}_init_net.pb", f"{name}_predict_net.pb",
                                       f"{name}_predict_net.pbtxt"]
    mobile = subprocess.run([sys.executable, "-m", "migrate", "check-mobile",
                             str(out / f"{name}_predict_net.pb"), str(out / f"{name}_init_net.pb")],
                            capture_output=True, text=True)
    assert mobile.returncode == 0, mobile.stdout
    # the NHWC net became NCHW inside, with its inputs and outputs as they were
    predict = NetDef.FromString((out / f"{name}_predict_net.pb").read_bytes())
    assert all(a.s != b"NHWC" for op in predict.op for a in op.arg if a.name == "order")


ROUND_TRIP = [c for c in cases(sum((manifest_names(m) for m in (
    "manifest.txt", "manifest_n.txt", "manifest_p.txt")), [])) if not c.name.endswith("_double")]
ORIGINAL = set(manifest_names("manifest.txt"))


def _variants():
    """The original fixtures naive and optimized; the n_/p_/q_ ones optimized (the default)."""
    for case in ROUND_TRIP:
        base = case.name.rsplit("_", 1)[0]
        for variant in (("naive", "optimized") if base in ORIGINAL else ("optimized",)):
            yield pytest.param(case, variant, id=f"{case.name}-{variant}")


@pytest.mark.parametrize(("case", "variant"), list(_variants()))
def test_every_torch7_export_reads_back(case, variant, tmp_path, shared_dir):
    """Torch7 -> our Caffe2 pair -> the Caffe2 reader -> onnxruntime = real Torch7."""
    model = read_torch7(case.model, [a.shape for a in case.inputs]).model
    if variant == "optimized":
        optimize(model)
    files = write_caffe2(model, str(tmp_path), "m",
                         WriteOptions(optimize=variant == "optimized")).files
    source = read_source([files["predict_net"], files["init_net"]],
                         ConvertOptions(input_shapes=[a.shape for a in case.inputs]))
    result = compare(run_model(source.model, case.inputs).outputs, case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()
    # layers keep the Torch7 module they came from (our writer's debug_info)
    paths = {n.metadata_props.get("source.path") for n in source.model.graph}
    assert any(p and p.startswith("model") for p in paths)


# -- broken pairs -----------------------------------------------------------------------------

@pytest.fixture
def pair(tmp_path):
    model = read_torch7(EXAMPLE, [[1, 8, 24, 32]]).model
    files = write_caffe2(model, str(tmp_path), "m", WriteOptions()).files
    return files["init_net"], files["predict_net"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True,
                          text=True, timeout=300)


def _one_line(result, *needles):
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("migrate: error: ") and "Traceback" not in line
    for needle in needles:
        assert needle in line, line


def test_truncated_init_net(pair, tmp_path):
    init, predict = pair
    data = open(init, "rb").read()
    open(init, "wb").write(data[: len(data) // 2])
    _one_line(_cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o")), "m_init_net.pb")


def test_fill_declaring_a_trillion_elements(pair, tmp_path):
    init, predict = pair
    net = NetDef.FromString(open(init, "rb").read())
    shape = next(a for a in net.op[0].arg if a.name == "shape")
    del shape.ints[:]
    shape.ints.extend([1_000_000, 1_000_000])
    open(init, "wb").write(net.SerializeToString())
    _one_line(_cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o")), "1,000,000,000,000")


def test_op_reading_a_blob_nobody_writes(pair, tmp_path):
    init, predict = pair
    net = NetDef.FromString(open(predict, "rb").read())
    net.op[2].input[0] = "ghost"
    open(predict, "wb").write(net.SerializeToString())
    _one_line(_cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o"), "--input-shape",
                   "1x8x24x32"), "ghost")


def test_cycle_reads_a_later_blob(pair, tmp_path):
    init, predict = pair
    net = NetDef.FromString(open(predict, "rb").read())
    net.op[0].input[0] = net.op[-1].output[0]  # the first op reads the last op's output
    open(predict, "wb").write(net.SerializeToString())
    _one_line(_cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o"), "--input-shape",
                   "1x8x24x32"))


def test_random_fills_and_int8_ops_are_named(pair, tmp_path):
    init, predict = pair
    net = NetDef.FromString(open(init, "rb").read())
    net.op[0].type = "XavierFill"
    open(init, "wb").write(net.SerializeToString())
    _one_line(_cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o")), "XavierFill",
              "--allow-random-init")
    ok = _cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o"), "--allow-random-init",
              "--no-verify")
    assert ok.returncode == 0 and "seeded random weights" in ok.stdout, ok.stderr
    net = NetDef.FromString(open(predict, "rb").read())
    net.op[0].type = "Int8Conv"
    net.op[2].type = "MyOwnOp"
    open(predict, "wb").write(net.SerializeToString())
    _one_line(_cli(init, predict, "--to", "onnx", "-o", str(tmp_path / "o"),
                   "--allow-random-init"), "Int8Conv", "MyOwnOp", "op[0]", "op[2]")


def test_half_a_pair_says_what_is_missing(pair, tmp_path):
    init, _ = pair
    _one_line(_cli(init, "-o", str(tmp_path / "o")), "init_net", "predict_net")


def test_real_squeezenet_predict_nets_are_claimed(shared_dir):
    from migrate.core.detect import claim

    for path in glob.glob(os.path.join(SHARED, "fixtures", "real", "caffe2", "*.pb")):
        found = claim(path)
        assert found is not None and (found.format, found.role) == ("caffe2", "predict_net")


def test_inspect_lists_ops(pair):
    init, predict = pair
    result = _cli("inspect", predict, init)
    assert result.returncode == 0, result.stderr
    assert "ok  op[0] Conv" in result.stdout


def test_broken_netdefs_are_migrate_errors(pair):
    init, predict = pair
    data = open(predict, "rb").read()
    for damaged in (data[:7], data[:-3], b"\x12\xff\xff\xff\xff\x0f" + data):
        open(predict, "wb").write(damaged)
        with pytest.raises(MigrateError):
            read_source([init, predict], ConvertOptions(input_shapes=[[1, 8, 24, 32]]))


# -- to the other targets ---------------------------------------------------------------------

OTHER_TARGETS = ["pytorch", "caffe", "tflite"]


@pytest.mark.caffe2
@pytest.mark.parametrize("target", OTHER_TARGETS)
@pytest.mark.parametrize("name", PAIRS)
def test_pairs_to_every_target_reproduce_caffe2(name, target, pairs, tmp_path):
    """Each pair real Caffe2 made, to the other targets, run in their real runtimes."""
    from migrate.core.registry import WRITERS
    from migrate.verify.layerwise import run_files, runtime_missing

    folder, made = pairs
    if name not in made:
        pytest.skip("no Caffe runtime: caffe_translator needs caffe.proto.caffe_pb2")
    writer = WRITERS.get(target)
    why = runtime_missing(writer.runtime)
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    inputs, expected = _io(folder, name)
    paths = [os.path.join(folder, f"{name}_init_net.pb"),
             os.path.join(folder, f"{name}_predict_net.pb")]
    source = read_source(paths, ConvertOptions(input_shapes=[a.shape for a in inputs]))
    optimize(source.model)
    files = writer.load().write(source.model, str(tmp_path), name,
                                WriteOptions(source=source)).files
    got = run_files(writer.runtime, files, inputs, layers=False).outputs
    result = compare(got, expected, ATOL, RTOL)
    assert result.passed, result.describe()
