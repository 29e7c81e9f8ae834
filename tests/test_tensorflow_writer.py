"""TensorFlow SavedModel and LiteRT (.tflite) targets: the written files, run in real
TensorFlow and in the real LiteRT interpreter, reproduce what the source's own framework
computed (real Torch7, the ONNX backend tests' stored outputs), layer by layer too.

TensorFlow takes seconds to import and a SavedModel about a second to save: every model
is converted and run once, in module-scoped fixtures, and the tests read the results.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from fixtures_onnx import light_data
from fixtures_t7 import (
    REAL_DIR,
    SPYNET_MODELS,
    cases,
    manifest_names,
    spynet_expected,
    spynet_input,
)
from onnx import helper, numpy_helper

from migrate.core.errors import ConversionError
from migrate.core.formats import tensorflow as sidecar
from migrate.core.model import WriteOptions
from migrate.core.passes.optimize import optimize
from migrate.pipeline import ConvertOptions, read_source
from migrate.readers.torch7.reader import read_torch7
from migrate.verify.compare import compare

ATOL = RTOL = 1e-4
T7_CASES = cases(manifest_names("manifest.txt") + ["misc_lenet_long4"])
SPYNET = SPYNET_MODELS
LIGHT = sorted(glob.glob(os.path.join(REAL_DIR, "onnx", "backend", "light", "*.onnx")))
T7_IDS = [c.name for c in T7_CASES] + [os.path.basename(p)[:-3] for p in SPYNET]
LIGHT_IDS = [os.path.basename(p)[:-5] for p in LIGHT]
# TensorFlow takes 5-16 s to save each of the three with 240-550 MB dense layers (AlexNet,
# ZFNet, VGG-19), whose layers the others and the Torch7 models cover; LiteRT runs all nine
LIGHT_TF_IDS = [n for n in LIGHT_IDS
                if n not in ("light_bvlc_alexnet", "light_zfnet512", "light_vgg19")]
LAYOUT_AGNOSTIC = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "TANH",
                   "LOGISTIC", "EXP", "ABS", "NEG", "SQRT", "ELU", "LEAKY_RELU", "PRELU",
                   "CONCATENATION", "PAD", "PADV2", "MEAN", "SUM", "SELECT_V2"}


def _runtime(module: str, name: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{name} is not installed (pip install '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def litert():
    _runtime("ai_edge_litert", "LiteRT (ai-edge-litert)")
    from migrate.runtimes.litert import api

    return api


@pytest.fixture(scope="module")
def tensorflow():
    _runtime("tensorflow", "TensorFlow (tensorflow-cpu)")
    from migrate.runtimes.tensorflow import api

    return api


# -- the models ---------------------------------------------------------------------------

def _spynet_data(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [spynet_input()], [spynet_expected(name)]


def _t7_models() -> list[tuple[str, str, list[np.ndarray], list[np.ndarray]]]:
    """(name, .t7 path, inputs, outputs real Torch7 computed) for every case."""
    found = [(c.name, c.model, c.inputs, c.outputs) for c in T7_CASES]
    for path in SPYNET:
        name = os.path.basename(path)[:-3]
        found.append((name, path, *_spynet_data(name)))
    return found


def _convert(writer, model, out_dir: str, stem: str, **extra):
    return writer.write(model, out_dir, stem, WriteOptions(optimize=extra.pop("optimize", True),
                                                           extra=extra))


def _convert_and_run(target: str, api, models, out_dir: str, *, optimized: bool = True,
                     layers: bool = False, **extra) -> dict:
    """name -> (written files, notes, RunResult, expected) or the exception raised."""
    if target == "tflite":
        from migrate.writers.tensorflow import tflite_writer as writer
    else:
        from migrate.writers.tensorflow import savedmodel_writer as writer
    results = {}
    for name, path, inputs, expected in models:
        try:
            if path.endswith(".onnx"):
                model = read_source(path, ConvertOptions()).model
            else:
                model = read_torch7(path, [a.shape for a in inputs]).model
            if optimized:
                optimize(model)
            written = _convert(writer, model, out_dir, name, optimize=optimized, **extra)
            run = api.run(written.files, inputs, layers=layers)
            results[name] = (written.files, written.notes, run, expected)
        except Exception as exc:  # reported by the test of that model
            results[name] = exc
    return results


def _check(results: dict, name: str) -> None:
    found = results[name]
    if isinstance(found, Exception):
        raise found
    _, _, run, expected = found
    result = compare(run.outputs, expected, ATOL, RTOL)
    assert result.passed, f"{name}: {result.describe()}"


@pytest.fixture(scope="module")
def t7_litert(shared_dir, litert, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("t7_litert"))
    models = _t7_models()
    return {"optimized": _convert_and_run("tflite", litert, models, out, layers=True),
            "naive": _convert_and_run("tflite", litert, models, out, optimized=False)}


@pytest.fixture(scope="module")
def t7_tf(shared_dir, tensorflow, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("t7_tf"))
    return _convert_and_run("tf", tensorflow, _t7_models(), out, layers=True)


@pytest.fixture(scope="module")
def light_litert(shared_dir, litert, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("light_litert"))
    models = [(os.path.basename(p)[:-5], p, *light_data(p)) for p in LIGHT]
    return _convert_and_run("tflite", litert, models, out)


@pytest.fixture(scope="module")
def light_tf(shared_dir, tensorflow, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("light_tf"))
    models = [(os.path.basename(p)[:-5], p, *light_data(p)) for p in LIGHT
              if os.path.basename(p)[:-5] in LIGHT_TF_IDS]
    return _convert_and_run("tf", tensorflow, models, out)


# -- Torch7 -> TensorFlow / LiteRT reproduces real Torch7 -----------------------------------

@pytest.mark.parametrize("variant", ["optimized", "naive"])
@pytest.mark.parametrize("name", T7_IDS)
def test_torch7_in_litert_matches_torch7(name, variant, t7_litert):
    _check(t7_litert[variant], name)


@pytest.mark.parametrize("name", T7_IDS)
def test_torch7_in_tensorflow_matches_torch7(name, t7_tf):
    _check(t7_tf, name)


def test_all_28_real_spynet_models_are_covered(shared_dir):
    assert len(SPYNET) == 28


# -- ONNX -> TensorFlow / LiteRT reproduces the stored outputs ------------------------------

@pytest.mark.parametrize("name", LIGHT_IDS)
def test_onnx_light_model_in_litert_matches_stored_output(name, light_litert):
    _check(light_litert, name)


@pytest.mark.parametrize("name", LIGHT_TF_IDS)
def test_onnx_light_model_in_tensorflow_matches_stored_output(name, light_tf):
    _check(light_tf, name)


# -- Caffe and PyTorch sources --------------------------------------------------------------

CAFFE = os.path.join(REAL_DIR, "caffe")
CAFFE_NETS = {"lenet": ("lenet/lenet.prototxt", "lenet/lenet_iter_10000.caffemodel"),
              "cifar10": ("cifar10/cifar10_quick.prototxt",
                          "cifar10/cifar10_quick_iter_5000.caffemodel"),
              **{f"det{i}": (f"mtcnn/det{i}.prototxt", f"mtcnn/det{i}.caffemodel")
                 for i in (1, 2, 3)}}
# the PyTorch issue's test models (tests/test_pytorch_reader.py; its semantics model resizes
# bicubically, which LiteRT cannot); the MLP's GELU (erf) becomes LiteRT's GELU builtin
PYTORCH_MODELS = ["resnet18", "mobilenetv2", "vgg11_bn", "unet", "mlp"]


def _convert_sources(target: str, api, sources, out_dir: str) -> dict:
    """name -> (files, notes, RunResult, expected) for (name, source, read options,
    inputs, expected) sources read by the project's readers."""
    if target == "tflite":
        from migrate.writers.tensorflow import tflite_writer as writer
    else:
        from migrate.writers.tensorflow import savedmodel_writer as writer
    results = {}
    for name, source, options, inputs, expected in sources:
        try:
            model = read_source(source, options).model
            optimize(model)
            written = _convert(writer, model, out_dir, name)
            results[name] = (written.files, written.notes, api.run(written.files, inputs),
                             expected)
        except Exception as exc:  # reported by the test of that model
            results[name] = exc
    return results


