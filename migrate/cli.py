"""The `migrate` command line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from migrate import __version__
from migrate.errors import MigrateError, UsageError, VerificationError
from migrate.inputs import load_input
from migrate.layerwise import format_table
from migrate.passes import Preprocessing
from migrate.pipeline import TARGETS, ConversionSummary, ConvertOptions, convert_file
from migrate.plugins import load_installed_plugins, load_plugin_file
from readers.torch7.t7file import DEFAULT_MAX_BYTES

DESCRIPTION = """\
Convert an archived model to a maintained format and prove the numbers match.

  migrate spynet.t7                      -> spynet_init_net.pb, spynet_predict_net.pb,
                                            spynet_predict_net.pbtxt (mobile-ready Caffe2)
  migrate model.t7 -o out/ --to onnx --input-shape 1x8x24x32
  migrate spynet.t7 --report             also write spynet.report.html and .json
  migrate inspect model.t7               module tree, parameters, what is supported
  migrate verify model.t7 model_init_net.pb model_predict_net.pb --input sample.npy
  migrate check-mobile model_predict_net.pb
  migrate batch archive/ -o migrated/    every model under a folder, in parallel, resumable

After writing, the converted model is run on a random input (or --input) and
compared with the source model's graph run in onnxruntime, layer by layer (Caffe2
files run in the real Caffe2 side runtime: see tools/provision-caffe2.sh).
Nothing is left behind when a step fails. Exit status: 0 ok, 1 verification
failed, 2 bad input or usage.
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


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"bad {flag} '{text}' (expected numbers like 123.7,116.3,103.5)") from None


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", metavar="SHAPE",
                   help="input shape(s), e.g. 1x3x224x224 or 1x3x6x6,1x2x6x6 for two inputs;\n"
                        "default: inferred from the first layer (or from --input)")
    p.add_argument("--input", action="append", default=[], metavar="FILE",
                   help="verification input: .npy array or image (repeat for several inputs);\n"
                        "default: random data")
    p.add_argument("--input-bgr-to-rgb", action="store_true",
                   help="the model expects BGR input: fold the channel swap into the first\n"
                        "convolution so the converted model takes RGB")
    p.add_argument("--input-mean", metavar="R,G,B",
                   help="the model expects this mean subtracted (raw input units, RGB order)")
    p.add_argument("--input-scale", type=float, default=1.0, metavar="S",
                   help="the model expects (input - mean) * S")
    p.add_argument("--caffe2-python", metavar="PYTHON",
                   help="interpreter of the Caffe2 side runtime (default: caffe2-python on PATH)")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (default 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file that registers converters for custom layers\n"
                        "(repeatable; see README, 'Custom layers')")
    p.add_argument("--max-bytes", type=_size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                   help="refuse files declaring more tensor data than this\n"
                        "(e.g. 2G, 500M; default 64G)")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().rstrip("B")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size '{text}' (e.g. 2G, 500M)") from None


def _convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrate", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", help="the model file to convert (Torch7 .t7, binary or ascii)")
    p.add_argument("-o", "--output-dir", default=".", metavar="DIR",
                   help="where to write the converted files (default: current folder)")
    p.add_argument("--to", choices=TARGETS, default="caffe2",
                   help="target format (default: caffe2)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written model and comparing its outputs")
    p.add_argument("--no-optimize", action="store_true",
                   help="export one op per layer: no BatchNorm/scale folding, no removal of\n"
                        "identity ops, no in-place activations")
    p.add_argument("--report", action="store_true",
                   help="write MODEL.report.html and MODEL.report.json (layer-by-layer\n"
                        "comparison, graph, error histogram, fix-ups) and print the table")
    _add_model_options(p)
    p.add_argument("--version", action="version", version=f"torch7-migrate {__version__}")
    return p


def _verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrate verify", formatter_class=argparse.RawTextHelpFormatter,
        description="Compare already converted files with their source model, layer by layer;\n"
                    "names the first module whose output exceeds the tolerance.")
    p.add_argument("model", help="the source model (.t7)")
    p.add_argument("converted", nargs="+",
                   help="the converted files: INIT_NET.pb PREDICT_NET.pb, or MODEL.onnx")
    p.add_argument("--report", metavar="HTML",
                   help="also write this HTML report (and the JSON beside it)")
    _add_model_options(p)
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


def _check_mobile_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrate check-mobile",
        description="Check that a Caffe2 pair can run in Caffe2's mobile predictor: mobile "
                    "operator set, CPU only, no training or ATen ops, consistent blobs and "
                    "parameters, NCHW float32. Exit 1 when there are problems.")
    p.add_argument("predict_net", help="the predict_net.pb")
    p.add_argument("--init-net", metavar="FILE",
                   help="the init_net.pb (default: the *_init_net.pb beside the predict_net)")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p


def _human_bytes(n: float) -> str:
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
    elif not v.executed:
        print(f"  verified    NOT RUN: {v.skipped}")
    else:
        print(f"  verified    {v.runtime} vs onnxruntime reference on {s.input_description}: "
              f"{v.outputs.describe()}")


def _options(args: argparse.Namespace, **extra) -> ConvertOptions:
    inputs = [load_input(p) for p in args.input] or None
    pre = Preprocessing(
        bgr_to_rgb=args.input_bgr_to_rgb,
        mean=_floats(args.input_mean, "--input-mean") if args.input_mean else None,
        scale=args.input_scale,
    )
    return ConvertOptions(
        input_shapes=parse_shapes(args.input_shape) if args.input_shape else None,
        inputs=inputs, caffe2_python=args.caffe2_python, atol=args.atol, rtol=args.rtol,
        preprocessing=pre, max_bytes=args.max_bytes, **extra)


