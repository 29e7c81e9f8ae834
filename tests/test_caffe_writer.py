"""Caffe as a target: every written prototxt + caffemodel is loaded and run by genuine BVLC
Caffe (the side runtime), in one Caffe process, and must reproduce what the source's own
framework computed: real Torch7's stored outputs (../shared/fixtures/torch7/raw, the real
SpyNet models), the outputs stored with ONNX's backend models, and for Caffe sources
(round trip) real Caffe's recorded outputs. What Caffe cannot express fails with a clear
error naming the source layer."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from fixtures_t7 import (
    PROJECT_FIXTURES,
    REAL_DIR,
    SPYNET_MODELS,
    T7_DIR,
    Case,
    cases,
    manifest_names,
    spynet_expected,
    spynet_input,
)
from test_caffe_reader import REAL_MODELS, real_files, real_ref
from test_onnx_backend import MODELS as ONNX_MODELS
from test_onnx_backend import _matches
from test_onnx_backend import _read as read_onnx_case

from migrate.core.errors import ConversionError, MigrateError
from migrate.core.formats import caffe_pb2
from migrate.core.formats.caffe import layer_sources
from migrate.core.passes.optimize import optimize
from migrate.pipeline import ConvertOptions, read_source
from migrate.readers.torch7.reader import read_torch7
from migrate.verify.compare import compare
from migrate.writers.caffe.writer import CaffeNet, build_net, recognize, write_caffe

ATOL = RTOL = 1e-4
LENET = os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7")

# The original fixtures (manifest.txt): Caffe expresses every one of them.
T7_CASES = cases(manifest_names("manifest.txt") + ["misc_lenet_long4"])
# One model per remaining nn class and the classes projects shipped (manifest_n/_p.txt):
# what Caffe cannot express must fail with a clear message naming the module; kept here
# (and in the README) with the reason.
MORE_CASES = [c for c in cases(manifest_names("manifest_n.txt") + manifest_names(
    "manifest_p.txt")) if c.name.endswith("_float")]
CAFFE_UNSUPPORTED = {
    **{f"n_{name}_float": "holds int64 values; Caffe blobs are float32" for name in (
        "IndexLinear", "Index", "LookupTable_Sum", "LookupTable", "LookupTable_maxNorm",
        "OneHot")},
    "n_MaskedSelect_float": "holds uint8 values; Caffe blobs are float32",
    **{f"n_{name}_float": "MatMul of two computed tensors has no Caffe layer" for name in (
        "MM", "MM_transA_transB", "MV", "MV_trans", "SpatialConvolutionLocal",
        "SpatialConvolutionLocal_stride")},
    "n_SparseLinear_float": "Cast to a non-float type has no Caffe layer",
    "n_SparseLinear_legacy_float": "Cast to a non-float type has no Caffe layer",
    "p_charrnn_OneHot_float": "Cast to a non-float type has no Caffe layer",
    "n_SpatialMaxUnpooling_float": "MaxPool's indices output has no Caffe equivalent",
    "n_SpatialMaxUnpooling_encdec_float": "MaxPool's indices output has no Caffe equivalent",
    "n_VolumetricMaxUnpooling_float": "MaxPool's indices output has no Caffe equivalent",
    "n_TemporalDynamicKMaxPooling_float": "no layer for ONNX op TopK",
    "n_UpSampling_trilinear_size_float": "Resize of other than the two spatial axes",
    **{f"n_{name}_float": "3-D pooling: Caffe pools 2-D (NCHW) only" for name in (
        "VolumetricAveragePooling", "VolumetricAveragePooling_pad",
        "VolumetricDilatedMaxPooling", "VolumetricMaxPooling", "VolumetricMaxPooling_pad_ceil")},
    "p_stn_AffineTransformMatrixGenerator_float": "no layer for ONNX op Cos",
    "p_stn_BilinearSamplerBHWD_float": "no layer for ONNX op GridSample",
    "p_stn_transformer_float": "no layer for ONNX op GridSample",
}
SPYNET = SPYNET_MODELS
LIGHT = [(name, path) for name, path in ONNX_MODELS if name.startswith("light/")]


def _spynet_io(path: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [spynet_input()], [spynet_expected(os.path.basename(path)[:-3])]


def _t7(case: Case, optimized: bool):
    model = read_torch7(case.model, [a.shape for a in case.inputs]).model
    if optimized:
        optimize(model)
    return model


# -- everything converted, then run in one Caffe process ------------------------------------

class Runs(dict):
    """key -> (the run or the error, expected outputs); `written` keeps each net's files,
    input and output blob names and inputs, for second opinions."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, tuple] = {}