def _caffe_sources():
    found = []
    for name, files in CAFFE_NETS.items():
        refs = np.load(os.path.join(CAFFE, "refs", f"{name}.npz"))
        x = refs["__input__"]
        paths = [os.path.join(CAFFE, f) for f in files]
        model = read_source(paths, ConvertOptions(input_shapes=[x.shape])).model
        expected = [refs[v.name] for v in model.graph.outputs]
        found.append((name, paths, ConvertOptions(input_shapes=[x.shape]), [x], expected))
    return found


def _pytorch_sources():
    torch = pytest.importorskip("torch")
    from test_pytorch_reader import MODELS, example, seeded

    found = []
    for name in PYTORCH_MODELS:
        cls, shape = MODELS[name]
        module, x = seeded(cls), example(shape)
        with torch.no_grad():
            expected = [module(x).numpy()]
        found.append((name, module, ConvertOptions(example_inputs=(x,)), [x.numpy()],
                      expected))
    return found


@pytest.fixture(scope="module")
def caffe_results(shared_dir, litert, tensorflow, tmp_path_factory):
    sources = _caffe_sources()
    out = str(tmp_path_factory.mktemp("caffe"))
    return {"litert": _convert_sources("tflite", litert, sources, out),
            "tf": _convert_sources("tf", tensorflow, sources, out)}


