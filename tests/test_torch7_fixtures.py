"""Every Torch7 fixture model, converted and run in real runtimes, reproduces what
real Lua Torch7 computed (../shared/fixtures/torch7/raw/*.f64)."""

from __future__ import annotations

import os

import pytest
from fixtures_t7 import Case, cases, manifest_names

from migrate.core.passes.optimize import optimize
from migrate.readers.torch7.reader import read_torch7
from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare
from migrate.writers.caffe2.writer import build_nets, write_caffe2
from migrate.writers.onnx.writer import write_onnx

ATOL = RTOL = 1e-4

# The original fixtures (manifest.txt); the n_*, p_* and q_* cases have test files of their
# own (test_torch7_nn_*.py, test_torch7_projects.py).
CASES = cases(manifest_names("manifest.txt") + ["misc_lenet_long4"])
IDS = [c.name for c in CASES]


def _read(case: Case):
    return read_torch7(case.model, [a.shape for a in case.inputs])


@pytest.mark.parametrize("variant", ["naive", "optimized"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_onnx_matches_torch7(case: Case, variant: str, tmp_path):
    model = _read(case).model
    if variant == "optimized":
        optimize(model)
    written = write_onnx(model, str(tmp_path), case.name)
    got = run_onnx(written["onnx"], case.inputs)
    result = compare(got, case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()


@pytest.fixture(scope="module")
def caffe2_results(caffe2_python, tmp_path_factory):
    """Convert every case, one op per layer (naive) and optimized (folded BatchNorm and
    scalings, in-place activations), and run all of them in one Caffe2 process."""
    out = tmp_path_factory.mktemp("caffe2")
    jobs, failures = {}, {}
    for case in CASES:
        for variant in ("naive", "optimized"):
            key = (case.name, variant)
            try:
                model = _read(case).model
                if variant == "optimized":
                    optimize(model)
                nets = build_nets(model, case.name, optimize=variant == "optimized")
                paths = write_caffe2(nets, str(out), f"{case.name}_{variant}")
            except Exception as exc:  # reported by the test of that case
                failures[key] = exc
                continue
            jobs[key] = Caffe2Job(paths["init_net"], paths["predict_net"], case.inputs)
    run_caffe2_jobs(caffe2_python, list(jobs.values()))
    return jobs, failures


@pytest.mark.caffe2
@pytest.mark.parametrize("variant", ["naive", "optimized"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_caffe2_matches_torch7(case: Case, variant: str, caffe2_results):
    jobs, failures = caffe2_results
    if (case.name, variant) in failures:
        raise failures[(case.name, variant)]
    job = jobs[(case.name, variant)]
    assert job.error is None, f"Caffe2 failed: {job.error}"
    result = compare(job.outputs, case.outputs, ATOL, RTOL)
    assert result.passed, result.describe()


def test_every_fixture_is_covered(shared_dir):
    models = [f for f in os.listdir(os.path.join(shared_dir, "fixtures", "torch7"))
              if f.endswith(".t7") and not f.endswith(("_input.t7", "_output.t7"))]
    data_only = {"misc_table.t7", "misc_noncontig_tensor.t7", "misc_noncontig_tensor_contig.t7"}
    listed = sum((manifest_names(m) for m in ("manifest.txt", "manifest_n.txt", "manifest_p.txt")),
                 ["misc_lenet_long4"])
    assert sorted(set(models) - data_only) == sorted(os.path.basename(c.model)
                                                     for c in cases(listed))