@pytest.fixture(scope="module")
def caffe_runs(shared_dir, caffe_python, tmp_path_factory):
    """key -> (the run or the error, the outputs the source's framework computed)."""
    from migrate.runtimes.caffe import api

    out = str(tmp_path_factory.mktemp("caffe-out"))
    results, jobs, keys = Runs(), [], []

    def add(key, make_model, inputs, expected):
        try:
            net = build_net(make_model(), key.replace("/", "_"))
            files = write_caffe(net, out, key.replace("/", "_"))
        except MigrateError as exc:
            results[key] = (exc, expected)
            return
        jobs.append((files, inputs))
        keys.append((key, expected))
        results.written[key] = (files, net.inputs, net.outputs, inputs)

    for case in T7_CASES:
        for optimized in (False, True):
            add(f"{case.name}/{'optimized' if optimized else 'naive'}",
                lambda c=case, o=optimized: _t7(c, o), case.inputs, case.outputs)
    for case in MORE_CASES:
        add(case.name, lambda c=case: _t7(c, False), case.inputs, case.outputs)
    for path in SPYNET:
        inputs, expected = _spynet_io(path)
        add(f"spynet/{os.path.basename(path)[:-3]}",
            lambda p=path, x=inputs[0]: read_torch7(p, [x.shape]).model, inputs, expected)
    for name, path in LIGHT:
        source, inputs, expected = read_onnx_case(name, path)
        optimize(source.model)
        add(name, lambda s=source: s.model, inputs, expected)
    for name in REAL_MODELS:
        files = real_files(name)
        x, refs = real_ref(name)
        for optimized in (False, True):
            def caffe_source(f=files, shape=x.shape, o=optimized):
                model = read_source([f["net"], f["weights"]],
                                    ConvertOptions(input_shapes=[shape])).model
                if o:
                    optimize(model)
                return model

            # Caffe lists outputs by blob name, and so does the stored reference
            add(f"caffe/{name}/{'optimized' if optimized else 'naive'}", caffe_source, [x],
                [refs[k] for k in sorted(refs)])
    from migrate.runtimes.ort.api import run_model

    for name in SYNTHETIC:
        model, inputs = synthetic_case(name)
        expected = run_model(model, inputs).outputs
        add(f"synthetic/{name}", lambda m=model: m, inputs, expected)
    for (key, expected), run in zip(keys, api.run_many(jobs, caffe_python), strict=True):
        results[key] = (run, expected)
    return results


def _check(caffe_runs, key, atol=ATOL, rtol=RTOL):
    run, expected = caffe_runs[key]
    if isinstance(run, Exception):
        raise run
    assert not isinstance(run, str), f"real Caffe failed on the written files: {run}"
    result = compare(run.outputs, expected, atol, rtol)
    assert result.passed, result.describe()


@pytest.mark.parametrize("variant", ["naive", "optimized"])
@pytest.mark.parametrize("case", T7_CASES, ids=[c.name for c in T7_CASES])
def test_torch7_fixture_reproduces_torch7_in_real_caffe(caffe_runs, case, variant):
    _check(caffe_runs, f"{case.name}/{variant}")


@pytest.mark.parametrize("case", MORE_CASES, ids=[c.name for c in MORE_CASES])
def test_more_torch7_classes_in_real_caffe_or_a_clear_error(caffe_runs, case):
    run, _ = caffe_runs[case.name]
    if case.name in CAFFE_UNSUPPORTED:
        assert isinstance(run, ConversionError), f"{case.name} converts now: take it off " \
            "CAFFE_UNSUPPORTED"
        assert CAFFE_UNSUPPORTED[case.name] in str(run)
        # names the module that cannot be expressed (or the input that cannot be fed)
        assert re.search(r"model[.\w\[\]]* \(|input ", str(run)), str(run)
        return
    _check(caffe_runs, case.name)


