"""ExecuTorch as a target: the 28 real SpyNet models converted with `--to executorch`
(STEM.pte, XNNPACK delegate, from torch.export of the generated PyTorch module) and run in
ExecuTorch's own runtime reproduce what real Lua Torch7 computed, within 1e-4: the
conversion's own verification is given Torch7's outputs as the reference (--expected)."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from fixtures_t7 import REAL_DIR

from migrate.core.errors import MigrateError, UsageError
from migrate.pipeline import ConvertOptions, convert_source

if not os.environ.get("CI"):  # CI installs them (.[test]): there a missing one fails
    pytest.importorskip("torch")
    pytest.importorskip("executorch")

SPYNET = sorted(glob.glob(os.path.join(REAL_DIR, "spynet", "modelL*.t7")))
REF = os.path.join(REAL_DIR, "spynet_ref")
STEMS = [os.path.basename(p)[:-3] for p in SPYNET]
ATOL = 1e-4


def _input() -> np.ndarray:
    return np.fromfile(os.path.join(REF, "input_1x8x24x32.f64"), "<f8").reshape(1, 8, 24, 32)


def _expected(stem: str) -> np.ndarray:
    (path,) = glob.glob(os.path.join(REF, f"{stem}_output.*.f64"))
    shape = [int(d) for d in os.path.basename(path).split(".")[1].split("x")]
    return np.fromfile(path, "<f8").reshape(shape)


@pytest.fixture(scope="module")
def spynet_programs(shared_dir, tmp_path_factory):
    """Every SpyNet model through `migrate MODEL --to executorch --input x --expected y`."""
    if len(SPYNET) != 28:
        pytest.skip("the real SpyNet files are not in ../shared")
    out = str(tmp_path_factory.mktemp("executorch"))
    x = _input()
    results = {}
    for path, stem in zip(SPYNET, STEMS, strict=True):
        options = ConvertOptions(target="executorch", out_dir=out, inputs=[x],
                                 expected=[_expected(stem)], expected_label="real Torch7",
                                 atol=ATOL, rtol=0.0)
        try:
            results[stem] = convert_source(path, options)
        except MigrateError as exc:  # a failed verification raises too
            results[stem] = exc
    return results


@pytest.mark.parametrize("stem", STEMS)
def test_spynet_program_reproduces_torch7_in_executorch(stem, spynet_programs):
    summary = spynet_programs[stem]
    if isinstance(summary, Exception):
        raise summary
    verification = summary.verification
    assert verification.executed and verification.runtime.startswith("ExecuTorch")
    assert "expected" in verification.reference
    assert verification.passed, verification.outputs.describe()
    program = open(summary.outputs["pte"], "rb").read()
    assert b"XnnpackBackend" in program  # the layers run in the XNNPACK delegate


def test_a_damaged_program_is_a_clear_error(spynet_programs, tmp_path):
    from migrate.runtimes.executorch.api import run

    summary = next(s for s in spynet_programs.values() if not isinstance(s, Exception))
    data = open(summary.outputs["pte"], "rb").read()
    damaged = tmp_path / "damaged.pte"
    damaged.write_bytes(data[: len(data) // 3])
    with pytest.raises(UsageError, match="ExecuTorch cannot load this program"):
        run({"pte": str(damaged)}, [_input()])
    with pytest.raises(UsageError, match="shape"):
        run({"pte": summary.outputs["pte"]}, [np.zeros((1, 8, 10, 10), np.float32)])
