"""PyTorch as a source: live modules, `.pt2` ExportedPrograms and checkpoints with their
model's code, converted and run in each target's real runtime.

The ground truth is PyTorch itself: every converted model must reproduce the outputs
of the nn.Module defined here (seeded weights, no downloads) within 1e-4, and the
pipeline's verification compares it layer by layer with PyTorch running the program.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

if os.environ.get("CI"):
    import torch  # CI installs the [torch] extra: a missing torch is a failure there
else:
    torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import migrate  # noqa: E402
from migrate.cli import main  # noqa: E402
from migrate.core.formats.onnx import SOURCE_CLASS, SOURCE_PATH  # noqa: E402
from migrate.core.model import RunResult  # noqa: E402
from migrate.core.registry import WRITERS  # noqa: E402
from migrate.runtimes.ort.api import run_onnx  # noqa: E402

TOLERANCE = 1e-4


# -- the models (torchvision-style, written here) -------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, inp: int, out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, inp = [], 64
        for i, width in enumerate((64, 128, 256, 512)):
            layers.append(nn.Sequential(BasicBlock(inp, width, 1 if i == 0 else 2),
                                        BasicBlock(width, width)))
            inp = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_res = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 at width 0.5: depthwise convolutions, ReLU6, inverted residuals."""

    def __init__(self, num_classes: int = 10, width: float = 0.5) -> None:
        super().__init__()
        inp = int(32 * width)
        features: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, inp, 3, 2, 1, bias=False), nn.BatchNorm2d(inp), nn.ReLU6(inplace=True))]
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
            for i in range(n):
                features.append(InvertedResidual(inp, int(c * width), s if i == 0 else 1, t))
                inp = int(c * width)
        features.append(nn.Sequential(nn.Conv2d(inp, 1280, 1, bias=False),
                                      nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class VGG11BN(nn.Module):
    """VGG-11 with BatchNorm (eps 1e-3), ceil-mode max pooling on odd maps, and an
    adaptive average pooling to 3x3 from 2x2 (overlapping windows)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inp = 3
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(inp, v, 3, padding=1), nn.BatchNorm2d(v, eps=1e-3),
                           nn.ReLU(inplace=True)]
                inp = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(nn.Linear(512 * 9, 256), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _double_conv(inp: int, out: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(out),
        nn.ReLU(inplace=True), nn.Conv2d(out, out, 3, padding=1, groups=4), nn.BatchNorm2d(out),
        nn.ReLU(inplace=True))


class UNet(nn.Module):
    """A small U-Net: ConvTranspose2d and bilinear interpolate (align_corners) up paths,
    skip concatenations, a dilated and grouped convolutions, average pooling without
    the padding counted, a PixelShuffle head."""

    def __init__(self) -> None:
        super().__init__()
        self.inc = _double_conv(3, 16)
        self.pool = nn.MaxPool2d(2)
        self.down1 = _double_conv(16, 32)
        self.avg = nn.AvgPool2d(3, 2, 1, count_include_pad=False)
        self.down2 = _double_conv(32, 64, dilation=2)
        self.up1 = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.conv1 = _double_conv(64, 32)
        self.conv2 = _double_conv(48, 16)
        self.head = nn.Conv2d(16, 12, 1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(self.pool(x1))
        x3 = self.down2(self.avg(x2))
        u1 = self.conv1(torch.cat([self.up1(x3), x2], 1))
        u2 = F.interpolate(u1, scale_factor=2, mode="bilinear", align_corners=True)
        return self.shuffle(self.head(self.conv2(torch.cat([u2, x1], 1))))


class MLP(nn.Module):
    """Linear, LayerNorm, GELU (exact and tanh), a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.norm1 = nn.LayerNorm(128)
        self.act1 = nn.GELU()
        self.fc2 = nn.Linear(128, 128)
        self.norm2 = nn.LayerNorm(128, eps=1e-6)
        self.act2 = nn.GELU(approximate="tanh")
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        h = self.act1(self.norm1(self.fc1(x)))
        return self.fc3(h + self.act2(self.norm2(self.fc2(h))))


class Semantics(nn.Module):
    """PyTorch details a conversion must keep exactly (ONNX only: some have no Caffe2
    counterpart, e.g. half-pixel bilinear)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)
        self.bn = nn.BatchNorm2d(8, eps=0.1)
        self.avg_incl = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=True)
        self.avg_excl = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.avg_edge = nn.AvgPool2d(2, 2, 1, ceil_mode=True)  # a window starting in the pad
        self.max_ceil = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        y = self.bn(self.conv(x))
        parts = [self.avg_incl(y), self.avg_excl(y), self.max_ceil(y),
                 F.adaptive_avg_pool2d(y, (4, 3)),
                 self.avg_edge(y)[:, :, :5, :5]]
        up = [F.interpolate(y, size=(17, 13), mode=mode, **extra)
              for mode, extra in (("nearest", {}), ("bilinear", {"align_corners": False}),
                                  ("bilinear", {"align_corners": True}),
                                  ("bicubic", {"align_corners": False}), ("nearest-exact", {}))]
        up.append(F.interpolate(y, scale_factor=1.5, mode="bilinear"))
        out = [torch.flatten(p, 1) for p in parts + up]
        out.append(torch.flatten(self.shuffle(y), 1))
        return torch.cat(out, 1)


MODELS = {
    "resnet18": (ResNet18, (1, 3, 64, 64)),
    "mobilenetv2": (MobileNetV2, (1, 3, 64, 64)),
    "vgg11_bn": (VGG11BN, (1, 3, 50, 50)),
    "unet": (UNet, (1, 3, 32, 32)),
    "mlp": (MLP, (4, 64)),
}


def seeded(cls, seed: int = 0) -> nn.Module:
    """The model with seeded weights and BatchNorm statistics a trained model would have."""
    torch.manual_seed(seed)
    model = cls()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


def example(shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """name -> (module, input, PyTorch's own output, the module exported to a .pt2).

    The targets are converted from the `.pt2` files (read once, kept by the reader for
    the next conversion of the same file); the live-module route is tested below."""
    folder = tmp_path_factory.mktemp("programs")
    found = {}
    for name, (cls, shape) in MODELS.items():
        model = seeded(cls)
        x = example(shape)
        with torch.no_grad():
            expected = model(x).numpy()
        path = str(folder / f"{name}.pt2")
        torch.export.save(torch.export.export(model, (x,)), path)
        found[name] = (model, x, expected, path)
    return found


def assert_layerwise(result, runtime: str) -> None:
    """Every layer observable in both runs within tolerance, most layers compared."""
    assert result is not None and result.executed, result
    assert runtime in result.runtime and "PyTorch" in result.reference, (result.runtime,
                                                                         result.reference)
    compared = [row for row in result.layers if row.max_abs is not None]
    assert len(compared) >= len(result.layers) // 2, "most layers must be compared"
    failing = [f"{r.label}: {r.max_abs}" for r in compared if not r.passed]
    assert not failing, failing
    assert result.passed


def assert_matches_pytorch(got, expected) -> None:
    got = np.asarray(got)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)


def compare_with_pytorch(source_path: str, files: dict[str, str], x, run, runtime: str):
    """Layer by layer: the written files' run against PyTorch running the `.pt2`, keyed
    by the source layer paths (what the pipeline's verification does)."""
    from migrate.pipeline import ConvertOptions, read_source
    from migrate.runtimes.torch.exported import run as run_program
    from migrate.verify.layerwise import compare_runs

    graph = read_source(source_path, ConvertOptions()).model
    reference = run_program(source_path, [x.numpy()], layers=True)
    return compare_runs(graph, reference, run, runtime=runtime, reference_label="PyTorch",
                        atol=TOLERANCE, rtol=TOLERANCE)


# -- every model to every target ------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_pt2_to_onnx(name, cases, tmp_path):
    _, x, expected, path = cases[name]
    summary = migrate.convert(path, to="onnx", out_dir=str(tmp_path), inputs=[x.numpy()])
    assert_layerwise(summary.verification, "onnxruntime")
    assert_matches_pytorch(run_onnx(summary.outputs["onnx"], [x.numpy()])[0], expected)


def test_pt2_to_caffe2(cases, tmp_path, caffe2_python):
    """All five written, then run in one Caffe2 process, op by op."""
    from migrate.runtimes.caffe2.api import layer_ops
    from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs

    written, jobs = {}, []
    for name, (_, x, _, path) in cases.items():
        summary = migrate.convert(path, to="caffe2", out_dir=str(tmp_path), verify=False)
        ops = layer_ops(summary.outputs["predict_net"])
        written[name] = (summary.outputs, ops)
        jobs.append(Caffe2Job(summary.outputs["init_net"], summary.outputs["predict_net"],
                              [x.numpy()], trace=sorted(i for i, _ in ops.values())))
    run_caffe2_jobs(caffe2_python, jobs)
    for (name, (_, x, expected, path)), job in zip(cases.items(), jobs, strict=True):
        assert job.error is None, f"{name}: {job.error}"
        files, ops = written[name]
        run = RunResult(job.outputs, {p: job.traced[i] for p, (i, _) in ops.items()
                                      if i in job.traced})
        assert_layerwise(compare_with_pytorch(path, files, x, run, "Caffe2"), "Caffe2")
        assert_matches_pytorch(job.outputs[0], expected)


def test_pt2_to_caffe(cases, tmp_path):
    """The convolutional models through Caffe, run in one pycaffe process layer by layer.
    The MLP needs LayerNorm, which BVLC Caffe lacks: it converts once the Caffe writer
    builds it, else it is refused with that reason."""
    from migrate.core.errors import ConversionError
    from migrate.runtimes.caffe.api import run_many
    from migrate.runtimes.caffe.side import find_caffe_python

    python = find_caffe_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("Caffe side runtime not provisioned")
        pytest.skip("Caffe side runtime not provisioned")
    written = {}
    for name, (_, _, _, path) in cases.items():
        try:
            summary = migrate.convert(path, to="caffe", out_dir=str(tmp_path), verify=False)
        except ConversionError as exc:
            assert name == "mlp" and "LayerNormalization" in str(exc), str(exc)
            continue
        written[name] = summary.outputs
    assert set(written) >= {"resnet18", "mobilenetv2", "vgg11_bn", "unet"}
    runs = run_many([(files, [cases[name][1].numpy()]) for name, files in written.items()],
                    python, layers=True)
    for (name, files), run in zip(written.items(), runs, strict=True):
        assert not isinstance(run, str), f"{name}: {run}"
        _, x, expected, path = cases[name]
        assert_layerwise(compare_with_pytorch(path, files, x, run, "Caffe"), "Caffe")
        assert_matches_pytorch(run.outputs[0], expected)


def test_live_module_api(cases, tmp_path):
    """migrate.convert(module, example_inputs=...): exported here, verified against
    PyTorch running what was exported."""
    model, x, expected, _ = cases["unet"]
    summary = migrate.convert(model, example_inputs=(x,), to="onnx", out_dir=str(tmp_path),
                              inputs=[x.numpy()])
    assert_layerwise(summary.verification, "onnxruntime")
    assert summary.outputs["onnx"].endswith("model.onnx")
    assert_matches_pytorch(run_onnx(summary.outputs["onnx"], [x.numpy()])[0], expected)
    assert not model.training


def test_semantics_kept_exactly(tmp_path):
    """ceil_mode, count_include_pad, dilated/grouped convs, BatchNorm eps, adaptive pooling
    with unequal windows, every interpolate mode, PixelShuffle, flatten."""
    model = seeded(Semantics)
    x = example((2, 4, 11, 9))
    summary = migrate.convert(model, example_inputs=(x,), to="onnx", out_dir=str(tmp_path),
                              inputs=[x.numpy()])
    assert_layerwise(summary.verification, "onnxruntime")
    with torch.no_grad():
        expected = model(x).numpy()
    assert_matches_pytorch(run_onnx(summary.outputs["onnx"], [x.numpy()])[0], expected)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x):
        w = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.expand(F.silu(self.reduce(w))))


class Blocks(nn.Module):
    """Squeeze-excite, GroupNorm, InstanceNorm (a batch-statistics BatchNorm in PyTorch),
    channel shuffle, chunk, reflection padding, PReLU, grouped transposed convolution
    with output_padding, max over a dim, stack, softmax and log-softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.Hardswish()
        self.se = SqueezeExcite(8)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.prelu = nn.PReLU(8)
        self.deconv = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1,
                                         groups=2)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        y = self.se(self.act(self.conv(x)))
        y = self.gn(y) + self.inorm(y)
        n, c, h, w = y.shape
        shuffled = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        a, b = torch.chunk(y, 2, dim=1)
        z = torch.cat([a * 2 - 1, b / 3], 1) + shuffled
        z = self.deconv(self.prelu(F.pad(z, (1, 1, 2, 0), mode="reflect")))
        m = z.max(dim=1, keepdim=True)[0] + z.mean(1, keepdim=True)
        return torch.stack([self.up(m).softmax(-1), F.log_softmax(self.up(m), 1)], 0)


class Encoder(nn.Module):
    """Embedding, a learned position table, two transformer encoder layers (multi-head
    attention), causal and boolean-masked scaled_dot_product_attention."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.position = nn.Parameter(torch.randn(1, 6, 32))
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        mask = torch.rand(6, 6, generator=torch.Generator().manual_seed(2)) > 0.3
        mask[:, 0] = True
        mask[3] = False  # a query that may attend to nothing: PyTorch gives it zeros
        self.register_buffer("mask", mask)
        self.head = nn.Linear(32, 5)

    def forward(self, ids):
        h = self.encoder(self.embed(ids) + self.position)
        q = h.view(2, 6, 4, 8).transpose(1, 2)
        mixed = (F.scaled_dot_product_attention(q, q, q, is_causal=True)
                 + F.scaled_dot_product_attention(q, q, q, attn_mask=self.mask))
        return self.head(h + mixed.transpose(1, 2).reshape(2, 6, 32)).mean(1)


@pytest.mark.parametrize("cls,x", [
    (Blocks, example((2, 8, 10, 12))),
    (Encoder, torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(3))),
], ids=["blocks", "encoder"])
def test_more_operators(cls, x):
    """The common graph (run in onnxruntime) against PyTorch."""
    from migrate.runtimes.ort.api import run_model

    model = seeded(cls)
    graph = migrate.load(model, example_inputs=(x,))
    with torch.no_grad():
        expected = model(x).numpy()
    assert_matches_pytorch(run_model(graph, [x.numpy()]).outputs[0], expected)


# -- layer keys -----------------------------------------------------------------------------

def test_layer_keys_are_module_paths(cases):
    model, x, _, _ = cases["resnet18"]
    graph = migrate.load(model, example_inputs=(x,))
    origin = {n.metadata_props[SOURCE_PATH]: n.metadata_props[SOURCE_CLASS] for n in graph.graph}
    assert origin["layer1.0.conv1"] == "torch.nn.Conv2d"
    assert origin["layer2.0.downsample.1"] == "torch.nn.BatchNorm2d"
    assert origin["layer1.0.relu@1"] == "torch.nn.ReLU"  # the second call of a shared ReLU
    assert origin["layer1.0:add"] == "add()"  # the residual add in BasicBlock.forward
    assert origin["forward:flatten"] == "flatten()"
    assert origin["fc"] == "torch.nn.Linear"


# -- files: .pt2 through the command line ----------------------------------------------------

@pytest.fixture(scope="module")
def program_file(cases):
    _, x, expected, path = cases["unet"]
    return path, x, expected


def test_pt2_through_the_command_line(program_file, tmp_path, capsys, caffe2_python):
    path, x, expected = program_file
    before = sha256(path)
    np.save(tmp_path / "x.npy", x.numpy())
    for target in ("onnx", "caffe2"):
        rc = main([path, "--to", target, "-o", str(tmp_path / target), "--input",
                   str(tmp_path / "x.npy"), "--caffe2-python", caffe2_python])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "vs the source files in PyTorch (real runtime)" in out and "OK" in out
    assert_matches_pytorch(run_onnx(str(tmp_path / "onnx" / "unet.onnx"), [x.numpy()])[0],
                           expected)
    assert main(["inspect", path]) == 0
    assert "Conv" in capsys.readouterr().out
    assert sha256(path) == before, "the source file was written to"


def test_pt2_with_dynamic_batch(tmp_path, capsys):
    model = seeded(MLP)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (example((4, 64)),), dynamic_shapes=({0: batch},))
    path = str(tmp_path / "mlp.pt2")
    torch.export.save(program, path)
    rc = main([path, "--to", "onnx", "-o", str(tmp_path), "--input-shape", "7x64"])
    assert rc == 0, capsys.readouterr().err
    x = example((7, 64))
    with torch.no_grad():
        assert_matches_pytorch(run_onnx(str(tmp_path / "mlp.onnx"), [x.numpy()])[0],
                               model(x).numpy())
    rc = main([path, "--to", "onnx", "-o", str(tmp_path), "--input-shape", "7x65"])
    assert rc == 2 and "exported with shape ?x64" in capsys.readouterr().err


