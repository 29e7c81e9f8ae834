"""`migrate batch ARCHIVE -o OUT`: every model under a folder."""

from __future__ import annotations

import os
import sys

from migrate.cli.options import load_plugins, new_parser, parse_shapes, size


def parser():
    p = new_parser(
        "migrate batch",
        "Migrate every model under a folder (found by content: Torch7, ONNX, Caffe, ...;\n"
        "two-file formats paired within a folder), in parallel, mirroring the folder\n"
        "structure. Resumable: progress is kept in OUT/migrate-state.sqlite; a rerun skips\n"
        "models already converted from identical content and retries failed ones. Writes\n"
        "OUT/report.md and OUT/report.json. Exit status: 0 all converted, 1 some failed,\n"
        "2 usage.")
    p.add_argument("archive", help="folder of model files (searched recursively)")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUT")
    p.add_argument("--to", default="caffe2", metavar="TARGET", help="target format")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel worker processes (default: the number of cores)")
    p.add_argument("--executor", default="local", metavar="local|dask://HOST:PORT",
                   help="where the work runs: local processes, or an existing Dask\n"
                        "distributed scheduler (pip install 'torch7-migrate[dask]')")
    p.add_argument("--no-verify", action="store_true",
                   help="do not run the converted files in the target runtime")
    p.add_argument("--no-optimize", action="store_true", help="one op per layer")
    p.add_argument("--input-shape", metavar="SHAPE",
                   help="input shape of every model (default: declared or inferred per model)")
    p.add_argument("--caffe2-python", metavar="PYTHON")
    p.add_argument("--timeout", type=float, default=1800, metavar="S",
                   help="give up on a model after this many seconds (default 1800)")
    p.add_argument("--worker-memory", type=size, default="8G", metavar="SIZE",
                   help="memory limit of each local worker (default 8G)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file that registers converters for custom layers")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p


def run_batch_command(argv: list[str]) -> int:
    from migrate.batch.runner import BatchOptions, run_batch
    from migrate.core.errors import UsageError

    args = parser().parse_args(argv)
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.plugin and args.executor == "local":
        # workers import plugins through the PLUGINS variable (they are new processes)
        os.environ["MIGRATE_PLUGINS"] = os.pathsep.join(os.path.abspath(p) for p in args.plugin)
    load_plugins(args.plugin)
    summary = run_batch(BatchOptions(
        root=args.archive, out=args.output_dir, target=args.to, jobs=args.jobs,
        executor=args.executor, optimize=not args.no_optimize, verify=not args.no_verify,
        runtime_python={"caffe2": args.caffe2_python} if args.caffe2_python else {},
        timeout=args.timeout, worker_memory=args.worker_memory,
        progress=sys.stderr.isatty(),
        input_shapes=parse_shapes(args.input_shape) if args.input_shape else None))
    print(f"migrate batch: {summary.total} models, {summary.skipped} already done, "
          f"{summary.converted} converted, {summary.failed} failed, "
          f"{summary.mismatched} mismatched")
    print(f"report: {summary.report_md}")
    return summary.exit_code