@pytest.fixture(scope="module")
def pytorch_results(litert, tensorflow, tmp_path_factory):
    sources = _pytorch_sources()
    out = str(tmp_path_factory.mktemp("pytorch"))
    return {"litert": _convert_sources("tflite", litert, sources, out),
            "tf": _convert_sources("tf", tensorflow, sources, out)}


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("name", list(CAFFE_NETS))
def test_real_caffe_model_matches_real_caffe(name, runtime, caffe_results):
    _check(caffe_results[runtime], name)
    if runtime == "litert":
        assert _transposes(caffe_results[runtime][name][0]["tflite"]) == 0


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("name", PYTORCH_MODELS)
def test_pytorch_model_matches_pytorch(name, runtime, pytorch_results):
    _check(pytorch_results[runtime], name)


# -- layers ---------------------------------------------------------------------------------

def _layer_reference(path: str, inputs):
    from migrate.runtimes.ort.api import run_model

    model = read_torch7(path, [a.shape for a in inputs]).model
    optimize(model)
    return run_model(model, inputs, layers=True)


@pytest.mark.parametrize("target", ["litert", "tf"])
def test_layer_outputs_come_back_in_the_source_layout(target, t7_litert, t7_tf):
    """Every layer the converted model still computes is returned under its source path,
    NCHW again, and matches the same layer of the common graph run in onnxruntime."""
    results = t7_litert["optimized"] if target == "litert" else t7_tf
    checked = 0
    for name, path, inputs, _ in _t7_models():
        found = results[name]
        if isinstance(found, Exception) or not (name.startswith(("a_", "b_", "c_", "f_"))
                                                or name == "modelL1_3"):
            continue
        reference = _layer_reference(path, inputs)
        _, _, run, _ = found
        assert run.layers, name
        for layer, value in run.layers.items():
            assert layer in reference.layers, (name, layer)
            expected = reference.layers[layer]
            assert value.shape == expected.shape, (name, layer, value.shape, expected.shape)
            np.testing.assert_allclose(value, expected, atol=ATOL, rtol=RTOL,
                                       err_msg=f"{name}: {layer}")
            checked += 1
    assert checked > 100


def test_conversion_reports_layer_by_layer_for_both_targets(shared_dir, litert, tensorflow,
                                                            tmp_path):
    import migrate

    model = os.path.join(REAL_DIR, "spynet", "modelL1_3.t7")
    for target, label in (("tflite", "LiteRT"), ("tf", "TensorFlow")):
        summary = migrate.convert(model, to=target, out_dir=str(tmp_path / target),
                                  input_shapes=[[1, 8, 24, 32]], report=True)
        result = summary.verification
        assert result.executed and result.passed and result.runtime.startswith(label)
        compared = [row for row in result.layers if row.max_abs is not None]
        assert len(compared) >= 5 and all(row.passed for row in compared)
        assert os.path.isfile(summary.outputs["report_html"])


# -- layout -----------------------------------------------------------------------------------

