"""PyTorch as a target: readable nn.Module code + safetensors.

- Torch7 -> PyTorch: the 28 real SpyNet models and every Torch7 fixture of manifest.txt,
  written as STEM.py + STEM.safetensors, imported and run in a fresh interpreter that
  cannot import this project (`-I`, a folder outside the repository, `migrate` blocked),
  reproduce what real Lua Torch7 computed, within 1e-4.
- ONNX -> PyTorch: ONNX's backend test models (light zoo models and node tests) match
  the outputs stored beside them, run by the PyTorch runtime (migrate.runtimes.torch).
- Per-layer values (the JSON's layer map, read by torch.fx), --pytorch-export, the state
  dict streamed without copies, clear errors for what PyTorch cannot express, and the
  round trips through the PyTorch and Caffe readers where those exist.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from fixtures_onnx import UNREADABLE, backend_models, stored_data
from fixtures_t7 import (
    REAL_DIR,
    ROOT,
    SPYNET_MODELS,
    cases,
    manifest_names,
    spynet_expected,
    spynet_input,
)
from onnx import helper, numpy_helper

from migrate.core.errors import ConversionError, MigrateError
from migrate.core.mapped import FileRegion
from migrate.core.model import WriteOptions
from migrate.core.passes.optimize import optimize
from migrate.pipeline import ConvertOptions, convert_source, read_source
from migrate.verify.compare import compare

if not os.environ.get("CI"):  # CI installs them (.[test]): there a missing one fails
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
import torch  # noqa: E402

from migrate.runtimes.torch.generated import run as run_generated  # noqa: E402
from migrate.writers.pytorch import safetensors_out  # noqa: E402
from migrate.writers.pytorch.program import generate  # noqa: E402
from migrate.writers.pytorch.writer import write  # noqa: E402

ATOL = 1e-4
SPYNET = SPYNET_MODELS
T7_CASES = cases(manifest_names("manifest.txt") + ["misc_lenet_long4"])
BACKEND = os.path.join(REAL_DIR, "onnx", "backend")

# Runs inside `python -I` from a folder outside the repository: imports each generated
# STEM.py by path, loads its safetensors as the issue says a user does, runs it.
FRESH_RUNNER = r'''
import importlib.abc, importlib.util, json, sys

class NoProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "migrate" or name.startswith("migrate."):
            raise ImportError("a generated module imported torch7-migrate")

sys.meta_path.insert(0, NoProject())
import numpy as np
import torch
from safetensors.torch import load_file

for job in json.load(open(sys.argv[1])):
    spec = importlib.util.spec_from_file_location(job["name"], job["code"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if job["meta_device"]:
        model = module.load_model()
    else:
        model = module.Model()
        model.load_state_dict(load_file(job["weights"]), strict=True)
        model.eval()
    inputs = [torch.from_numpy(np.load(p)) for p in job["inputs"]]
    with torch.inference_mode():
        result = model(*inputs)
    outputs = [result] if isinstance(result, torch.Tensor) else list(result)
    for k, output in enumerate(outputs):
        np.save(f"{job['out']}.{k}.npy", output.numpy())
print(json.dumps({"migrate_imported": any(m.split(".")[0] == "migrate" for m in sys.modules)}))
'''


def _torch7_sources():
    """(name, model path, inputs, Torch7's outputs, batch of two): every SpyNet model also
    runs on a batch of two (the stored input and a flipped copy) to show the batch free."""
    found = []
    for path in SPYNET:
        stem = os.path.basename(path)[:-3]
        x = spynet_input()
        found.append((stem, path, [x], [spynet_expected(stem)], True))
    for case in T7_CASES:
        found.append((case.name, case.model, case.inputs, case.outputs, False))
    return found


def _write(source_paths, inputs, out_dir: str, stem: str) -> dict[str, str]:
    """Read, optimize as `migrate --to pytorch` does (nothing folded), write."""
    src = read_source(source_paths, ConvertOptions(input_shapes=[np.shape(a) for a in inputs]))
    optimize(src.model, fold=False)
    return write(src.model, out_dir, stem, WriteOptions(source=src)).files


@pytest.fixture(scope="module")
def torch7_in_fresh_python(shared_dir, tmp_path_factory):
    """Every Torch7 source written as PyTorch code, then all of them run in one fresh
    interpreter that cannot import this project."""
    if len(SPYNET) != 28:
        pytest.skip("the real SpyNet files are not in ../shared")
    out = tmp_path_factory.mktemp("torch7-pytorch")
    outside = tmp_path_factory.mktemp("fresh-cwd")
    jobs, expected, failures = [], {}, {}
    for k, (name, path, inputs, outputs, batch_two) in enumerate(_torch7_sources()):
        try:
            files = _write(path, inputs, str(out), name)
        except MigrateError as exc:
            failures[name] = exc
            continue
        meta = json.load(open(files["meta"]))
        feeds = [np.asarray(a, dtype=spec["dtype"]) for a, spec in zip(inputs, meta["inputs"],
                                                                         strict=True)]
        if batch_two:
            feeds = [np.concatenate([a, a[..., ::-1]]) for a in feeds]
        paths = []
        for i, array in enumerate(feeds):
            paths.append(str(out / f"{name}.input{i}.npy"))
            np.save(paths[-1], array)
        jobs.append({"name": f"generated_{k}", "code": files["code"], "weights": files["weights"],
                     "inputs": paths, "out": str(out / f"{name}.out"),
                     "meta_device": k % 10 == 0})  # some through load_model()
        expected[name] = (outputs, batch_two)
    job_file = out / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    runner = outside / "run_generated.py"
    runner.write_text(FRESH_RUNNER)
    done = subprocess.run([sys.executable, "-I", str(runner), str(job_file)], cwd=str(outside),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"migrate_imported": False}
    results = {}
    for name in expected:
        found = sorted(glob.glob(str(out / f"{name}.out.*.npy")),
                       key=lambda p: int(p.rsplit(".", 2)[-2]))
        results[name] = [np.load(p) for p in found]
    return results, expected, failures, out


SOURCE_IDS = [os.path.basename(p)[:-3] for p in SPYNET] + [c.name for c in T7_CASES]


@pytest.mark.parametrize("name", SOURCE_IDS)
def test_torch7_model_runs_in_plain_pytorch_as_in_torch7(name, torch7_in_fresh_python):
    results, expected, failures, _ = torch7_in_fresh_python
    if name in failures:
        raise failures[name]
    outputs, batch_two = expected[name]
    got = results[name]
    if batch_two:  # first of the batch of two: the stored input
        got = [g[:1] for g in got]
    result = compare(got, outputs, ATOL, 0 if batch_two else ATOL)
    assert result.passed, result.describe()


def test_every_torch7_source_is_covered():
    assert len(SOURCE_IDS) == len(set(SOURCE_IDS))
    assert len([c for c in T7_CASES if c.name.startswith("d_spynet")]) >= 1


# -- ONNX -> PyTorch --------------------------------------------------------------------

BACKEND_MODELS = backend_models()
LAYERS_OBSERVED = {"light/light_squeezenet", "light/light_shufflenet"}


@pytest.fixture
def flushed_denormals():
    """The light models hold constant weights that drive activations into denormal
    floats, which x86 computes about ten times slower; flushing them to zero keeps the
    test quick (their outputs are the same)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.mark.parametrize(("name", "path"), BACKEND_MODELS, ids=[n for n, _ in BACKEND_MODELS])
def test_onnx_model_reproduces_stored_outputs_in_pytorch(name, path, shared_dir, tmp_path,
                                                         flushed_denormals):
    inputs, outputs = stored_data(name, path)
    if name in UNREADABLE:  # test_onnx_backend.py checks that the reader refuses them
        pytest.skip(f"not readable: {UNREADABLE[name]}")
    src = read_source(path, ConvertOptions(input_shapes=[a.shape for a in inputs]))
    optimize(src.model, fold=False)
    files = write(src.model, str(tmp_path), "m", WriteOptions(source=src)).files
    # every layer's output is taken too (torch.fx on the generated module), except on the
    # larger zoo models where that only doubles the time
    layers = name in LAYERS_OBSERVED or not name.startswith("light/")
    run = run_generated(files, inputs, layers=layers)
    strict = compare(run.outputs, outputs, atol=1e-4, rtol=0.0)
    assert strict.passed or compare(run.outputs, outputs, atol=1e-7, rtol=1e-3).passed, \
        strict.describe()
    if layers and "expand_shape" not in name:  # a shape read from an input's values stops fx
        assert run.layers, "no layer output was observed"


# -- the conversion as a user runs it ---------------------------------------------------

@pytest.mark.parametrize("name", ["c_residual_float", "f_nngraph_multi_io_float",
                                  "layer_SplitTable_JoinTable_float", "b_misc_edge_float"])
def test_every_layer_is_compared_in_pytorch(name, shared_dir, tmp_path):
    """`migrate MODEL --to pytorch`: the JSON's layer map gives every source layer's value
    (functional lines too: cat, +=, slicing, split) and each matches the reference run."""
    (case,) = [c for c in T7_CASES if c.name == name]
    summary = convert_source(case.model, ConvertOptions(
        target="pytorch", out_dir=str(tmp_path), input_shapes=[a.shape for a in case.inputs]))
    verification = summary.verification
    assert verification.passed, verification.outputs.describe()
    assert verification.layers
    for row in verification.layers:
        assert row.passed, f"{row.label}: {row.note or row.max_abs}"


def test_batchnorm_and_dropout_stay_layers_for_fine_tuning(shared_dir, tmp_path):
    (case,) = [c for c in T7_CASES if c.name == "b_misc_layers_float"]
    summary = convert_source(case.model, ConvertOptions(
        target="pytorch", out_dir=str(tmp_path), input_shapes=[a.shape for a in case.inputs]))
    code = open(summary.outputs["code"]).read()
    assert "nn.BatchNorm2d(" in code
    assert "\n        del " in code or code.count(" = ") > 3
    from safetensors.torch import load_file
    state = load_file(summary.outputs["weights"])
    assert any(key.endswith("running_var") for key in state)


def test_pytorch_export_writes_a_program_with_a_free_batch(shared_dir, tmp_path):
    from migrate.cli import main

    path = SPYNET[0] if SPYNET else pytest.skip("no SpyNet files")
    assert main([path, "--to", "pytorch", "--pytorch-export", "-o", str(tmp_path),
                 "--input-shape", "1x8x24x32", "--no-verify"]) == 0
    stem = os.path.basename(path)[:-3]
    program = torch.export.load(str(tmp_path / f"{stem}.pt2"))
    files = {"code": str(tmp_path / f"{stem}.py"), "weights": str(tmp_path / f"{stem}.safetensors"),
             "meta": str(tmp_path / f"{stem}.json")}
    x = np.concatenate([spynet_input(), spynet_input()[..., ::-1]]).astype(np.float32)
    with torch.inference_mode():
        exported = program.module()(torch.from_numpy(x)).numpy()
    generated = run_generated(files, [x]).outputs[0]
    np.testing.assert_allclose(exported, generated, atol=1e-5)
    np.testing.assert_allclose(exported[:1], spynet_expected(stem), atol=ATOL)


def test_weights_of_a_mapped_source_are_copied_file_to_file(shared_dir):
    """The safetensors bytes of weights still in the memory-mapped .t7 are sendfile'd
    from it (FileRegion), not copied through Python."""
    if not SPYNET:
        pytest.skip("no SpyNet files")
    src = read_source(SPYNET[0], ConvertOptions(input_shapes=[[1, 8, 24, 32]]))
    program = generate(src.model, src)
    pieces = list(safetensors_out.chunks(program.state))
    regions = [p for p in pieces if isinstance(p, FileRegion)]
    assert len(regions) == len(program.state)  # 5 weights + 5 biases, all from the file
    header_length = int.from_bytes(pieces[0][:8], "little")
    header = json.loads(pieces[0][8:8 + header_length])
    assert set(header) == set(program.state)


def _onnx_file(tmp_path, node, inputs, outputs, initializers=()) -> str:
    graph = helper.make_graph([node], "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    return path


def test_what_pytorch_cannot_express_is_a_clear_error_naming_the_layer(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8, 4, 4])
    node = helper.make_node("LRN", ["x"], ["y"], name="norm_even", size=4)
    path = _onnx_file(tmp_path, node, [x], [y])
    with pytest.raises(ConversionError) as info:
        convert_source(path, ConvertOptions(target="pytorch", out_dir=str(tmp_path / "out"),
                                            verify=False))
    text = str(info.value)
    assert "norm_even" in text and "LRN" in text and "even" in text
    assert not os.path.exists(tmp_path / "out" / "model.py")


def test_a_weight_shared_by_two_layers_stays_one_parameter(tmp_path):
    """One initializer used by two convolutions: the generated module ties them, as the
    source does, and load_model() keeps them tied."""
    import importlib.util

    from migrate.runtimes.ort.api import run_onnx

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((3, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv_a", pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Conv", ["b", "w"], ["y"], name="conv_b", pads=[1] * 4)]
    graph = helper.make_graph(nodes, "g", [x], [y], [weight])
    path = str(tmp_path / "shared.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    data = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    files = _write(path, [data], str(tmp_path), "shared")
    assert "self.conv_b.weight = self.conv_a.weight" in open(files["code"]).read()
    spec = importlib.util.spec_from_file_location("shared_generated", files["code"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()
    assert model.conv_b.weight is model.conv_a.weight
    with torch.inference_mode():
        got = model(torch.from_numpy(data)).numpy()
    np.testing.assert_allclose(got, run_onnx(path, [data])[0], atol=1e-4)


def test_resize_modes_match_onnxruntime(tmp_path):
    """interpolate modes: each ONNX Resize PyTorch can express reproduces onnxruntime."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
    settings = [dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor"),
                dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                     nearest_mode="round_prefer_ceil"),
                dict(mode="linear", coordinate_transformation_mode="align_corners"),
                dict(mode="linear", coordinate_transformation_mode="half_pixel"),
                dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
                dict(mode="cubic", coordinate_transformation_mode="half_pixel"),
                dict(mode="cubic", coordinate_transformation_mode="align_corners")]
    from migrate.runtimes.ort.api import run_onnx

    for k, attrs in enumerate(settings):
        for scales in ([1, 1, 2, 3], [1, 1, 0.6, 0.5]):
            folder = tmp_path / f"case{k}_{scales[2]}"
            folder.mkdir()
            x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(data.shape))
            y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
            scale = numpy_helper.from_array(np.array(scales, np.float32), "scales")
            node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", **attrs)
            path = _onnx_file(folder, node, [x], [y], [scale])
            expected = run_onnx(path, [data])
            files = _write(path, [data], str(folder), "m")
            got = run_generated(files, [data]).outputs
            result = compare(got, expected, 1e-5, 1e-5)
            assert result.passed, f"{attrs} scales {scales}: {result.describe()}"


# -- round trips through the other readers ---------------------------------------------

def test_pytorch_round_trip_keeps_outputs_and_state_dict(tmp_path):
    from torch import nn

    import migrate

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8, eps=1e-3)
            self.relu = nn.ReLU(inplace=True)
            self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),
                                        nn.BatchNorm2d(8))
            self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.avg = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
            self.shuffle = nn.PixelShuffle(2)
            self.head = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2, 5)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.relu(x + self.branch(x))
            x = self.avg(self.pool(x))
            x = nn.functional.interpolate(self.shuffle(x), scale_factor=2, mode="bilinear",
                                          align_corners=False)
            return self.fc(torch.flatten(self.head(x), 1))

    torch.manual_seed(0)
    net = Net().eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    example = torch.rand(2, 3, 15, 15)
    summary = migrate.convert(net, example_inputs=(example,), to="pytorch",
                              out_dir=str(tmp_path))
    assert summary.verification.passed
    files = {k: summary.outputs[k] for k in ("code", "weights", "meta")}
    x = torch.rand(3, 3, 15, 15)  # another batch size
    with torch.inference_mode():
        want = net(x).numpy()
    got = run_generated(files, [x.numpy()]).outputs[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    from safetensors.torch import load_file
    state = load_file(files["weights"])
    for key, value in net.state_dict().items():
        module, _, field = key.rpartition(".")
        generated_key = f"{module.replace('.', '_')}.{field}"
        assert generated_key in state, f"{key} has no counterpart in {sorted(state)}"
        assert torch.equal(state[generated_key], value), key


CAFFE_MODELS = {"lenet": ("lenet", "lenet"), "cifar10": ("cifar10", "cifar10_quick"),
                "det1": ("mtcnn", "det1"), "det2": ("mtcnn", "det2"), "det3": ("mtcnn", "det3")}


@pytest.mark.parametrize("name", sorted(CAFFE_MODELS))
def test_caffe_model_reproduces_real_caffe_in_pytorch(name, shared_dir, tmp_path):
    folder, stem = CAFFE_MODELS[name]
    net = os.path.join(REAL_DIR, "caffe", folder, f"{stem}.prototxt")
    (weights,) = glob.glob(os.path.join(REAL_DIR, "caffe", folder, f"{stem}*.caffemodel"))
    ref = np.load(os.path.join(REAL_DIR, "caffe", "refs", f"{name}.npz"))
    x = ref["__input__"]
    files = _write([net, weights], [x], str(tmp_path), name)
    meta = json.load(open(files["meta"]))
    got = run_generated(files, [x]).outputs
    names = [spec["name"] for spec in meta["outputs"]]
    assert set(names) == set(ref.files) - {"__input__"}
    for output, blob in zip(got, names, strict=True):
        np.testing.assert_allclose(output, ref[blob], atol=ATOL, err_msg=f"{name} {blob}")


def test_generated_code_passes_ruff(torch7_in_fresh_python):
    """The generated files are code a person would keep: ruff finds nothing to complain
    about in any of them (imports used, no long lines, no unused variables)."""
    out = torch7_in_fresh_python[3]
    files = sorted(glob.glob(str(out / "*.py")))
    assert len(files) > 100
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                           "--line-length", "100", "--select", "E,F,W,B", *files],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
