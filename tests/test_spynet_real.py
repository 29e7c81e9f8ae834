"""The 28 real SpyNet level models (saved from GPU with cudnn layers and CudaTensor
weights) convert; real Caffe2 and onnxruntime reproduce real Torch7's outputs."""

from __future__ import annotations

import os

import pytest
from fixtures_t7 import SPYNET_MODELS, spynet_expected, spynet_input

from migrate.core.passes.optimize import optimize
from migrate.readers.torch7.reader import read_torch7
from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare
from migrate.writers.caffe2.writer import build_nets, write_caffe2
from migrate.writers.onnx.writer import write_onnx

MODELS = SPYNET_MODELS
ATOL = 1e-4


@pytest.fixture(scope="module")
def spynet_models(shared_dir):
    if len(MODELS) != 28:
        pytest.skip("the real SpyNet files are not in ../shared")
    return MODELS


@pytest.mark.parametrize("optimized", [False, True], ids=["naive", "optimized"])
def test_all_28_real_spynet_models_match_in_caffe2(spynet_models, caffe2_python, tmp_path,
                                                   optimized):
    x = spynet_input()
    jobs = []
    for path in spynet_models:
        stem = os.path.basename(path)[:-3]
        model = read_torch7(path, [x.shape]).model
        if optimized:
            optimize(model)
        nets = build_nets(model, stem, optimize=optimized)
        paths = write_caffe2(nets, str(tmp_path), stem)
        jobs.append((stem, Caffe2Job(paths["init_net"], paths["predict_net"], [x])))
    run_caffe2_jobs(caffe2_python, [job for _, job in jobs])
    for stem, job in jobs:
        assert job.error is None, f"{stem}: {job.error}"
        result = compare(job.outputs, [spynet_expected(stem)], atol=ATOL, rtol=0)
        assert result.passed, f"{stem}: {result.describe()}"


@pytest.mark.parametrize("path", MODELS, ids=[os.path.basename(p) for p in MODELS])
def test_real_spynet_model_matches_in_onnxruntime(path, spynet_models, tmp_path):
    stem = os.path.basename(path)[:-3]
    x = spynet_input()
    written = write_onnx(read_torch7(path, [x.shape]).model, str(tmp_path), stem)
    result = compare(run_onnx(written["onnx"], [x]), [spynet_expected(stem)], atol=ATOL, rtol=0)
    assert result.passed, result.describe()


def test_spynet_caffe2_blobs_follow_brew_naming(spynet_models, tmp_path):
    nets = build_nets(read_torch7(spynet_models[0], [[1, 8, 24, 32]]).model, "spynet")
    ops = [(op.type, list(op.input), list(op.output)) for op in nets.predict_net.op]
    assert ops[0] == ("Conv", ["data", "conv1_w", "conv1_b"], ["conv1"])
    assert ops[1] == ("Relu", ["conv1"], ["relu1"])
    assert ops[-1][0] == "Conv" and ops[-1][2] == ["conv5"]
    assert list(nets.predict_net.external_input)[:3] == ["data", "conv1_w", "conv1_b"]
    assert list(nets.predict_net.external_output) == ["conv5"]
    fills = {op.output[0]: op.type for op in nets.init_net.op}
    assert fills["conv1_w"] == "GivenTensorFill" and "data" in fills
    assert all(op.engine != "CUDNN" for op in nets.predict_net.op)
    assert nets.predict_net.device_option.device_type == 0