# -- checkpoints with the model's code ------------------------------------------------------

MODEL_CODE = textwrap.dedent('''
    """CIFAR models as old PyTorch repositories wrote them (checkpoints saved as ckpt.t7)."""
    import torch.nn as nn
    import torch.nn.functional as F


    class BasicBlock(nn.Module):
        def __init__(self, inp, out, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out)
            self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out)
            self.shortcut = nn.Sequential()
            if stride != 1 or inp != out:
                self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False),
                                              nn.BatchNorm2d(out))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))


    class ResNet(nn.Module):
        def __init__(self, blocks, num_classes=10, width=64):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            layers, inp = [], width
            widths = (width, 2 * width, 4 * width, 8 * width)
            for i, (width, n) in enumerate(zip(widths, blocks)):
                strides = [1 if i == 0 else 2] + [1] * (n - 1)
                layers.append(nn.Sequential(*[BasicBlock(inp if k == 0 else width, width, s)
                                              for k, s in enumerate(strides)]))
                inp = width
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.linear = nn.Linear(inp, num_classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
            out = F.avg_pool2d(out, 4)
            return self.linear(out.view(out.size(0), -1))


    def ResNet18():
        return ResNet([2, 2, 2, 2], width=16)  # narrow: the test converts it to every target


    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 10)

        def forward(self, x):
            out = F.max_pool2d(F.relu(self.conv1(x)), 2)
            out = F.max_pool2d(F.relu(self.conv2(out)), 2)
            return self.fc2(F.relu(self.fc1(out.view(out.size(0), -1))))
''')


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """models.py, ckpt.t7 = {'net': ResNet18 state_dict, 'acc': 93.1, 'epoch': 200}, and
    LeNet checkpoints saved by DataParallel, with wrong keys, and as a whole pickled model."""
    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "models.py").write_text(MODEL_CODE)
    sys.path.insert(0, str(folder))
    try:
        import models  # the user's code, as the checkpoint's training script had it
    finally:
        sys.path.remove(str(folder))
    resnet = seeded(models.ResNet18)
    torch.save({"net": resnet.state_dict(), "acc": 93.1, "epoch": 200}, folder / "ckpt.t7")
    lenet = seeded(models.LeNet)
    torch.save({"net": nn.DataParallel(lenet).state_dict(), "acc": 61.0},
               folder / "lenet_dp.t7")
    # the format torch.save wrote before PyTorch 1.6 (not a zip)
    torch.save(lenet.state_dict(), folder / "lenet_legacy.pth",
               _use_new_zipfile_serialization=False)
    state = lenet.state_dict()
    state["fc3.weight"] = state.pop("fc2.weight")
    torch.save(state, folder / "lenet_renamed.pth")
    torch.save(lenet, folder / "lenet_whole.pth")
    sys.modules.pop("models", None)
    return folder, resnet, lenet


