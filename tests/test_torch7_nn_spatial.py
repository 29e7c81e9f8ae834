"""The spatial / temporal / volumetric torch/nn classes (manifest_n.txt), converted and run
in real onnxruntime and real Caffe2 (one process for every case), reproduce what real Lua
Torch7 computed (../shared/fixtures/torch7/raw/*.f64).

Caffe2 lacks several operators these need (3-D ConvTranspose, dilated and index-returning
pooling, MaxUnpool, trilinear Resize, N-d edge padding, TopK of integers,
GatherElements); the writer builds them from the ones it has. Those constructions are
also checked on configurations no fixture has, against onnxruntime running the same
ONNX graph."""

from __future__ import annotations

import re

import numpy as np
import onnx_ir as ir
import pytest
from fixtures_t7 import Case, cases

from migrate.core.errors import ConversionError
from migrate.core.graph import GraphBuilder
from migrate.core.passes.optimize import optimize
from migrate.readers.torch7.reader import build_graph, load_root, read_torch7
from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare
from migrate.writers.caffe2.writer import build_nets, write_caffe2
from migrate.writers.onnx.writer import write_onnx

ATOL = RTOL = 1e-4

NAMES = """
n_SpatialSubtractiveNormalization n_SpatialDivisiveNormalization
n_SpatialContrastiveNormalization n_SpatialContrastiveNormalization_default
n_VolumetricBatchNormalization n_TemporalConvolution n_TemporalConvolution_stride
n_TemporalMaxPooling n_TemporalMaxPooling_k3s2 n_TemporalSubSampling
n_TemporalDynamicKMaxPooling n_TemporalRowConvolution n_TemporalRowConvolution_featFirst
n_FeatureLPPooling n_SpatialSubSampling n_SpatialLPPooling n_SpatialLPPooling_p3
n_SpatialAdaptiveMaxPooling n_SpatialAdaptiveAveragePooling n_SpatialMaxUnpooling
n_SpatialMaxUnpooling_encdec n_SpatialConvolutionLocal n_SpatialConvolutionLocal_stride
n_SpatialDepthWiseConvolution n_SpatialConvolutionMap_random n_SpatialConvolutionMap_oneToOne
n_SpatialFullConvolutionMap n_SpatialFractionalMaxPooling_fixed n_UpSampling_nearest
n_UpSampling_linear n_UpSampling_trilinear_size n_VolumetricConvolution
n_VolumetricConvolution_stride n_VolumetricFullConvolution n_VolumetricDilatedConvolution
n_VolumetricMaxPooling n_VolumetricMaxPooling_pad_ceil n_VolumetricDilatedMaxPooling
n_VolumetricAveragePooling n_VolumetricAveragePooling_pad n_VolumetricMaxUnpooling
n_VolumetricReplicationPadding n_VolumetricFractionalMaxPooling_fixed
""".split()
CASES = cases(NAMES)
IDS = [c.name for c in CASES]
VARIANTS = ("naive", "optimized")


# -- ONNX graphs of the Caffe2 constructions, on configurations no fixture has ----------

def _pool_unpool(kernel, strides, pads, dilations=None):
    """MaxPool with indices, and MaxUnpool of the pooled values (overlapping windows
    write the same value twice, so the scatter order does not matter)."""
    def build(g, x):
        attrs = dict(kernel_shape=kernel, strides=strides, pads=pads)
        if dilations:
            attrs["dilations"] = dilations
        pooled = g.op("MaxPool", [x], attrs, num_outputs=2)
        indices = pooled.producer().outputs[1]
        shape = g.int64s(list(x.shape))
        unpooled = g.op("MaxUnpool", [pooled, indices, shape],
                        dict(kernel_shape=kernel, strides=strides, pads=pads))
        unpooled.shape, unpooled.type = ir.Shape(list(x.shape)), x.type
        return [pooled, indices, unpooled]
    return build


def _op(op_type, **attrs):
    return lambda g, x: [g.op(op_type, [x], attrs)]


def _conv_transpose(in_planes, out_planes, kernel, **attrs):
    def build(g, x):
        rng = np.random.default_rng(7)
        weight = rng.standard_normal((in_planes, out_planes, *kernel)).astype(np.float32)
        bias = rng.standard_normal(out_planes).astype(np.float32)
        return [g.op("ConvTranspose", [x, g.constant(weight), g.constant(bias)],
                     dict(kernel_shape=kernel, **attrs))]
    return build