@pytest.mark.parametrize("path", SPYNET, ids=[os.path.basename(p) for p in SPYNET])
def test_real_spynet_model_reproduces_torch7_in_real_caffe(caffe_runs, path):
    _check(caffe_runs, f"spynet/{os.path.basename(path)[:-3]}", rtol=0)


def test_all_28_spynet_models_are_there(shared_dir):
    assert len(SPYNET) == 28


@pytest.mark.parametrize(("name", "path"), LIGHT, ids=[n for n, _ in LIGHT])
def test_onnx_backend_model_reproduces_its_outputs_in_real_caffe(caffe_runs, name, path):
    run, expected = caffe_runs[name]
    if isinstance(run, Exception):
        raise run
    assert not isinstance(run, str), run
    ok, detail = _matches(run.outputs, expected)
    assert ok, detail


@pytest.mark.parametrize("variant", ["naive", "optimized"])
@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_caffe_round_trip_reproduces_real_caffe(caffe_runs, name, variant):
    _check(caffe_runs, f"caffe/{name}/{variant}", atol=1e-4, rtol=0)


# -- single ONNX ops, against onnxruntime --------------------------------------------------
# Small graphs that reach each construction (crops, divisor corrections, explicit padding,
# deconvolution stencils, gathers, axis moves, masks...). Their reference is the same graph
# run in onnxruntime; their candidate is the written Caffe files run in real Caffe.