def _load_plugins(files: Sequence[str]) -> None:
    load_installed_plugins()
    for path in files:
        load_plugin_file(path)


def run_convert(argv: Sequence[str]) -> int:
    args = _convert_parser().parse_args(argv)
    _load_plugins(args.plugin)
    options = _options(args, target=args.to, out_dir=args.output_dir,
                       verify=not args.no_verify, report=args.report,
                       optimize=not args.no_optimize)
    summary = convert_file(args.model, options)
    if args.report and summary.verification is not None:
        print(format_table(summary.verification, args.atol, args.rtol))
    print_summary(summary)
    return EXIT_OK


def run_verify(argv: Sequence[str]) -> int:
    from migrate.pipeline import verify_files
    from migrate.report import write_report

    args = _verify_parser().parse_args(argv)
    _load_plugins(args.plugin)
    result, data = verify_files(args.model, args.converted, _options(args))
    print(format_table(result, args.atol, args.rtol))
    if args.report:
        write_report(data, args.report, os.path.splitext(args.report)[0] + ".json")
        print(f"report: {args.report}")
    if not result.executed:
        print(f"migrate: verification NOT RUN: {result.skipped}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    if result.first_divergence or not result.outputs.passed:
        where = result.first_divergence.label if result.first_divergence else "the outputs"
        print(f"migrate: verification failed: first divergence at {where}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    print(f"outputs: {result.outputs.describe()}")
    return EXIT_OK


def _batch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrate batch", formatter_class=argparse.RawTextHelpFormatter,
        description="Migrate every model file under a folder (found by name or by content),\n"
                    "in parallel, mirroring the folder structure. Resumable: progress is kept\n"
                    "in OUT/migrate-state.sqlite; a rerun skips models already converted from\n"
                    "identical content and retries failed ones. Writes OUT/report.md and\n"
                    "OUT/report.json. Exit status: 0 all converted, 1 some failed, 2 usage.")
    p.add_argument("archive", help="folder of model files (searched recursively)")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUT")
    p.add_argument("--to", choices=TARGETS, default="caffe2")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel worker processes (default: the number of cores)")
    p.add_argument("--executor", default="local", metavar="local|dask://HOST:PORT",
                   help="where the work runs: local processes, or an existing Dask\n"
                        "distributed scheduler (pip install 'torch7-migrate[dask]')")
    p.add_argument("--no-verify", action="store_true",
                   help="do not run the converted files in the target runtime")
    p.add_argument("--no-optimize", action="store_true", help="one op per layer")
    p.add_argument("--input-shape", metavar="SHAPE",
                   help="input shape of every model (default: inferred per model)")
    p.add_argument("--caffe2-python", metavar="PYTHON")
    p.add_argument("--timeout", type=float, default=1800, metavar="S",
                   help="give up on a model after this many seconds (default 1800)")
    p.add_argument("--worker-memory", type=_size, default="8G", metavar="SIZE",
                   help="memory limit of each local worker (default 8G)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file that registers converters for custom layers")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p


def run_batch_command(argv: Sequence[str]) -> int:
    from migrate.batch import BatchOptions, run_batch

    args = _batch_parser().parse_args(argv)
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.plugin and args.executor == "local":
        # workers import plugins through the PLUGINS variable (they are new processes)
        os.environ["MIGRATE_PLUGINS"] = os.pathsep.join(os.path.abspath(p) for p in args.plugin)
    _load_plugins(args.plugin)
    summary = run_batch(BatchOptions(
        root=args.archive, out=args.output_dir, target=args.to, jobs=args.jobs,
        executor=args.executor, optimize=not args.no_optimize, verify=not args.no_verify,
        caffe2_python=args.caffe2_python, timeout=args.timeout,
        worker_memory=args.worker_memory, progress=sys.stderr.isatty(),
        input_shapes=parse_shapes(args.input_shape) if args.input_shape else None))
    print(f"migrate batch: {summary.total} models, {summary.skipped} already done, "
          f"{summary.converted} converted, {summary.failed} failed, "
          f"{summary.mismatched} mismatched")
    print(f"report: {summary.report_md}")
    return summary.exit_code


def run_inspect(argv: Sequence[str]) -> int:
    from migrate.inspection import inspect_file

    args = _inspect_parser().parse_args(argv)
    _load_plugins(args.plugin)
    print(inspect_file(args.model))
    return EXIT_OK


def run_check_mobile(argv: Sequence[str]) -> int:
    from migrate.mobile import check_mobile

    args = _check_mobile_parser().parse_args(argv)
    report = check_mobile(args.predict_net, args.init_net)
    if report.ok:
        print(f"{args.predict_net}: mobile-ready ({report.ops} ops, init net "
              f"{report.init_net})")
        return EXIT_OK
    print(f"{args.predict_net}: {len(report.problems)} problem(s) for Caffe2 mobile:")
    for problem in report.problems:
        print(f"  - {problem}")
    return EXIT_VERIFY_FAILED


COMMANDS = {"inspect": run_inspect, "convert": run_convert, "verify": run_verify,
            "check-mobile": run_check_mobile, "batch": run_batch_command}


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
    except MemoryError:
        print("migrate: error: out of memory (is the model larger than this machine's memory?)",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("migrate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `migrate ... | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
