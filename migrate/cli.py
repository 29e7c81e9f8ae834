"""The `migrate` command line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from migrate import __version__
from migrate.errors import MigrateError, UsageError, VerificationError
from migrate.pipeline import TARGETS, ConversionSummary, ConvertOptions, convert_file
from migrate.plugins import load_installed_plugins, load_plugin_file

DESCRIPTION = """\
Convert an archived model to a maintained format and prove the numbers match.

  migrate spynet.t7                      -> spynet_init_net.pb, spynet_predict_net.pb,
                                            spynet_predict_net.pbtxt (mobile-ready Caffe2)
  migrate model.t7 -o out/ --to onnx --input-shape 1x8x24x32
  migrate inspect model.t7               module tree, parameters, what is supported

After writing, the converted model is run on a random input and compared with the
source model's graph run in onnxruntime (Caffe2 files run in the real Caffe2 side
runtime: see tools/provision-caffe2.sh). Nothing is left behind when a step fails.
"""

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_ERROR = 0, 1, 2


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


def _convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrate", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", help="the model file to convert (Torch7 .t7, binary or ascii)")
    p.add_argument("-o", "--output-dir", default=".", metavar="DIR",
                   help="where to write the converted files (default: current folder)")
    p.add_argument("--to", choices=TARGETS, default="caffe2",
                   help="target format (default: caffe2)")
    p.add_argument("--input-shape", metavar="SHAPE",
                   help="input shape(s), e.g. 1x3x224x224 or 1x3x6x6,1x2x6x6 for two inputs;\n"
                        "default: inferred from the first layer")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written model and comparing its outputs")
    p.add_argument("--caffe2-python", metavar="PYTHON",
                   help="interpreter of the Caffe2 side runtime (default: caffe2-python on PATH)")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (default 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file that registers converters for custom layers\n"
                        "(repeatable; see README, 'Custom layers')")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    p.add_argument("--version", action="version", version=f"torch7-migrate {__version__}")
    return p


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrate inspect",
        description="Print a Torch7 model's module tree, parameter counts and which "
                    "modules have a converter.")
    p.add_argument("model")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file that registers converters for custom layers")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def print_summary(s: ConversionSummary) -> None:
    shapes = ", ".join("x".join(map(str, shape)) for shape in s.input_shapes)
    print(f"migrate: {s.source} -> {s.target}")
    print(f"  source      {s.root_class}, {s.modules} modules converted, input {shapes}")
    print(f"  parameters  {s.parameters:,} ({_human_bytes(s.parameter_bytes)} float32)")
    for path in s.outputs.values():
        print(f"  wrote       {path} ({_human_bytes(os.path.getsize(path))})")
    for note in s.notes:
        print(f"  note        {note}")
    v = s.verification
    if v is None:
        print("  verified    no (--no-verify)")
    elif v.skipped:
        print(f"  verified    NOT RUN: {v.skipped}")
    else:
        print(f"  verified    {v.runtime} vs onnxruntime reference on a random "
              f"{shapes} input: {v.comparison.describe()}")


def _load_plugins(files: Sequence[str]) -> None:
    load_installed_plugins()
    for path in files:
        load_plugin_file(path)


def run_convert(argv: Sequence[str]) -> int:
    args = _convert_parser().parse_args(argv)
    _load_plugins(args.plugin)
    options = ConvertOptions(
        target=args.to, out_dir=args.output_dir,
        input_shapes=parse_shapes(args.input_shape) if args.input_shape else None,
        verify=not args.no_verify, caffe2_python=args.caffe2_python,
        atol=args.atol, rtol=args.rtol,
    )
    print_summary(convert_file(args.model, options))
    return EXIT_OK


def run_inspect(argv: Sequence[str]) -> int:
    from migrate.inspection import inspect_file

    args = _inspect_parser().parse_args(argv)
    _load_plugins(args.plugin)
    print(inspect_file(args.model))
    return EXIT_OK


COMMANDS = {"inspect": run_inspect, "convert": run_convert}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = run_convert
    if argv and argv[0] in COMMANDS:
        command = COMMANDS[argv.pop(0)]
    debug = "--debug" in argv
    try:
        return command(argv)
    except VerificationError as exc:
        if debug:
            traceback.print_exc()
        print(f"migrate: error: {exc}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    except MigrateError as exc:
        if debug:
            traceback.print_exc()
        print(f"migrate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("migrate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