def _tflite_ops(path: str) -> list[tuple[str, list[int], list[int]]]:
    """(builtin name, input tensor indices, output tensor indices) of a .tflite file."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    with open(path, "rb") as fh:
        model = schema.ModelT.InitFromPackedBuf(fh.read(), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    graph = model.subgraphs[0]
    return [(names[codes[op.opcodeIndex]], list(op.inputs), list(op.outputs))
            for op in graph.operators]


def _transposes(path: str) -> int:
    return sum(1 for kind, _, _ in _tflite_ops(path) if kind == "TRANSPOSE")


def test_image_models_keep_no_transpose(light_litert):
    """NHWC inputs and outputs, channels last inside: no Transpose op in the light models;
    ShuffleNet's own channel shuffles (Reshape-Transpose-Reshape) are one Gather each."""
    for name, found in light_litert.items():
        files, notes, _, _ = found
        assert _transposes(files["tflite"]) == 0, name
        data = sidecar.read(files["json"])
        assert data["transposes"] == []
        assert "no Transpose op left" in notes[0], notes
        source = onnx.load([p for p in LIGHT if p.endswith(f"{name}.onnx")][0])
        shuffles = sum(1 for node in source.graph.node if node.op_type == "Transpose")
        gathers = sum(1 for kind, _, _ in _tflite_ops(files["tflite"]) if kind == "GATHER")
        assert gathers == shuffles == len(data["channel_reorders"]), name
        assert [i["layout"] for i in data["inputs"]] == ["NHWC"] * len(data["inputs"])


def test_no_transpose_between_two_layout_agnostic_ops(t7_litert, light_litert):
    checked = 0
    for results in (t7_litert["optimized"], t7_litert["naive"], light_litert):
        for name, found in results.items():
            if isinstance(found, Exception):
                continue
            ops = _tflite_ops(found[0]["tflite"])
            producer = {t: kind for kind, _, outs in ops for t in outs}
            consumers: dict[int, list[str]] = {}
            for kind, ins, _ in ops:
                for t in ins:
                    consumers.setdefault(t, []).append(kind)
            for kind, ins, outs in ops:
                if kind != "TRANSPOSE":
                    continue
                checked += 1
                before = producer.get(ins[0])
                after = consumers.get(outs[0], [])
                assert not (before in LAYOUT_AGNOSTIC and after
                            and all(k in LAYOUT_AGNOSTIC for k in after)), (name, before, after)
    assert checked > 0


def test_flatten_before_dense_permutes_the_weights(shared_dir, litert, tmp_path):
    """LeNet: conv/pool NHWC, View(256), Linear: no transpose; the first dense layer's
    weights are the Torch7 weights with their columns in (H, W, C) order."""
    from ai_edge_litert import schema_py_generated as schema

    from migrate.writers.tensorflow import tflite_writer

    case = next(c for c in T7_CASES if c.name == "a_lenet_float")
    source = read_torch7(case.model, [a.shape for a in case.inputs])
    gemm = next(n for n in source.model.graph if n.op_type == "Gemm")
    weight = np.asarray(gemm.inputs[1].const_value.numpy())  # (120, 256), Torch7's order
    written = _convert(tflite_writer, source.model, str(tmp_path), "lenet")
    assert _transposes(written.files["tflite"]) == 0
    with open(written.files["tflite"], "rb") as fh:
        model = schema.ModelT.InitFromPackedBuf(fh.read(), 0)
    graph = model.subgraphs[0]
    dense = next(op for op in graph.operators
                 if model.operatorCodes[op.opcodeIndex].builtinCode
                 == schema.BuiltinOperator.FULLY_CONNECTED)
    tensor = graph.tensors[dense.inputs[1]]
    stored = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32)
    stored = stored.reshape(tensor.shape)
    expected = weight.reshape(120, 16, 4, 4).transpose(0, 2, 3, 1).reshape(120, 256)
    np.testing.assert_array_equal(stored, expected)
    assert not np.array_equal(stored, weight)
    run = litert.run(written.files, case.inputs)
    assert compare(run.outputs, case.outputs, ATOL, RTOL).passed


def test_keep_layout_keeps_nchw_at_the_boundaries(shared_dir, litert, tensorflow, tmp_path):
    models = [m for m in _t7_models() if m[0] in ("b_misc_layers_float", "modelL2_F")]
    for target, api in (("tflite", litert), ("tf", tensorflow)):
        results = _convert_and_run(target, api, models, str(tmp_path), keep_layout=True)
        for name, _, inputs, _ in models:
            _check(results, name)
            files = results[name][0]
            data = sidecar.read(files["json"])
            assert data["keep_layout"] is True
            assert data["inputs"][0]["layout"] == "NCHW"
            assert data["inputs"][0]["stored_shape"] == list(inputs[0].shape)
            assert data["outputs"][0]["stored_shape"] == data["outputs"][0]["shape"]
            if target == "tflite":  # NCHW in, channels last inside: transposes at the edges
                assert _transposes(files["tflite"]) >= 1


