"""The torch/nn classes of the math / shape / decorator kind (manifest_n.txt), converted
and run in real onnxruntime and real Caffe2, reproduce what real Lua Torch7 computed
(../shared/fixtures/torch7/raw/*.f64); inputs Torch7 took as LongTensor / ByteTensor are
integer inputs of the converted model."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from fixtures_t7 import T7_DIR, Case, cases

import migrate
from migrate.core.passes.optimize import optimize
from migrate.readers.torch7.reader import read_torch7
from migrate.readers.torch7.registry import package_of
from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare
from migrate.writers.caffe2.writer import build_nets, write_caffe2
from migrate.writers.onnx.writer import write_onnx

ATOL = RTOL = 1e-4

NAMES = """
n_Bilinear n_Bilinear_nobias n_MM n_MM_transA_transB n_MV n_MV_trans n_PairwiseDistance
n_PairwiseDistance_p1 n_CosineDistance n_DotProduct n_Cosine n_Euclidean n_WeightedEuclidean
n_LinearWeightNorm n_LinearWeightNorm_keepstate n_WeightNorm_Linear n_WeightNorm_Conv
n_PartialLinear n_SparseLinear n_SparseLinear_legacy n_IndexLinear n_Maxout
n_LayerNormalization n_CAdd n_CAdd_bcast n_Constant n_LogSigmoid n_Clamp n_HardShrink
n_SoftShrink n_SoftSign n_TanhShrink n_RReLU n_GatedLinearUnit n_GatedLinearUnit_lastdim
n_CReLU n_SpatialLogSoftMax n_WhiteNoise n_L1Penalty n_GradientReversal n_ZeroGrad
n_PrintSize n_Decorator n_NaN n_Profile n_DontCast n_Copy n_Convert n_Index n_Select
n_Select_neg n_Squeeze n_Squeeze_dim n_Unsqueeze n_Unsqueeze_numInputDims n_Replicate
n_Replicate_ndim n_Contiguous n_Collapse n_PixelShuffle n_MaskedSelect n_OneHot
n_LookupTable n_LookupTable_maxNorm n_LookupTable_Sum
""".split()
CASES = cases(NAMES)
IDS = [c.name for c in CASES]
VARIANTS = ("naive", "optimized")

# the tensor types the manifest lists for a case's input, e.g. "input {torch.LongTensor[5],
# torch.FloatTensor[5]} ->", and what the converted model's input must be for each
_DTYPES = {"torch.LongTensor": "int64", "torch.ByteTensor": "uint8",
           "torch.FloatTensor": "float32", "torch.DoubleTensor": "float32"}


def _manifest_input_types(case: Case) -> list[str]:
    text = open(os.path.join(T7_DIR, "manifest_n.txt")).read()
    line = re.search(rf"^\s*{re.escape(os.path.basename(case.model))}\s.*?input (.*?) ->", text,
                     flags=re.M)
    assert line, f"{case.name} is not in manifest_n.txt"
    return re.findall(r"(torch\.\w+Tensor)\[", line.group(1))


def _converted(case: Case, variant: str):
    model = read_torch7(case.model, [a.shape for a in case.inputs]).model
    if variant == "optimized":
        optimize(model)
    return model


def _typed_inputs(model, case: Case) -> list[np.ndarray]:
    """The recorded inputs in the model's input types (raw files hold Long indices as
    float64)."""
    return [np.asarray(a).astype(v.dtype.numpy())
            for v, a in zip(model.graph.inputs, case.inputs, strict=True)]


@pytest.fixture(scope="module")
def converted(shared_dir, tmp_path_factory):
    """Every case read once per variant and written as ONNX and as a Caffe2 pair."""
    out = tmp_path_factory.mktemp("nn_math")
    built, failures = {}, {}
    for case in CASES:
        for variant in VARIANTS:
            key = (case.name, variant)
            try:
                model = _converted(case, variant)
                onnx_path = write_onnx(model, str(out), f"{case.name}_{variant}")["onnx"]
                nets = build_nets(model, case.name, optimize=variant == "optimized")
                pair = write_caffe2(nets, str(out), f"{case.name}_{variant}")
            except Exception as exc:  # reported by the tests of that case
                failures[key] = exc
                continue
            built[key] = (model, onnx_path, pair)
    return built, failures


def _built(converted, case, variant):
    built, failures = converted
    if (case.name, variant) in failures:
        raise failures[(case.name, variant)]
    return built[(case.name, variant)]


def test_every_case_has_its_fixture(shared_dir):
    assert {re.sub(r"_(float|double)$", "", c.name) for c in CASES} == set(NAMES)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_onnx_matches_torch7(case: Case, variant: str, converted):
    model, onnx_path, _ = _built(converted, case, variant)
    got = run_onnx(onnx_path, _typed_inputs(model, case))
    result = compare(got, case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()


@pytest.fixture(scope="module")
def caffe2_jobs(caffe2_python, converted):
    """Every converted pair run in ONE Caffe2 process."""
    built, _ = converted
    jobs = {}
    for case in CASES:
        for variant in VARIANTS:
            if (case.name, variant) in built:
                model, _, pair = built[(case.name, variant)]
                jobs[(case.name, variant)] = Caffe2Job(pair["init_net"], pair["predict_net"],
                                                       _typed_inputs(model, case))
    run_caffe2_jobs(caffe2_python, list(jobs.values()))
    return jobs


@pytest.mark.caffe2
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_caffe2_matches_torch7(case: Case, variant: str, converted, caffe2_jobs):
    _built(converted, case, variant)
    job = caffe2_jobs[(case.name, variant)]
    assert job.error is None, f"Caffe2 failed: {job.error}"
    result = compare(job.outputs, case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_input_types_follow_torch7(case: Case, converted):
    """LongTensor inputs (word indices, keys, sizes) are int64 inputs, a ByteTensor mask is
    uint8, FloatTensors stay float (SparseLinear's float indices are cast inside)."""
    model, _, _ = _built(converted, case, "naive")
    wanted = [_DTYPES[t] for t in _manifest_input_types(case)]
    assert [v.dtype.numpy().name for v in model.graph.inputs] == wanted


def test_integer_inputs_verify_with_random_valid_indices(shared_dir, caffe2_python, tmp_path):
    """Without recorded inputs, verification draws integer inputs from the range the
    reader declares (valid word indices), and real Caffe2 agrees with the reference."""
    path = os.path.join(T7_DIR, "n_LookupTable_Sum_float.t7")
    summary = migrate.convert(path, to="caffe2", out_dir=str(tmp_path), input_shapes=[[3, 7]],
                              caffe2_python=caffe2_python)
    (info,) = summary.inputs
    assert (info.dtype, info.value_range) == ("int64", (1, 12))
    assert summary.verification.executed and summary.verification.passed


def test_packages_of_classes():
    """`migrate inspect` names the package of classes that are not torch/nn's own."""
    assert package_of("nn.LookupTable") == "nn"
    assert package_of("nn.gModule") == "nngraph"
    assert package_of("cudnn.SpatialConvolution") == "cudnn"