def _f(*shape, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    if positive:
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _resize(mode, coordinates, scales=None, sizes=None, nearest="round_prefer_floor"):
    def build(g, x):
        scales_value = g.constant(np.asarray(scales, np.float32), "scales") if scales else None
        sizes_value = g.int64s(sizes, "sizes") if sizes else None
        return g.op("Resize", [x, None, scales_value, sizes_value], {
            "mode": mode, "coordinate_transformation_mode": coordinates, "nearest_mode": nearest})
    return build


def _pool(op, kernel, strides, pads, ceil=0, **extra):
    def build(g, x):
        return g.op(op, [x], {"kernel_shape": kernel, "strides": strides, "pads": pads,
                              "ceil_mode": ceil, **extra})
    return build


def _op(op, *constants, **attrs):
    """op(x, *constants) with attributes."""
    def build(g, x):
        values = [g.constant(np.asarray(c, np.float32)) for c in constants]
        return g.op(op, [x, *values], attrs)
    return build


def _pads(mode, pads, value=None):
    def build(g, x):
        inputs = [x, g.int64s(pads, "pads")]
        if value is not None:
            inputs.append(g.constant(np.asarray(value, np.float32), "value"))
        return g.op("Pad", inputs, {"mode": mode})
    return build


def _where(g, x, y):
    return g.op("Where", [g.op("Less", [x, g.constant(np.float32(0.2))]), x, y])


def _masks(g, x, y):
    either = g.op("Or", [g.op("Greater", [x, y]), g.op("Not", [g.op("Less", [y, x])])])
    both = g.op("And", [either, g.op("GreaterOrEqual", [x, g.constant(np.float32(-0.3))])])
    return g.op("Where", [both, g.constant(np.float32(1.5)), y])


def _reductions(g, x, y):
    low = g.op("Min", [x, y])
    return [g.op("ReduceMax", [low], {"axes": [1], "keepdims": 0}),
            g.op("ReduceMean", [low], {"axes": [2, 3], "keepdims": 1}),
            g.op("ReduceSum", [x, g.int64s([1])], {"keepdims": 1}),
            g.op("ReduceMin", [y], {"axes": [3], "keepdims": 0}),
            g.op("ReduceSumSquare", [y], {"axes": [1, 2, 3], "keepdims": 0}),
            g.op("ReduceL2", [x], {"axes": [0, 1, 2, 3], "keepdims": 1})]


def _activations(g, x):
    return [g.op("Clip", [x, g.constant(np.float32(-0.5)), g.constant(np.float32(0.7))]),
            g.op("HardSigmoid", [x], {"alpha": 0.3, "beta": 0.4}),
            g.op("Softsign", [x]), g.op("Shrink", [x], {"lambd": 0.3, "bias": 0.1}),
            g.op("Selu", [x]), g.op("Elu", [x], {"alpha": 0.5}),
            g.op("LeakyRelu", [x], {"alpha": 0.2}), g.op("Softplus", [x])]


def _arithmetic(g, x, y):
    channel = g.constant(np.asarray([0.5, -2.0, 4.0], np.float32).reshape(3, 1, 1))
    return [g.op("Sub", [g.constant(np.float32(2.0)), x]), g.op("Div", [x, channel]),
            g.op("Div", [g.constant(np.float32(3.0)), y]), g.op("Pow", [y, g.constant(
                np.float32(1.5))]), g.op("Sub", [channel, x]), g.op("Div", [channel, y]),
            g.op("Sqrt", [y]), g.op("Reciprocal", [y]), g.op("Log", [y]), g.op("Neg", [x]),
            g.op("Mean", [x, y])]


def _broadcasts(g, x, rows, cols):
    return [g.op("Add", [x, rows]), g.op("Mul", [x, cols]), g.op("Sub", [rows, x]),
            g.op("Div", [x, g.op("Abs", [cols])]), g.op("Max", [x, g.constant(np.float32(0.1))])]


def _conv(kernel, group=1, bias=True, **attrs):
    def build(g, x):
        weight = g.constant(_f(*kernel, seed=1))
        inputs = [x, weight] + ([g.constant(_f(kernel[0], seed=2))] if bias else [])
        return g.op("Conv", inputs, {"kernel_shape": kernel[2:], "group": group, **attrs})
    return build


def _deconv(weight_shape, group=1, **attrs):
    def build(g, x):
        weight = g.constant(_f(*weight_shape, seed=3))
        bias = g.constant(_f(weight_shape[1] * group, seed=4))
        return g.op("ConvTranspose", [x, weight, bias], {"kernel_shape": weight_shape[2:],
                                                          "group": group, **attrs})
    return build


def _linear(g, x, y):
    w = g.constant(_f(4, 5, seed=5))
    gemm = g.op("Gemm", [y, w, g.constant(_f(5, seed=6))], {"alpha": 0.5, "beta": 2.0})
    return [g.op("MatMul", [x, w]), gemm]


def _norms(g, x, y):
    instance = g.op("InstanceNormalization", [x, g.constant(_f(3, seed=7)),
                                             g.constant(_f(3, seed=8))], {"epsilon": 1e-3})
    stats = [g.constant(_f(5, seed=k)) for k in (9, 10, 11)]
    variance = g.constant(_f(5, seed=12, positive=True))
    batch = g.op("BatchNormalization", [y, *stats, variance], {"epsilon": 1e-4})
    lrn = g.op("LRN", [x], {"size": 3, "alpha": 0.01, "beta": 0.6, "bias": 1.5})
    return [instance, batch, lrn]


def _shapes(g, x):
    first, second, third = (g.op("Split", [x, g.int64s([1, 2, 3])], {"axis": 1},
                                 num_outputs=3).producer().outputs)
    part = g.op("Slice", [x, g.int64s([-4, 1]), g.int64s([100, -1]), g.int64s([1, 3])])
    flat = g.op("Flatten", [x], {"axis": 2})
    return [third, first, part, flat, second,
            g.op("Softmax", [x], {"axis": 2}), g.op("LogSoftmax", [x], {"axis": 1}),
            g.op("Gather", [x, g.int64s([4, 0, 0, 3])], {"axis": 1}),
            g.op("Transpose", [x], {"perm": [0, 2, 3, 1]}),
            g.op("Transpose", [x], {"perm": [3, 1, 0, 2]}),
            g.op("Tile", [x, g.int64s([1, 1, 2, 1])])]


def _prelu5d(g, x):
    return g.op("PRelu", [x, g.constant(np.asarray([0.1, -0.4], np.float32).reshape(2, 1, 1, 1))])


SYNTHETIC = {
    # Resize: deconvolution stencils (with edge rows repeated for half_pixel), dense otherwise
    "resize_nearest_x2": (_resize("nearest", "asymmetric", scales=[1, 1, 2, 2],
                                  nearest="floor"), [(1, 2, 4, 5)]),
    "resize_bilinear_align_corners": (_resize("linear", "align_corners",
                                              sizes=[1, 2, 9, 13]), [(1, 2, 5, 7)]),
    "resize_bilinear_half_pixel_x2": (_resize("linear", "half_pixel", scales=[1, 1, 2, 2]),
                                      [(1, 2, 6, 5)]),
    "resize_nearest_half_pixel_x3": (_resize("nearest", "half_pixel", scales=[1, 1, 3, 3]),
                                     [(1, 2, 3, 4)]),
    "resize_bilinear_dense": (_resize("linear", "half_pixel", sizes=[1, 2, 10, 7]),
                              [(1, 2, 6, 5)]),
    # pooling: Caffe's ceil rounding and divisor reconciled
    "maxpool_floor_asymmetric": (_pool("MaxPool", [3, 3], [2, 2], [0, 0, 1, 1]),
                                 [(1, 2, 10, 11)]),
    "avgpool_ceil_include_pad": (_pool("AveragePool", [3, 3], [2, 2], [1, 1, 1, 1], ceil=1,
                                       count_include_pad=1), [(1, 2, 10, 12)]),
    "avgpool_asymmetric_exclude_pad": (_pool("AveragePool", [3, 3], [2, 2], [0, 1, 1, 0]),
                                       [(1, 2, 9, 10)]),
    "maxpool_explicit_padding": (_pool("MaxPool", [3, 3], [3, 3], [0, 0, 1, 1]),
                                 [(1, 2, 8, 2)]),
    "avgpool_explicit_padding": (_pool("AveragePool", [3, 3], [3, 3], [0, 0, 1, 1],
                                       count_include_pad=1), [(1, 2, 8, 2)]),
    "maxpool_dilated_strided": (_pool("MaxPool", [2, 3], [2, 1], [1, 1, 0, 1],
                                      dilations=[2, 2]), [(1, 2, 9, 10)]),
    "global_pools": (lambda g, x: [g.op("GlobalAveragePool", [x]), g.op("GlobalMaxPool", [x])],
                     [(2, 3, 5, 4)]),
    # convolutions
    "conv_same_upper_stride2": (_conv((4, 2, 3, 3), auto_pad="SAME_UPPER", strides=[2, 2]),
                                [(1, 2, 8, 9)]),
    "conv_grouped_dilated": (_conv((6, 2, 3, 3), group=2, dilations=[2, 2], pads=[2, 2, 2, 2],
                                   bias=False), [(1, 4, 9, 9)]),
    "deconv_output_padding_grows": (_deconv((2, 3, 3, 3), strides=[2, 2],
                                            output_padding=[1, 1]), [(1, 2, 4, 5)]),
    "deconv_asymmetric_grouped": (_deconv((4, 1, 4, 4), group=2, strides=[2, 2],
                                          pads=[1, 2, 2, 1]), [(1, 4, 3, 4)]),
    "linear": (_linear, [(2, 3, 4), (3, 4)]),
    "normalizations": (_norms, [(1, 3, 5, 6), (4, 5)]),
    # data movement
    "pad_reflect": (_pads("reflect", [0, 0, 1, 2, 0, 0, 2, 1]), [(1, 2, 5, 6)]),
    "pad_edge": (_pads("edge", [0, 0, 2, 0, 0, 0, 1, 3]), [(1, 2, 5, 6)]),
    "pad_constant_crop": (_pads("constant", [0, 1, -1, 2, 0, 0, 1, -2], 1.5), [(1, 2, 5, 6)]),
    "pad_large_asymmetric": (_pads("constant", [0, 0, 0, 9, 0, 0, 12, 1], 0.5),
                             [(1, 2, 5, 6)]),
    "shapes": (_shapes, [(1, 6, 4, 5)]),
    "depth_to_space": (lambda g, x: [g.op("DepthToSpace", [x], {"blocksize": 2}),
                                     g.op("DepthToSpace", [x], {"blocksize": 2, "mode": "CRD"})],
                       [(1, 8, 3, 4)]),
    # element-wise
    "where_less": (_where, [(1, 3, 4, 4), (1, 3, 4, 4)]),
    "masks": (_masks, [(1, 3, 4, 4), (1, 3, 4, 4)]),
    "reductions": (_reductions, [(1, 3, 4, 5), (1, 3, 4, 5)]),
    "activations": (_activations, [(1, 3, 4, 5)]),
    "arithmetic": (_arithmetic, [(1, 3, 4, 5), (1, 3, 4, 5)]),
    "broadcasts": (_broadcasts, [(1, 3, 4, 5), (1, 1, 4, 1), (1, 3, 1, 5)]),
    "prelu_5d": (_prelu5d, [(1, 2, 3, 2, 2)]),
}
POSITIVE_SECOND = {"arithmetic"}  # its second input feeds Log, Sqrt, Pow


def synthetic_case(name: str):
    """(common graph, inputs) of a SYNTHETIC case; every node is its own source layer."""
    from migrate.core.graph import GraphBuilder

    build, shapes = SYNTHETIC[name]
    g = GraphBuilder(name)
    values = [g.add_input(f"x{k}", s) for k, s in enumerate(shapes)]
    original_op = g.op

    def op(*args, **kwargs):  # each node its own layer: op<k> (OpType)
        g.set_origin(f"{name}.op{len(g.graph)}", args[0])
        return original_op(*args, **kwargs)

    g.op = op
    outputs = build(g, *values)
    g.set_outputs(outputs if isinstance(outputs, list) else [outputs])
    inputs = [_f(*s, seed=10 + k, positive=name in POSITIVE_SECOND and k == 1)
              for k, s in enumerate(shapes)]
    return g.model(), inputs


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_single_op_constructions_match_onnxruntime_in_real_caffe(caffe_runs, name):
    _check(caffe_runs, f"synthetic/{name}", atol=1e-5, rtol=1e-4)


# -- a second opinion: OpenCV's Caffe importer -------------------------------------------------
# An independent Caffe implementation: it must read the written files and compute the same
# outputs wherever it implements the layers (it lacks BVLC's Clip, Reduction, Parameter
# and Threshold layers, and softmax over 1-D blobs). Run in a child process: OpenCV
# aborts on some nets instead of raising.

_OPENCV = r"""
import json, sys
import numpy as np
import cv2
for k, job in enumerate(json.load(open(sys.argv[1]))):
    print("start", k, flush=True)
    try:
        net = cv2.dnn.readNetFromCaffe(job["net"], job["weights"])
        for name, path in zip(job["input_names"], job["inputs"]):
            net.setInput(np.load(path).astype(np.float32), name)
        outs = net.forward(job["output_names"])
        np.savez(job["out"], *outs)
    except cv2.error as exc:
        print("error", k, str(exc).strip().splitlines()[-1][:200], flush=True)
    print("done", k, flush=True)
"""
OPENCV_LACKS = ("Clip", "Reduction", "Parameter", "Threshold", "softmax")


def test_opencv_reads_the_written_files_and_agrees(caffe_runs, tmp_path):
    pytest.importorskip("cv2")
    import json

    jobs, keys = [], []
    for key, (files, input_names, output_names, inputs) in caffe_runs.written.items():
        if not key.endswith("/optimized") or "_double" in key or key.startswith("caffe/"):
            continue
        paths = []
        for k, array in enumerate(inputs):
            paths.append(str(tmp_path / f"{len(jobs)}_{k}.npy"))
            np.save(paths[-1], array)
        jobs.append({"net": files["net"], "weights": files["weights"], "inputs": paths,
                     "input_names": input_names, "output_names": output_names,
                     "out": str(tmp_path / f"{len(jobs)}.npz")})
        keys.append(key)
    errors: dict[int, str] = {}
    start = 0
    while start < len(jobs):
        (tmp_path / "jobs.json").write_text(json.dumps(jobs[start:]))
        proc = subprocess.run([sys.executable, "-c", _OPENCV, str(tmp_path / "jobs.json")],
                              capture_output=True, text=True, timeout=900)
        done = start
        for line in proc.stdout.splitlines():
            word, k, *rest = line.split(" ", 2)
            if word == "error":
                errors[start + int(k)] = rest[0] if rest else ""
            if word == "done":
                done = start + int(k) + 1
        if done < len(jobs) and proc.returncode != 0:
            errors[done] = "OpenCV aborted"
            done += 1
        start = done
    agreed = 0
    for k, key in enumerate(keys):
        if k in errors:
            assert any(word in errors[k] for word in OPENCV_LACKS), (key, errors[k])
            continue
        with np.load(jobs[k]["out"]) as npz:
            got = [npz[f"arr_{i}"] for i in range(len(npz.files))]
        result = compare(got, caffe_runs[key][1], ATOL, RTOL)
        assert result.passed, f"{key}: {result.describe()}"
        agreed += 1
    assert agreed >= 0.85 * len(keys), f"OpenCV ran only {agreed} of {len(keys)} nets"


# -- what the files hold ------------------------------------------------------------------

def _lenet_net() -> CaffeNet:
    return build_net(read_torch7(LENET, [[2, 1, 28, 28]]).model, "lenet")


def test_prototxt_is_readable_and_keyed_by_source_layer():
    net = _lenet_net()
    text = net.prototxt()
    parsed = caffe_pb2.NetParameter()
    from google.protobuf import text_format

    text_format.Parse(text, parsed)
    types = [layer.type for layer in parsed.layer]
    assert types == ["Input", "Convolution", "ReLU", "Pooling", "Convolution", "ReLU",
                     "Pooling", "Reshape", "InnerProduct", "ReLU", "InnerProduct", "ReLU",
                     "InnerProduct", "Softmax", "Log"]
    assert list(parsed.layer[0].input_param.shape[0].dim) == [2, 1, 28, 28]
    names = [layer.name for layer in parsed.layer]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_\-/]+", n) for n in names)
    assert names[1] == "model_modules_1" and names[-1] == "model_modules_13"
    sources = layer_sources(text)
    assert sources["model_modules_1"] == ("model.modules[1]", "nn.SpatialConvolution")
    # LogSoftMax is two Caffe layers; both carry the module, the last is its output
    assert sources["model_modules_13"] == ("model.modules[13]", "nn.LogSoftMax")
    assert sources["model_modules_13_softmax"][0] == "model.modules[13]"
    assert "data" not in sources