# -- the SavedModel as a TensorFlow user sees it --------------------------------------------------

def test_savedmodel_signature_names_and_keras_variable_names(shared_dir, tensorflow, tmp_path):
    from migrate.writers.tensorflow import savedmodel_writer

    tf = tensorflow.import_tensorflow()
    case = next(c for c in T7_CASES if c.name == "layer_SpatialBatchNormalization_float")
    source = read_torch7(case.model, [a.shape for a in case.inputs])
    written = _convert(savedmodel_writer, source.model, str(tmp_path), "bn", optimize=False)
    loaded = tf.saved_model.load(written.files["savedmodel"])
    signature = loaded.signatures["serving_default"]
    (name,) = signature.structured_input_signature[1]
    assert name == source.model.graph.inputs[0].name
    assert list(signature.structured_outputs) == [source.model.graph.outputs[0].name]
    variables = {v.name for group in loaded.layers.values() for v in group.values()}
    assert variables == {f"model.modules.1/{role}:0"
                         for role in ("gamma", "beta", "moving_mean", "moving_variance")}
    data = sidecar.read(written.files["json"])
    assert data["variables"]["model.modules[1]"]["moving_variance"] == \
        "model.modules.1/moving_variance"

    conv = next(c for c in T7_CASES if c.name == "layer_SpatialConvolution_s2p1_float")
    source = read_torch7(conv.model, [a.shape for a in conv.inputs])
    weight = np.asarray(next(n for n in source.model.graph
                             if n.op_type == "Conv").inputs[1].const_value.numpy())
    written = _convert(savedmodel_writer, source.model, str(tmp_path), "conv")
    loaded = tf.saved_model.load(written.files["savedmodel"])
    (layer,) = loaded.layers.values()
    np.testing.assert_array_equal(layer["kernel"].numpy(), weight.transpose(2, 3, 1, 0))
    assert layer["bias"].name == "model.modules.1/bias:0"


# -- what LiteRT cannot run, and what is never touched ---------------------------------------