def _targets() -> list[str]:
    return [w.name for w in WRITERS.all()]


def test_checkpoint_converts_to_every_target(checkpoint_dir, tmp_path, capsys, caffe2_python):
    folder, resnet, _ = checkpoint_dir
    ckpt, code = str(folder / "ckpt.t7"), str(folder / "models.py")
    hashes = {p: sha256(p) for p in (ckpt, code)}
    x = example((1, 3, 32, 32))
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        expected = resnet(x).numpy()
    for target in _targets():
        rc = main([ckpt, "--model-class", f"{code}:ResNet18", "--input-shape", "1x3x32x32",
                   "--to", target, "-o", str(tmp_path / target), "--input",
                   str(tmp_path / "x.npy"), "--caffe2-python", caffe2_python])
        captured = capsys.readouterr()
        assert rc == 0, f"{target}: {captured.err}"
        assert "weights from the checkpoint's 'net' entry" in captured.out
        if target in ("onnx", "caffe2"):
            assert "vs the source files in PyTorch (real runtime)" in captured.out
            assert " OK" in captured.out
    assert_matches_pytorch(run_onnx(str(tmp_path / "onnx" / "ckpt.onnx"), [x.numpy()])[0],
                           expected)
    assert {p: sha256(p) for p in hashes} == hashes, "a source file was written to"