def test_caffemodel_holds_the_weights_bit_for_bit_as_packed_floats():
    net = _lenet_net()
    full = net.net_parameter()
    conv = next(layer for layer in full.layer if layer.name == "model_modules_1")
    weight = np.asarray(conv.blobs[0].data, np.float32).reshape(list(conv.blobs[0].shape.dim))
    from migrate.readers.torch7 import t7file
    from migrate.readers.torch7.module import T7Module

    module = T7Module(t7file.load(LENET), "model").children()[0]
    np.testing.assert_array_equal(weight, module.tensor("weight"))
    # the same layer definitions as the prototxt, plus blobs
    assert [layer.name for layer in full.layer] == [layer.proto.name for layer in net.layers]
    wire = net.weights_bytes()
    assert len(wire) < sum(a.nbytes for layer in net.layers for a in layer.blobs) + 4096


def test_weights_are_streamed_not_copied():
    """Every chunk of a weight is the array's own memory or its source file's bytes."""
    from migrate.core.mapped import FileRegion

    net = _lenet_net()
    chunks = list(net.weights())
    big = [c for c in chunks if (c.length if isinstance(c, FileRegion) else len(c)) > 1000]
    assert big
    arrays = [a for layer in net.layers for a in layer.blobs]
    for chunk in big:
        if isinstance(chunk, FileRegion):
            assert os.path.samefile(chunk.path, LENET)
        else:
            assert isinstance(chunk, memoryview)
            view = np.frombuffer(chunk, np.uint8)
            assert any(np.shares_memory(view, a) for a in arrays)