def _erf_model(path: str) -> None:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 4, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("Erf", ["r"], ["y"], name="the_erf")]
    graph = helper.make_graph(nodes, "erf", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


class _Run:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def migrate_cli(capsys):
    """The `migrate` command run in this process (TensorFlow is imported once, here)."""
    from migrate.cli import main

    def run(*args: str) -> _Run:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return _Run(code, out.out, out.err)

    return run


def test_op_litert_cannot_run_is_a_clear_error_naming_the_layer(tmp_path, litert, tensorflow,
                                                                migrate_cli):
    path = str(tmp_path / "erf.onnx")
    _erf_model(path)
    result = migrate_cli(path, "--to", "tflite", "-o", str(tmp_path / "lite"))
    assert result.returncode == 2
    assert "the_erf" in result.stderr and "LiteRT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "lite" / "erf.tflite")
    with pytest.raises(ConversionError, match="the_erf"):
        from migrate.writers.tensorflow import tflite_writer

        model = read_source(path, ConvertOptions()).model
        _convert(tflite_writer, model, str(tmp_path), "erf")
    # TensorFlow has erf: the SavedModel is written and verified
    result = migrate_cli(path, "--to", "tf", "-o", str(tmp_path / "tf"))
    assert result.returncode == 0, result.stderr
    assert "TensorFlow (real runtime)" in result.stdout and "OK" in result.stdout


def _digest(paths: list[str]) -> dict[str, tuple[str, int]]:
    found = {}
    for path in paths:
        with open(path, "rb") as fh:
            found[path] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return found


def test_source_files_are_never_written(shared_dir, litert, tensorflow, tmp_path, migrate_cli):
    """onnx2tf rewrites its input .onnx in place; we read sources and never write them."""
    import shutil

    sources = [os.path.join(REAL_DIR, "onnx", "backend", "light", "light_squeezenet.onnx"),
               os.path.join(REAL_DIR, "spynet", "modelL2_3.t7")]
    copies = []
    for path in sources:  # writable copies, so a write would not fail but be seen
        copy = str(tmp_path / os.path.basename(path))
        shutil.copy(path, copy)
        os.chmod(copy, 0o644)
        copies.append(copy)
    before = _digest(copies)
    for target in ("tflite", "tf"):
        for copy in copies:
            result = migrate_cli(copy, "--to", target, "-o", str(tmp_path / target),
                              "--input-shape", "1x8x24x32" if copy.endswith(".t7")
                              else "1x3x224x224")
            assert result.returncode == 0, result.stderr
    assert _digest(copies) == before
    assert sorted(os.listdir(tmp_path / "tflite")) == [
        "light_squeezenet.json", "light_squeezenet.tflite", "modelL2_3.json",
        "modelL2_3.tflite"]


def test_migrate_verify_recognizes_written_files(shared_dir, litert, tensorflow, tmp_path,
                                                 migrate_cli):
    model = os.path.join(REAL_DIR, "spynet", "modelL1_C.t7")
    for target in ("tflite", "tf"):
        result = migrate_cli(model, "--to", target, "-o", str(tmp_path), "--no-verify",
                          "--input-shape", "1x8x24x32")
        assert result.returncode == 0, result.stderr
        written = (["modelL1_C.tflite", "modelL1_C.json"] if target == "tflite"
                   else ["modelL1_C.json"])
        result = migrate_cli("verify", model, *[str(tmp_path / f) for f in written],
                          "--input-shape", "1x8x24x32")
        assert result.returncode == 0, result.stderr
        label = "LiteRT" if target == "tflite" else "TensorFlow"
        assert f"{label} (real runtime)" in result.stdout


def test_tensorflow_is_imported_only_for_the_tf_target(shared_dir, tmp_path):
    """Start-up time: the other targets, the .tflite one included, never import it."""
    model = os.path.join(REAL_DIR, "spynet", "modelL1_F.t7")
    code = (
        "import sys, migrate\n"
        f"migrate.convert({model!r}, to='onnx', out_dir={str(tmp_path / 'a')!r},"
        " input_shapes=[[1, 8, 24, 32]])\n"
        "from migrate.core.registry import WRITERS\n"
        "assert WRITERS.get('tensorflow').name == 'tf'\n"
        f"migrate.convert({model!r}, to='tflite', out_dir={str(tmp_path / 'b')!r},"
        " input_shapes=[[1, 8, 24, 32]], verify=False)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


# -- ops beyond the Torch7 fixtures' settings, against onnxruntime's own kernels ------------

def _onnx_model(path: str, nodes, inputs, outputs, initializers=()) -> None:
    graph = helper.make_graph(nodes, os.path.basename(path)[:-5], inputs, outputs,
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def _value(name: str, dtype: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


F, I64, BOOL = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL


def _op_models(folder: str) -> dict[str, tuple[str, list[np.ndarray]]]:
    """name -> (.onnx path, inputs): the settings the fixtures do not reach."""
    rng = np.random.default_rng(7)
    made = {}

    def add(name, nodes, inputs, outputs, feeds, initializers=()):
        path = os.path.join(folder, f"{name}.onnx")
        _onnx_model(path, nodes, inputs, outputs, initializers)
        made[name] = (path, feeds)

    image = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    grid = rng.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)
    for padding in ("zeros", "border"):
        for align in (0, 1):
            add(f"gridsample_{padding}_align{align}",
                [helper.make_node("GridSample", ["x", "grid"], ["y"], mode="bilinear",
                                  padding_mode=padding, align_corners=align)],
                [_value("x", F, image.shape), _value("grid", F, grid.shape)],
                [_value("y", F, (2, 3, 4, 7))], [image, grid])
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    add("maxpool_indices_overlapping",  # windows overlap: indices only, no unpooling
        [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3], strides=[2, 2],
                          pads=[1, 1, 1, 1])],
        [_value("x", F, x.shape)], [_value("y", F, (2, 3, 4, 4)), _value("i", I64, (2, 3, 4, 4))],
        [x])
    signal = rng.standard_normal((2, 3, 9)).astype(np.float32)
    add("maxunpool_1d",
        [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2], strides=[3]),
         helper.make_node("Relu", ["y"], ["r"]),
         helper.make_node("MaxUnpool", ["r", "i", "shape"], ["u"], kernel_shape=[2],
                          strides=[3])],
        [_value("x", F, signal.shape)], [_value("u", F, signal.shape)], [signal],
        [numpy_helper.from_array(np.asarray(signal.shape, np.int64), "shape")])
    data = rng.standard_normal((3, 4, 5)).astype(np.float32)
    index = rng.integers(-4, 4, (3, 2, 5)).astype(np.int64)
    add("gather_elements_negative",
        [helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)],
        [_value("x", F, data.shape), _value("i", I64, index.shape)],
        [_value("y", F, index.shape)], [data, index])
    volume = rng.standard_normal((2, 3, 4, 2, 3)).astype(np.float32)
    index = rng.integers(-3, 3, (2, 3, 4, 2, 3)).astype(np.int64)
    add("gather_elements_5d",  # past rank 4: integer arithmetic on a flat view
        [helper.make_node("GatherElements", ["x", "i"], ["y"], axis=-1)],
        [_value("x", F, volume.shape), _value("i", I64, index.shape)],
        [_value("y", F, index.shape)], [volume, index])
    picks = np.asarray([[-1, 0, 3, 5], [-5, 2, -4, 1]], np.int64)
    add("onehot_negative",
        [helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=1)],
        [_value("i", I64, picks.shape)], [_value("y", F, (2, 4, 4))], [picks],
        [numpy_helper.from_array(np.asarray(4, np.int64), "depth"),
         numpy_helper.from_array(np.asarray([-2.0, 3.0], np.float32), "values")])
    values = rng.standard_normal((2, 6, 3)).astype(np.float32)
    add("topk_smallest_axis1",
        [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=0)],
        [_value("x", F, values.shape)], [_value("v", F, (2, 2, 3)), _value("i", I64, (2, 2, 3))],
        [values], [numpy_helper.from_array(np.asarray([2], np.int64), "k")])
    deep = rng.standard_normal((1, 8, 3, 2)).astype(np.float32)
    add("depth_to_space_dcr_space_to_depth",
        [helper.make_node("DepthToSpace", ["x"], ["s"], blocksize=2, mode="DCR"),
         helper.make_node("Relu", ["s"], ["r"]),
         helper.make_node("SpaceToDepth", ["r"], ["y"], blocksize=2)],
        [_value("x", F, deep.shape)], [_value("s", F, (1, 2, 6, 4)), _value("y", F, deep.shape)],
        [deep])
    table = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    where = np.asarray([[2, -1], [0, -3]], np.int64)
    add("gather_computed_2d_indices_of_an_image",  # the image is stored NHWC
        [helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
        [_value("x", F, table.shape), _value("i", I64, where.shape)],
        [_value("y", F, (2, 2, 2, 4, 5))], [table, where])
    matrix = rng.standard_normal((3, 4)).astype(np.float32)
    add("compress_axis1",
        [helper.make_node("Compress", ["x", "keep"], ["y"], axis=1)],
        [_value("x", F, matrix.shape), _value("keep", BOOL, (4,))],
        [_value("y", F, (3, None))], [matrix, np.asarray([True, False, True, True])])
    clip = rng.standard_normal((2, 4, 5, 6, 7)).astype(np.float32)
    add("conv3d_grouped_without_bias",
        [helper.make_node("Conv", ["x", "w"], ["y"], group=2, pads=[1, 1, 1, 1, 1, 1],
                          strides=[1, 2, 1])],
        [_value("x", F, clip.shape)], [_value("y", F, (2, 6, 5, 3, 7))], [clip],
        [numpy_helper.from_array(rng.standard_normal((6, 2, 3, 3, 3)).astype(np.float32),
                                 "w")])
    add("conv_transpose3d_grouped_dilated",
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2,
                          strides=[2, 1, 2], dilations=[1, 2, 1], pads=[1, 0, 1, 0, 1, 1],
                          output_padding=[1, 0, 0])],
        [_value("x", F, clip.shape)], [_value("y", F, (2, 6, 11, 9, 13))], [clip],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3, 2)).astype(np.float32),
                                 "w"),
         numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b")])
    volume = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    add("resize_volume_nearest",
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        [_value("x", F, volume.shape)], [_value("y", F, (1, 2, 6, 8, 5))], [volume],
        [numpy_helper.from_array(np.asarray([1, 1, 2, 2, 1], np.float32), "scales")])
    return made