def test_checkpoint_of_dataparallel_and_pre_1_6_format(checkpoint_dir, tmp_path, capsys):
    folder, _, lenet = checkpoint_dir
    x = example((2, 3, 32, 32))
    with torch.no_grad():
        expected = lenet(x).numpy()
    for name, note in (("lenet_dp.t7", "'module.' prefix of DataParallel removed"),
                       ("lenet_legacy.pth", "weights from the checkpoint's state_dict")):
        rc = main([str(folder / name), "--model-class", f"{folder / 'models.py'}:LeNet",
                   "--input-shape", "2x3x32x32", "--to", "onnx", "-o", str(tmp_path)])
        out = capsys.readouterr().out
        assert rc == 0 and note in out, out
        written = str(tmp_path / (os.path.splitext(name)[0] + ".onnx"))
        assert_matches_pytorch(run_onnx(written, [x.numpy()])[0], expected)


def _error(capsys, *argv: str) -> str:
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("migrate: error: "), err
    return lines[0]


def test_checkpoint_errors_are_clear(checkpoint_dir, tmp_path, capsys):
    folder, _, _ = checkpoint_dir
    code = f"{folder / 'models.py'}:LeNet"
    out = ["-o", str(tmp_path)]
    line = _error(capsys, str(folder / "lenet_renamed.pth"), "--model-class", code,
                  "--input-shape", "1x3x32x32", *out)
    assert "missing (in the model, not the checkpoint): fc2.weight" in line
    assert "unexpected (in the checkpoint, not the model): fc3.weight" in line
    line = _error(capsys, str(folder / "lenet_whole.pth"), "--model-class", code,
                  "--input-shape", "1x3x32x32", *out)
    assert "pickled Python objects" in line and "models.LeNet" in line
    line = _error(capsys, str(folder / "ckpt.t7"), *out)
    assert "--model-class" in line and "weights only" in line
    line = _error(capsys, str(folder / "ckpt.t7"), "--model-class", code, *out)
    assert "--input-shape" in line
    line = _error(capsys, str(folder / "ckpt.t7"), "--model-class",
                  f"{folder / 'models.py'}:ResNet", "--input-shape", "1x3x32x32", *out)
    assert "needs arguments" in line
    assert not [p for p in os.listdir(tmp_path) if not p.startswith(".")]