def test_a_failed_write_leaves_no_file(tmp_path):
    net = _lenet_net()
    net.layers[1].blobs[0] = np.array([object()] * 3)  # cannot become float32
    with pytest.raises((TypeError, ValueError)):
        write_caffe(net, str(tmp_path), "broken")
    assert os.listdir(tmp_path) == []


def test_batchnorm_scale_factor_is_one_and_affine_is_a_scale(shared_dir):
    path = os.path.join(T7_DIR, "b_misc_layers_float.t7")
    net = build_net(read_torch7(path, [[1, 3, 16, 16]]).model, "m")
    layers = {layer.proto.name: layer for layer in net.layers}
    bn = next(layer for layer in net.layers if layer.proto.type == "BatchNorm")
    assert bn.proto.batch_norm_param.use_global_stats
    assert [list(b.shape) for b in bn.blobs] == [[8], [8], [1]] and bn.blobs[2][0] == 1.0
    scale = layers["model_modules_2"]
    assert scale.proto.type == "Scale" and scale.proto.bottom[0] == bn.proto.top[0]
    # without affine parameters there is no Scale
    path = os.path.join(T7_DIR, "layer_SpatialBatchNormalization_noaffine_float.t7")
    net = build_net(read_torch7(path, [[1, 4, 9, 11]]).model, "m")
    assert [layer.proto.type for layer in net.layers] == ["Input", "BatchNorm"]