@pytest.fixture(scope="module")
def onnx_ops(litert, tensorflow, tmp_path_factory):
    from migrate.runtimes.ort.api import run_onnx

    folder = str(tmp_path_factory.mktemp("onnx_ops"))
    made = _op_models(folder)
    found = {}
    for target, api in (("tflite", litert), ("tf", tensorflow)):
        models = [(name, path, feeds, run_onnx(path, feeds))
                  for name, (path, feeds) in made.items()]
        found[target] = _convert_and_run(target, api, models, folder, optimized=False)
    return found


OP_MODELS = ["gridsample_zeros_align0", "gridsample_zeros_align1", "gridsample_border_align0",
             "gridsample_border_align1", "maxpool_indices_overlapping", "maxunpool_1d",
             "gather_elements_negative", "gather_elements_5d", "onehot_negative",
             "topk_smallest_axis1", "depth_to_space_dcr_space_to_depth",
             "gather_computed_2d_indices_of_an_image", "compress_axis1",
             "conv3d_grouped_without_bias", "conv_transpose3d_grouped_dilated",
             "resize_volume_nearest"]


@pytest.mark.parametrize("target", ["tflite", "tf"])
@pytest.mark.parametrize("name", OP_MODELS)
def test_op_matches_onnxruntime(name, target, onnx_ops):
    """GridSample's four modes, MaxPool's indices (overlapping windows) and 1-D
    unpooling, negative indices, TopK's smallest, DCR/SpaceToDepth, a data-dependent
    Compress, grouped and dilated 3-D convolutions, a 3-D resize: as onnxruntime computes
    them (indices exactly)."""
    _check(onnx_ops[target], name)
    _, _, run, expected = onnx_ops[target][name]
    for got, want in zip(run.outputs, expected, strict=True):
        if np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want)


