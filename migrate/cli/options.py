"""Options that every command shares, so each format is driven the same way."""

from __future__ import annotations

import argparse

from migrate.core.errors import UsageError
from migrate.core.model import DEFAULT_MAX_BYTES


def parse_shapes(text: str) -> list[list[int]]:
    """'1x3x224x224' or, for several inputs, '1x3x6x6,1x2x6x6'."""
    shapes = []
    for part in text.split(","):
        try:
            dims = [int(d) for d in part.strip().lower().split("x")]
        except ValueError:
            raise UsageError(f"bad --input-shape '{text}' (expected e.g. 1x3x224x224)") from None
        if not dims or any(d <= 0 for d in dims):
            raise UsageError(f"bad --input-shape '{text}' (dimensions must be positive)")
        shapes.append(dims)
    return shapes


def floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"bad {flag} '{text}' (expected numbers like 123.7,116.3,103.5)") from None


def size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().rstrip("B")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size '{text}' (e.g. 2G, 500M)") from None


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our one-line error with exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def new_parser(prog: str, description: str) -> Parser:
    return Parser(prog=prog, description=description,
                  formatter_class=argparse.RawTextHelpFormatter)


def add_output_options(p: argparse.ArgumentParser, to_help: str, report_help: str) -> None:
    """Where and how a conversion writes: the same for every command that converts."""
    p.add_argument("-o", "--output-dir", default=".", metavar="DIR",
                   help="where to write the converted files (default: current folder)")
    p.add_argument("--to", default="caffe2", metavar="TARGET", help=to_help)
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written model and comparing its outputs")
    p.add_argument("--no-optimize", action="store_true",
                   help="export one op per layer: no BatchNorm/scale folding, no removal of\n"
                        "identity ops, no in-place activations")
    p.add_argument("--report", action="store_true", help=report_help)


def add_source_options(p: argparse.ArgumentParser) -> None:
    """How to read a source model, whatever its format."""
    p.add_argument("--input-shape", metavar="SHAPE",
                   help="input shape(s), e.g. 1x3x224x224 or 1x3x6x6,1x2x6x6 for two inputs;\n"
                        "default: what the model declares, else inferred from its first layer")
    p.add_argument("--max-bytes", type=size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                   help="refuse files declaring more tensor data than this\n"
                        "(e.g. 2G, 500M; default 64G)")
    p.add_argument("--allow-random-init", action="store_true",
                   help="Caffe2: accept init nets with random fills (XavierFill, ...) that\n"
                        "hold no trained weights")
    p.add_argument("--model-class", metavar="FILE.py:NAME",
                   help="PyTorch checkpoints (torch.save state_dicts): the model's code, a\n"
                        "class or function building it, e.g. models.py:ResNet18 (with\n"
                        "--input-shape); 'module.' prefixes of DataParallel are removed")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file that registers converters for custom layers\n"
                        "(repeatable; see README, 'Custom layers')")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")


def add_verify_options(p: argparse.ArgumentParser) -> None:
    """How to check a conversion, whatever the formats."""
    p.add_argument("--input", action="append", default=[], metavar="FILE",
                   help="verification input: .npy, .npz, an image, a Torch7 tensor (.t7)\n"
                        "or an ONNX TensorProto (.pb); repeat for several inputs;\n"
                        "default: random data")
    p.add_argument("--expected", action="append", default=[], metavar="FILE",
                   help="the outputs the original framework computed on --input (same file\n"
                        "kinds; repeat or give a table for several outputs): the reference\n"
                        "instead of the source model run here")
    p.add_argument("--input-bgr-to-rgb", action="store_true",
                   help="the model expects BGR input: fold the channel swap into the first\n"
                        "convolution so the converted model takes RGB")
    p.add_argument("--input-mean", metavar="R,G,B",
                   help="the model expects this mean subtracted (raw input units, RGB order)")
    p.add_argument("--input-scale", type=float, default=1.0, metavar="S",
                   help="the model expects (input - mean) * S")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (default 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    p.add_argument("--caffe2-python", metavar="PYTHON",
                   help="interpreter of the Caffe2 side runtime (default: caffe2-python on PATH\n"
                        "or the one `migrate runtimes install caffe2` made)")


def add_target_options(p: argparse.ArgumentParser) -> None:
    """Switches of particular targets (passed to the writer as writer_options)."""
    p.add_argument("--pytorch-export", action="store_true",
                   help="--to pytorch: also write STEM.pt2, torch.export of the generated\n"
                        "module (an ExportedProgram; batch size dynamic where allowed)")
    p.add_argument("--keep-layout", action="store_true",
                   help="--to tf / tflite: keep the source's layout (NCHW) at the inputs and\n"
                        "outputs (default: 4-D inputs and outputs NHWC); channels last inside")


def writer_options(args: argparse.Namespace) -> dict:
    options = {}
    if getattr(args, "pytorch_export", False):
        options["pytorch_export"] = True
    if getattr(args, "keep_layout", False):
        options["keep_layout"] = True
    return options


def convert_options(args: argparse.Namespace, **extra):
    """ConvertOptions from the parsed shared options."""
    from migrate.core.passes.preprocessing import Preprocessing
    from migrate.pipeline import ConvertOptions
    from migrate.verify.inputs import load_expected, load_inputs

    inputs = load_inputs(args.input) if getattr(args, "input", None) else None
    expected = load_expected(args.expected) if getattr(args, "expected", None) else None
    pre = Preprocessing(
        bgr_to_rgb=getattr(args, "input_bgr_to_rgb", False),
        mean=floats(args.input_mean, "--input-mean") if getattr(args, "input_mean", None)
        else None,
        scale=getattr(args, "input_scale", 1.0),
    )
    return ConvertOptions(
        input_shapes=parse_shapes(args.input_shape) if args.input_shape else None,
        inputs=inputs, expected=expected,
        expected_label=", ".join(getattr(args, "expected", []) or []),
        caffe2_python=getattr(args, "caffe2_python", None),
        atol=getattr(args, "atol", 1e-4), rtol=getattr(args, "rtol", 1e-4),
        preprocessing=pre, max_bytes=args.max_bytes,
        allow_random_init=getattr(args, "allow_random_init", False),
        writer_options=writer_options(args),
        model_class=getattr(args, "model_class", None), **extra)


def load_plugins(files: list[str]) -> None:
    """--plugin files; installed plugins (entry points) load on demand, the first time a
    layer has no converter (see migrate.core.registry)."""
    if files:
        from migrate.plugins import load_plugin_file

        for path in files:
            load_plugin_file(path)