def _conv(in_planes, out_planes, kernel, group=1, **attrs):
    def build(g, x):
        weight = np.random.default_rng(8).standard_normal(
            (out_planes, in_planes // group, *kernel)).astype(np.float32)
        return [g.op("Conv", [x, g.constant(weight)], dict(kernel_shape=kernel, group=group,
                                                             **attrs))]
    return build


def _pad(pads, mode):
    return lambda g, x: [g.op("Pad", [x, g.int64s(pads)], dict(mode=mode))]


def _resize_nearest(scales):
    return lambda g, x: [g.op("Resize", [x, None, g.constant(np.array(scales, np.float32))], dict(
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"))]


def _top_k_smallest(k, axis):
    def build(g, x):
        values = g.op("TopK", [x, g.int64s([k])], dict(axis=axis, largest=0, sorted=1),
                      num_outputs=2)
        return [values, values.producer().outputs[1]]
    return build


def _gather_elements(axis, index_shape, high):
    def build(g, x):
        indices = np.random.default_rng(9).integers(0, high, index_shape).astype(np.int64)
        return [g.op("GatherElements", [x, g.constant(indices)], dict(axis=axis))]
    return build


CONSTRUCTIONS = {
    "maxpool2d_indices_overlap_pad": ([2, 3, 7, 8], _pool_unpool([3, 3], [2, 2], [1, 1, 1, 1])),
    "maxpool3d_indices_pad": ([1, 2, 5, 6, 7], _pool_unpool([3, 2, 3], [2, 2, 2],
                                                            [1, 0, 1, 1, 1, 1])),
    "maxpool3d_dilated_pad": ([2, 2, 7, 7, 6], _op("MaxPool", kernel_shape=[2, 3, 2],
                                                   strides=[1, 2, 1], pads=[1, 1, 0, 1, 1, 1],
                                                   dilations=[2, 2, 3])),
    "maxpool3d_dilated_subsampled": ([1, 2, 9, 7, 10], _op(
        "MaxPool", kernel_shape=[3, 2, 2], strides=[4, 2, 3], dilations=[2, 1, 3],
        pads=[1, 0, 1, 1, 1, 0])),
    "maxpool2d_dilated_subsampled_ceil": ([2, 1, 11, 9], _op(
        "MaxPool", kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 1], ceil_mode=1)),
    "maxpool1d_ceil": ([2, 3, 10], _op("MaxPool", kernel_shape=[3], strides=[2], ceil_mode=1)),
    "avgpool1d_pad_exclude": ([2, 3, 9], _op("AveragePool", kernel_shape=[3], strides=[2],
                                             pads=[1, 1], count_include_pad=0)),
    "convtranspose3d_dilated_crop": ([1, 2, 3, 4, 3], _conv_transpose(
        2, 3, [3, 2, 3], strides=[2, 1, 3], pads=[5, 1, 0, 4, 0, 2], dilations=[3, 1, 2],
        output_padding=[1, 0, 2])),
    "convtranspose3d_frames": ([2, 3, 4, 3, 5], _conv_transpose(
        3, 2, [3, 2, 3], strides=[2, 2, 1], pads=[2, 1, 0, 1, 1, 2], dilations=[2, 1, 1],
        output_padding=[1, 1, 0])),
    "convtranspose2d_adj_w_only": ([1, 2, 4, 5], _conv_transpose(
        2, 3, [3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[0, 1])),
    "conv2d_dilation_w_only": ([1, 2, 7, 9], _conv(2, 3, [3, 3], dilations=[1, 2])),
    "avgpool3d_pad_exclude": ([2, 2, 5, 6, 7], _op(
        "AveragePool", kernel_shape=[3, 2, 3], strides=[2, 1, 2], pads=[1, 0, 1, 1, 1, 0],
        count_include_pad=0)),
    "avgpool3d_pad_include": ([2, 2, 5, 6, 7], _op(
        "AveragePool", kernel_shape=[3, 2, 3], strides=[2, 1, 2], pads=[1, 1, 1, 1, 0, 1],
        count_include_pad=1)),
    "convtranspose1d_stride3": ([2, 3, 5], _conv_transpose(3, 2, [4], strides=[3], pads=[1, 2])),
    "conv1d_dilated_group": ([2, 4, 11], _conv(4, 6, [3], group=2, dilations=[2], pads=[2, 1])),
    "resize5d_nearest": ([1, 2, 3, 2, 3], _resize_nearest([1, 1, 2, 1, 3])),
    "pad5d_edge": ([2, 1, 2, 3, 2], _pad([0, 0, 2, 0, 1, 0, 0, 1, 3, 2], "edge")),
    "pad3d_edge_channels": ([2, 3, 4], _pad([0, 2, 1, 0, 1, 0], "edge")),
    "topk_smallest_axis1": ([2, 9, 4], _top_k_smallest(4, 1)),
    "gather_elements_axis0": ([5, 3, 4], _gather_elements(0, [2, 3, 4], 5)),
}


# Fixture models with changed fields, on other input sizes, for corners nn shares with
# PyTorch (its pooling descends from THNN's): PyTorch is the reference there.
def _pool_ceil_pad_unpool(fields):
    pooling = fields[0]
    pooling[b"padW"] = pooling[b"padH"] = 1
    pooling[b"ceil_mode"] = True


def _torch_pool_ceil_pad_unpool(x):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x)
    pooled, where = F.max_pool2d(t, 2, 2, 1, ceil_mode=True, return_indices=True)
    return [F.max_unpool2d(pooled, where, 2, 2, 1, output_size=t.shape[-2:]).numpy()]


VARIANTS_VS_PYTORCH = {
    # the last window would start in the padding: nn (and PyTorch) drop it, ONNX's
    # ceil_mode keeps it
    "maxpool_ceil_pad_unpool_7x7": ("n_SpatialMaxUnpooling", _pool_ceil_pad_unpool,
                                    [2, 3, 7, 7], _torch_pool_ceil_pad_unpool),
}


def _variant_model(name):
    fixture, change, shape, _ = VARIANTS_VS_PYTORCH[name]
    case = next(c for c in CASES if c.name == f"{fixture}_float")
    root = load_root(case.model)
    change([m.obj._obj for m in root.children()])
    return build_graph(root, name, [shape]).model


def _variant_input(name):
    shape = VARIANTS_VS_PYTORCH[name][2]
    return np.random.default_rng(3).standard_normal(shape).astype(np.float32)


def _construction_model(name):
    shape, build = CONSTRUCTIONS[name]
    g = GraphBuilder(name)
    g.set_origin("model", "test")
    g.set_outputs(build(g, g.add_input("data", shape)))
    return g.model()


def _construction_input(name):
    shape, _ = CONSTRUCTIONS[name]
    return np.random.default_rng(len(name)).standard_normal(shape).astype(np.float32)


# -- conversions, once per case and variant --------------------------------------------

@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every fixture case read once per variant and written as ONNX and as a Caffe2 pair;
    the construction graphs written too (their reference is onnxruntime)."""
    out = str(tmp_path_factory.mktemp("nn_spatial"))
    built, failures = {}, {}
    jobs = [((c.name, v), lambda c=c, v=v: _read(c, v)) for c in CASES for v in VARIANTS]
    jobs += [((name, "construction"), lambda n=name: _construction_model(n))
             for name in CONSTRUCTIONS]
    if CASES:
        jobs += [((name, "variant"), lambda n=name: _variant_model(n))
                 for name in VARIANTS_VS_PYTORCH]
    for key, make in jobs:
        try:
            model = make()
            stem = "_".join(key)
            onnx_path = write_onnx(model, out, stem)["onnx"]
            nets = build_nets(model, key[0], optimize=key[1] == "optimized")
            built[key] = (onnx_path, write_caffe2(nets, out, stem))
        except Exception as exc:  # reported by the tests of that case
            failures[key] = exc
    return built, failures


def _read(case: Case, variant: str):
    model = read_torch7(case.model, [a.shape for a in case.inputs]).model
    if variant == "optimized":
        optimize(model)
    return model


def _built(converted, key):
    built, failures = converted
    if key in failures:
        raise failures[key]
    return built[key]


@pytest.fixture(scope="module")
def caffe2_jobs(caffe2_python, converted):
    """Every written pair run in ONE Caffe2 process."""
    built, _ = converted
    inputs = {c.name: c.inputs for c in CASES}
    inputs.update({name: [_construction_input(name)] for name in CONSTRUCTIONS})
    inputs.update({name: [_variant_input(name)] for name in VARIANTS_VS_PYTORCH})
    jobs = {key: Caffe2Job(pair["init_net"], pair["predict_net"], inputs[key[0]])
            for key, (_, pair) in built.items()}
    run_caffe2_jobs(caffe2_python, list(jobs.values()))
    return jobs


def _caffe2_outputs(caffe2_jobs, converted, key):
    _built(converted, key)
    job = caffe2_jobs[key]
    assert job.error is None, f"Caffe2 failed: {job.error}"
    return job.outputs


# -- Torch7 ground truth -----------------------------------------------------------------

def test_every_case_has_its_fixture(shared_dir):
    assert {re.sub(r"_(float|double)$", "", c.name) for c in CASES} == set(NAMES)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_onnx_matches_torch7(case: Case, variant: str, converted):
    onnx_path, _ = _built(converted, (case.name, variant))
    result = compare(run_onnx(onnx_path, case.inputs), case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()


@pytest.mark.caffe2
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_caffe2_matches_torch7(case: Case, variant: str, converted, caffe2_jobs):
    got = _caffe2_outputs(caffe2_jobs, converted, (case.name, variant))
    result = compare(got, case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()


# -- the Caffe2 constructions against onnxruntime ----------------------------------------

@pytest.mark.caffe2
@pytest.mark.parametrize("name", list(CONSTRUCTIONS))
def test_caffe2_construction_matches_onnxruntime(name, converted, caffe2_jobs):
    onnx_path, _ = _built(converted, (name, "construction"))
    expected = run_onnx(onnx_path, [_construction_input(name)])
    got = _caffe2_outputs(caffe2_jobs, converted, (name, "construction"))
    assert [np.shape(a) for a in got] == [np.shape(b) for b in expected]
    for a, b in zip(got, expected, strict=True):
        if np.asarray(b).dtype.kind in "iu":  # indices: exactly
            np.testing.assert_array_equal(a, b)
    result = compare(got, expected, 1e-5, 1e-5)
    assert result.passed, result.describe()


# -- what no fixed model can compute: clear errors naming the module ---------------------

def _conversion_error(name: str, change) -> str:
    """The error converting fixture `name` after `change(first module)`."""
    case = next(c for c in CASES if c.name == f"{name}_float")
    root = load_root(case.model)
    change(root.children()[0].obj._obj)
    with pytest.raises(ConversionError) as info:
        build_graph(root, name, [a.shape for a in case.inputs])
    return str(info.value)


def test_fractional_pooling_with_random_regions_is_refused(shared_dir):
    def unfix(fields):
        fields[b"newRandomPool"] = False

    message = _conversion_error("n_SpatialFractionalMaxPooling_fixed", unfix)
    assert message.startswith("model.modules[1] (nn.SpatialFractionalMaxPooling): ")
    assert "fixPoolingRegions" in message


def test_fractional_pooling_samples_for_another_batch_are_refused(shared_dir):
    def other_batch(fields):
        fields[b"randomSamples"] = fields[b"randomSamples"][:1]

    message = _conversion_error("n_VolumetricFractionalMaxPooling_fixed", other_batch)
    assert message.startswith("model.modules[1] (nn.VolumetricFractionalMaxPooling): ")
    assert "randomSamples" in message


def test_dilated_volumetric_pooling_that_skips_border_taps_is_refused(shared_dir):
    def pad_two(fields):
        fields[b"padT"] = 2
        fields[b"kT"] = 4

    message = _conversion_error("n_VolumetricDilatedMaxPooling", pad_two)
    assert message.startswith("model.modules[1] (nn.VolumetricDilatedMaxPooling): ")
    assert "skips border taps" in message


def test_unpooling_before_its_pooling_ran_is_refused(shared_dir):
    case = next(c for c in CASES if c.name == "n_SpatialMaxUnpooling_float")
    root = load_root(case.model)
    modules = root.obj._obj[b"modules"]
    modules[1], modules[2] = modules[2], modules[1]  # unpooling first
    with pytest.raises(ConversionError) as info:
        build_graph(root, "swapped", [a.shape for a in case.inputs])
    assert str(info.value).startswith("model.modules[1] (nn.SpatialMaxUnpooling): ")


@pytest.mark.parametrize("name", list(VARIANTS_VS_PYTORCH))
def test_variant_matches_pytorch_in_onnxruntime_and_caffe2(name, shared_dir, converted,
                                                           caffe2_python, caffe2_jobs):
    onnx_path, _ = _built(converted, (name, "variant"))
    x = _variant_input(name)
    expected = VARIANTS_VS_PYTORCH[name][3](x)
    for runtime, got in (("onnxruntime", run_onnx(onnx_path, [x])),
                         ("Caffe2", _caffe2_outputs(caffe2_jobs, converted, (name, "variant")))):
        result = compare(got, expected, ATOL, RTOL)
        assert result.passed, f"{runtime}: {result.describe()}"