def test_what_litert_cannot_express_is_one_error_naming_the_layer(tmp_path, monkeypatch):
    """Overlapping unpooling (SCATTER_ND would add repeated indices), an op after a
    data-dependent Compress, bicubic sampling, and a lowering that fails unexpectedly:
    each a ConversionError naming the node, never a raw exception."""
    from migrate.writers.tensorflow import registry, tflite_writer

    x = np.zeros((1, 1, 6, 6), np.float32)
    cases = {
        "overlap": ([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 3],
                                      strides=[2, 2], name="pool"),
                     helper.make_node("MaxUnpool", ["y", "i"], ["u"], kernel_shape=[3, 3],
                                      strides=[2, 2], name="the_unpool")],
                    [_value("u", F, (1, 1, 5, 5))], "windows do not overlap", "the_unpool"),
        "compress": ([helper.make_node("Compress", ["x", "keep"], ["c"], axis=3,
                                       name="the_compress"),
                      helper.make_node("Relu", ["c"], ["u"])],
                     [_value("u", F, (1, 1, 6, None))], "graph output", "the_compress"),
        "bicubic": ([helper.make_node("GridSample", ["x", "grid"], ["u"], mode="bicubic",
                                      name="the_sampler")],
                    [_value("u", F, (1, 1, 6, 6))], "bicubic", "the_sampler"),
    }
    extra = {"keep": numpy_helper.from_array(np.ones(6, bool), "keep"),
             "grid": numpy_helper.from_array(np.zeros((1, 6, 6, 2), np.float32), "grid")}
    for name, (nodes, outputs, words, layer) in cases.items():
        path = str(tmp_path / f"{name}.onnx")
        used = [extra[i] for node in nodes for i in node.input if i in extra]
        _onnx_model(path, nodes, [_value("x", F, x.shape)], outputs, used)
        model = read_source(path, ConvertOptions()).model
        with pytest.raises(ConversionError, match=words) as raised:
            _convert(tflite_writer, model, str(tmp_path), name)
        assert layer in str(raised.value), raised.value

    def broken(ctx, node):  # a lowering with a bug of its own
        raise TypeError("unexpected")

    path = str(tmp_path / "erf.onnx")
    _erf_model(path)
    model = read_source(path, ConvertOptions()).model
    monkeypatch.setitem(registry._REGISTRY._entries, "Erf", broken)
    with pytest.raises(ConversionError, match="the_erf.*TypeError: unexpected"):
        _convert(tflite_writer, model, str(tmp_path), "erf")