def test_floor_pooling_is_cropped_and_said(shared_dir):
    path = os.path.join(T7_DIR, "layer_SpatialMaxPooling_float.t7")
    net = build_net(read_torch7(path, [[1, 4, 9, 11]]).model, "m")
    assert [layer.proto.type for layer in net.layers] == ["Input", "Pooling", "Slice",
                                                          "Slice", "Silence"]
    assert any("ceil rounding" in note for note in net.notes)


def test_outputs_are_named_in_the_source_order(shared_dir):
    """Caffe orders a net's outputs by blob name: the writer's names keep the source's."""
    path = os.path.join(T7_DIR, "f_nngraph_multi_io_float.t7")
    net = build_net(read_torch7(path, [[1, 3, 8, 8], [1, 2, 8, 8]]).model, "m")
    assert net.outputs == sorted(net.outputs) and len(net.outputs) == 2
    assert [layer.proto.name for layer in net.layers if layer.proto.type == "Input"] == [
        "data1", "data2"]


def test_unsupported_op_names_the_source_layer(shared_dir):
    case = next(c for c in MORE_CASES if c.name == "n_VolumetricMaxPooling_float")
    model = _t7(case, False)
    with pytest.raises(ConversionError) as info:
        build_net(model, "m")
    assert info.value.where == "model.modules[1] (nn.VolumetricMaxPooling)"
    assert "Caffe pools 2-D" in info.value.message


