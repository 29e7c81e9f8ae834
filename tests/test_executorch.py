"""ExecuTorch as a target: the 28 real SpyNet models converted with `--to executorch`
(STEM.pte, XNNPACK delegate, from torch.export of the generated PyTorch module) and run in
ExecuTorch's own runtime reproduce what real Lua Torch7 computed, within 1e-4: the
conversion's own verification is given Torch7's outputs as the reference (--expected)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fixtures_t7 import SPYNET_MODELS, spynet_expected, spynet_input

from migrate.core.errors import MigrateError, UsageError
from migrate.pipeline import ConvertOptions, convert_source

if not os.environ.get("CI"):  # CI installs them (.[test]): there a missing one fails
    pytest.importorskip("torch")
    pytest.importorskip("executorch")

SPYNET = SPYNET_MODELS
STEMS = [os.path.basename(p)[:-3] for p in SPYNET]
ATOL = 1e-4


@pytest.fixture(scope="module")
def spynet_programs(shared_dir, tmp_path_factory):
    """Every SpyNet model through `migrate MODEL --to executorch --input x --expected y`."""
    if len(SPYNET) != 28:
        pytest.skip("the real SpyNet files are not in ../shared")
    out = str(tmp_path_factory.mktemp("executorch"))
    x = spynet_input()
    results = {}
    for path, stem in zip(SPYNET, STEMS, strict=True):
        options = ConvertOptions(target="executorch", out_dir=out, inputs=[x],
                                 expected=[spynet_expected(stem)], expected_label="real Torch7",
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
        run({"pte": str(damaged)}, [spynet_input()])
    with pytest.raises(UsageError, match="shape"):
        run({"pte": summary.outputs["pte"]}, [np.zeros((1, 8, 10, 10), np.float32)])


# -- 3-D layers as 2-D ops over depth planes (ExecuTorch has no 3-D kernels) --------------

def _planar_cases():
    from torch import nn

    for k, s, p, d, g in [(3, 1, 1, 1, 1), (2, 2, 0, 1, 2), (3, 2, 2, 2, 1), (1, 1, 0, 1, 1)]:
        yield (nn.Conv3d(4, 6, (k, 3, 2), stride=(s, 1, 2), padding=(p, 1, 0),
                         dilation=(d, 1, 1), groups=g), (2, 4, 7, 6, 5))
        yield (nn.ConvTranspose3d(4, 6, (k, 3, 2), stride=(s, 2, 1), padding=(min(p, k - 1), 1, 0),
                                  output_padding=(s - 1, 1, 0), dilation=(d, 1, 1), groups=g),
               (2, 4, 5, 4, 3))
    for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (2, 1, 1, 2, True),
                             (3, 3, 1, 1, False)]:
        yield (nn.MaxPool3d((k, 2, 3), stride=(s, 2, 1), padding=(p, 1, 1), dilation=(d, 1, 2),
                            ceil_mode=ceil), (2, 3, 9, 8, 7))
        for include_pad in (False, True):
            yield (nn.AvgPool3d((k, 2, 3), stride=(s, 2, 1), padding=(p, 1, 1), ceil_mode=ceil,
                                count_include_pad=include_pad), (2, 3, 9, 8, 7))


def test_depth_planes_compute_what_torch_3d_layers_compute():
    """Each swapped module against PyTorch's own 3-D layer: convolutions (grouped, strided,
    dilated, padded), transposed ones with output padding, max and average pooling with
    ceil mode and both divisor rules."""
    import torch
    from torch import nn

    from migrate.writers.executorch.planes import split_depth

    torch.manual_seed(0)
    count = 0
    for layer, shape in _planar_cases():
        x = torch.randn(*shape)
        with torch.no_grad():
            want = layer(x)
            holder = nn.Sequential(layer)
            assert split_depth(holder) == 1 and not isinstance(holder[0], type(layer))
            got = holder(x)
        assert got.shape == want.shape, layer
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, err_msg=str(layer))
        count += 1
    assert count == 20  # 4 convolutions, 4 transposed, 4 max pools, 8 average pools


def _t7_case(name: str):
    from fixtures_t7 import cases

    (case,) = [c for c in cases([name]) if c.name.endswith("_float")]
    return case


def test_volumetric_convolution_reproduces_torch7_and_says_how(tmp_path, shared_dir):
    """End to end as a user runs it: the .pte of a 3-D convolution reproduces real Torch7
    in ExecuTorch's runtime, and the summary says the layer runs over depth planes."""
    case = _t7_case("n_VolumetricConvolution_stride")
    summary = convert_source(case.model, ConvertOptions(
        target="executorch", out_dir=str(tmp_path), inputs=case.inputs,
        expected=case.outputs, expected_label="real Torch7", atol=ATOL, rtol=0.0))
    assert summary.verification.passed, summary.verification.outputs.describe()
    assert any("depth planes" in fix for fix in summary.fixups), summary.fixups


def test_unpooling_indices_stay_refused_naming_the_layer(tmp_path, shared_dir):
    """Pooling that returns indices for an unpooling has no 2-D form: the writer refuses
    it before anything is written, naming the Torch7 module."""
    case = _t7_case("n_VolumetricMaxUnpooling")
    with pytest.raises(MigrateError, match=r"model\.modules\[1\] \(nn\.VolumetricMaxPooling\)"):
        convert_source(case.model, ConvertOptions(
            target="executorch", out_dir=str(tmp_path),
            input_shapes=[list(case.inputs[0].shape)], verify=False))
    assert os.listdir(tmp_path) == []