class _Payload:
    """A pickle that would run a command when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"net": {"w": torch.ones(2)}, "x": _Payload(str(marker))}, path)
    line = _error(capsys, str(path), "--model-class", "models.py:Net", "-o", str(tmp_path))
    assert "never unpickled" in line and "system" in line
    legacy = tmp_path / "evil_legacy.pth"
    torch.save(_Payload(str(marker)), legacy, _use_new_zipfile_serialization=False)
    _error(capsys, str(legacy), "-o", str(tmp_path))
    assert not marker.exists()


# -- hostile and damaged files ------------------------------------------------------------------

def _rewrite_zip(source: str, target: str, change) -> None:
    """A copy of a zip archive with one entry's bytes changed by `change(name, data)`."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info.filename))
            if data is not None:
                dst.writestr(info, data)


def test_damaged_pt2_and_checkpoints_give_one_clear_error(program_file, checkpoint_dir,
                                                         tmp_path, capsys):
    pt2 = open(program_file[0], "rb").read()
    ckpt = open(checkpoint_dir[0] / "lenet_dp.t7", "rb").read()
    code = f"{checkpoint_dir[0] / 'models.py'}:LeNet"
    for name, data in (("pt2", pt2), ("ckpt", ckpt)):
        for cut in (len(data) // 3, len(data) - 30):
            path = tmp_path / f"{name}_cut{cut}.pt2"
            path.write_bytes(data[:cut])
            _error(capsys, str(path), "--model-class", code, "--input-shape", "1x3x32x32",
                   "-o", str(tmp_path / "out"))
        garbled = bytearray(data)
        garbled[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
        path = tmp_path / f"{name}_garbled.pt2"
        path.write_bytes(bytes(garbled))
        # damage inside the weights may go unnoticed (zip entries carry no checksum
        # that torch checks); anything else is one clear error
        rc = main([str(path), "--model-class", code, "--input-shape", "1x3x32x32",
                   "-o", str(tmp_path / "garbled")])
        err = capsys.readouterr().err
        assert rc in (0, 1, 2) and "Traceback" not in err
    assert not os.path.exists(tmp_path / "out"), "a failed conversion left files"


def test_pt2_that_would_unpickle_or_load_code_is_refused(program_file, tmp_path, capsys):
    source = program_file[0]

    def pickled_weights(name, data):
        if name.endswith("model_weights_config.json"):
            return data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
        return data

    path = str(tmp_path / "pickled.pt2")
    _rewrite_zip(source, path, pickled_weights)
    assert "never unpickled" in _error(capsys, path, "-o", str(tmp_path))

    def aoti(name, data):
        return data

    path = str(tmp_path / "aoti.pt2")
    _rewrite_zip(source, path, aoti)
    with zipfile.ZipFile(path, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    assert "AOTInductor" in _error(capsys, path, "-o", str(tmp_path))

    def evil_sample_inputs(name, data):
        if "sample_inputs" in name:
            return pickle.dumps(_Payload(str(tmp_path / "pwned")))
        return data

    path = str(tmp_path / "evil_inputs.pt2")
    _rewrite_zip(source, path, evil_sample_inputs)
    _error(capsys, path, "-o", str(tmp_path))
    assert not (tmp_path / "pwned").exists()


def test_without_torch_the_error_says_what_to_install(program_file, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from migrate.cli import main\n"
            f"sys.exit(main([{program_file[0]!r}, '-o', {str(tmp_path)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert "pip install 'torch7-migrate[torch]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_fuzzed_pytorch_files_fail_cleanly():
    """bench/fuzz.py's PyTorch seeds (a .pt2 and a ckpt.t7 with its model code) damaged
    at random: only our own errors, no hang, bounded memory (about 20 s)."""
    from bench.fuzz import run_fuzz

    stats = run_fuzz(20, seed=20261125, shared="", formats=["pytorch"])
    assert stats.cases >= 40, f"only {stats.cases} cases ran"
    assert not stats.failures, "\n".join(stats.failures[:20])
    assert stats.outcomes.get("error:CorruptFileError", 0) > 0
    assert stats.outcomes.get("converted", 0) > 0