def test_recognize_takes_the_pair_in_either_order(tmp_path):
    files = write_caffe(_lenet_net(), str(tmp_path), "m")
    expected = {"net": files["net"], "weights": files["weights"]}
    assert recognize([files["net"], files["weights"]]) == expected
    assert recognize([files["weights"], files["net"]]) == expected
    assert recognize([files["net"]]) is None
    assert recognize([LENET, files["net"]]) is None


# -- the command line -----------------------------------------------------------------------

def _migrate(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_cli_converts_torch7_to_caffe_and_verifies_layer_by_layer(shared_dir, caffe_python,
                                                                   tmp_path):
    model = os.path.join(T7_DIR, "b_misc_edge_float.t7")
    out = tmp_path / "out"
    result = _migrate(model, "--to", "caffe", "-o", str(out), "--report")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "b_misc_edge_float.prototxt" in text and "b_misc_edge_float.caffemodel" in text
    assert re.search(r"verified +Caffe \(real runtime\) vs the source graph in onnxruntime"
                     r".* OK", text), text
    assert "divides by its own window size" in text  # exclude-pad average pooling, said
    # the layer table: every module of the source, each within tolerance
    assert "every layer within atol" in text
    for k in range(2, 12):
        assert f"model.modules[{k}] (" in text
    assert sorted(os.listdir(out)) == ["b_misc_edge_float.caffemodel",
                                       "b_misc_edge_float.prototxt",
                                       "b_misc_edge_float.report.html",
                                       "b_misc_edge_float.report.json"]
    again = _migrate("verify", model, str(out / "b_misc_edge_float.prototxt"),
                     str(out / "b_misc_edge_float.caffemodel"))
    assert again.returncode == 0, again.stderr
    assert "outputs: max abs" in again.stdout and "OK" in again.stdout


def test_cli_converts_an_onnx_model_to_caffe(shared_dir, caffe_python, tmp_path):
    model = os.path.join(REAL_DIR, "onnx", "backend", "light", "light_squeezenet.onnx")
    result = _migrate(model, "--to", "caffe", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert re.search(r"verified +Caffe \(real runtime\) vs .* OK", result.stdout)


def test_cli_unsupported_layer_is_one_clear_line(shared_dir, tmp_path):
    case = next(c for c in MORE_CASES if c.name == "n_VolumetricMaxPooling_float")
    shape = "x".join(map(str, case.inputs[0].shape))
    result = _migrate(case.model, "--to", "caffe", "-o", str(tmp_path), "--no-verify",
                      "--input-shape", shape)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("migrate: error: ")
    assert "model.modules[1] (nn.VolumetricMaxPooling): 3-D pooling" in lines[0]
    assert os.listdir(tmp_path) == []
