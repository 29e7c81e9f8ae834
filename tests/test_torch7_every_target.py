"""Every Torch7 fixture of manifest_n.txt and manifest_p.txt (the n_*, p_* and q_* models,
float variants), converted to LiteRT, PyTorch and ExecuTorch (and to a TensorFlow SavedModel for a
subset covering each op family), run in the target's real runtime: each reproduces what
real Lua Torch7 computed (../shared/fixtures/torch7/raw/*.f64) within 1e-4, or the writer
refuses it with a MigrateError naming the module, and then the case is listed in
CANNOT_EXPRESS (whose entries are checked to still fail, so the list stays true).

Each case is read, optimized as the pipeline does for the target, written and run once
per target, in a module-scoped fixture; the tests read the results."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from fixtures_t7 import cases, manifest_names

from migrate.core.errors import MigrateError
from migrate.core.model import WriteOptions
from migrate.core.passes.optimize import optimize
from migrate.core.registry import WRITERS
from migrate.pipeline import ConvertOptions, read_source
from migrate.verify.compare import compare
from migrate.verify.layerwise import run_files

ATOL = RTOL = 1e-4
CASES = [c for c in cases(manifest_names("manifest_n.txt") + manifest_names("manifest_p.txt"))
         if not c.name.endswith("_double")]
NAMES = [c.name for c in CASES]
# SavedModels: one case per op family (each save is a traced tf.function)
TF_CASES = """n_Index_float n_LookupTable_Sum_float n_SparseLinear_float n_OneHot_float
n_SoftShrink_float n_PixelShuffle_float n_TemporalDynamicKMaxPooling_float
n_VolumetricConvolution_stride_float n_VolumetricFullConvolution_float
n_VolumetricMaxPooling_pad_ceil_float n_VolumetricAveragePooling_pad_float
n_VolumetricDilatedMaxPooling_float n_SpatialMaxUnpooling_encdec_float
n_SpatialFractionalMaxPooling_fixed_float n_UpSampling_trilinear_size_float
n_MaskedSelect_float n_Replicate_float p_stn_transformer_float
p_fns_InstanceNormalization_float q_nngraph_nested_tables_float""".split()
TARGETS = {"tflite": NAMES, "pytorch": NAMES, "tf": TF_CASES, "executorch": NAMES}
# the Python module each target's runtime needs
RUNTIME_MODULES = {"tflite": "ai_edge_litert", "pytorch": "torch", "tf": "tensorflow",
                   "executorch": "executorch"}

# (target, case) -> a substring of the MigrateError the writer raises: what the target
# cannot express exactly. Every other case must reproduce real Torch7.
CANNOT_EXPRESS: dict[tuple[str, str], str] = {
    # ExecuTorch's runtime has no 3-D pooling kernel; 3-D pooling runs as 2-D pooling over
    # depth planes, but the indices an unpooling needs have no such form
    ("executorch", "n_VolumetricMaxUnpooling_float"): "has no kernel for aten::max_pool3d",
}

PARAMS = [(target, name) for target, names in TARGETS.items() for name in names]


def _convert_all(target: str, out_dir: str) -> dict[str, object]:
    """case name -> its outputs in the target's runtime, or the exception raised."""
    spec = WRITERS.get(target)
    writer = spec.load()
    results: dict[str, object] = {}
    for case in CASES:
        if case.name not in TARGETS[target]:
            continue
        inputs = case.inputs
        try:
            source = read_source(case.model, ConvertOptions(
                input_shapes=[list(a.shape) for a in inputs]))
            optimize(source.model, fold=spec.fold_weights)
            written = writer.write(source.model, out_dir, case.name,
                                   WriteOptions(optimize=True, source=source))
            results[case.name] = run_files(spec.runtime, written.files, inputs,
                                           layers=False).outputs
        except Exception as exc:  # reported by that case's test
            results[case.name] = exc
    return results


@pytest.fixture(scope="module")
def converted(shared_dir, tmp_path_factory):
    """target -> {case: outputs or exception}, each target converted on first use."""
    found: dict[str, dict[str, object]] = {}

    def get(target: str) -> dict[str, object]:
        if target not in found:
            if importlib.util.find_spec(RUNTIME_MODULES[target]) is None:
                message = f"{RUNTIME_MODULES[target]} is not installed (pip install '.[test]')"
                if os.environ.get("CI"):
                    pytest.fail(message)
                pytest.skip(message)
            found[target] = _convert_all(target, str(tmp_path_factory.mktemp(target)))
        return found[target]

    return get


@pytest.mark.parametrize(("target", "name"), PARAMS, ids=[f"{t}-{n}" for t, n in PARAMS])
def test_reproduces_torch7_or_is_listed(target, name, converted):
    found = converted(target)[name]
    expected = CANNOT_EXPRESS.get((target, name))
    if expected is not None:
        assert isinstance(found, MigrateError), (
            f"{name} is listed in CANNOT_EXPRESS for {target} but converts now: remove it")
        return
    if isinstance(found, Exception):
        raise found
    case = next(c for c in CASES if c.name == name)
    result = compare([np.asarray(a) for a in found], case.outputs, ATOL, RTOL)
    assert result.passed, f"{target} {name}: {result.describe()}"


@pytest.mark.parametrize(("target", "name"), list(CANNOT_EXPRESS),
                         ids=[f"{t}-{n}" for t, n in CANNOT_EXPRESS])
def test_cannot_express_is_a_clear_error_naming_the_module(target, name, converted):
    """A listed case really fails, with one MigrateError that names the Torch7 module
    (its path under `model`) and says what the target lacks."""
    found = converted(target)[name]
    assert isinstance(found, MigrateError), f"{target} {name}: {found!r}"
    message = str(found)
    assert CANNOT_EXPRESS[(target, name)] in message, message
    assert "model" in message and "\n" not in message, message


def test_every_fixture_is_covered(shared_dir):
    """Nothing is skipped: every n_/p_/q_ fixture of both manifests is a case here, and
    every TensorFlow case is one of them."""
    listed = set(manifest_names("manifest_n.txt") + manifest_names("manifest_p.txt"))
    assert {c.name.rsplit("_", 1)[0] for c in CASES} == listed
    assert len(CASES) >= 150 and set(TF_CASES) <= set(NAMES)
