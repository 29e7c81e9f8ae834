"""`migrate MODEL [FILES...] --to TARGET`: convert one model and prove it."""

from __future__ import annotations

import argparse

from migrate import __version__
from migrate.cli.options import (
    add_output_options,
    add_source_options,
    add_target_options,
    add_verify_options,
    convert_options,
    load_plugins,
    new_parser,
)
from migrate.core.registry import READERS, WRITERS

DESCRIPTION = """\
Convert a model to another format and prove that the numbers match.

  migrate spynet.t7                      -> spynet_init_net.pb, spynet_predict_net.pb,
                                            spynet_predict_net.pbtxt (mobile-ready Caffe2)
  migrate model.onnx --to caffe2 -o out/
  migrate net.prototxt net.caffemodel --to onnx    (two-file formats: both, any order)
  migrate spynet.t7 --report             also write spynet.report.html and .json

Other commands:
  migrate verify SOURCE... CONVERTED...  compare files converted earlier, layer by layer
  migrate inspect MODEL...               layers, parameters, what is supported
  migrate check-mobile INIT PREDICT      is a Caffe2 pair ready for the mobile predictor
  migrate batch archive/ -o migrated/    every model under a folder, in parallel, resumable
  migrate formats                        every source, target and runtime, installed or not
  migrate runtimes install NAME          provision a side runtime (e.g. caffe2)

The source format is found from the files' content, not their names. After writing,
the converted model runs in its target's real runtime on a random input (or --input)
and is compared, layer by layer, with the source model run in its own runtime (or,
for Torch7, its graph in onnxruntime; or --expected outputs). Nothing is left behind
when a step fails. Exit status: 0 ok, 1 verification failed, 2 bad input or usage.
"""


def parser() -> argparse.ArgumentParser:
    p = new_parser("migrate", DESCRIPTION)
    sources = ", ".join(s.name for s in READERS.all())
    p.add_argument("model", nargs="+", metavar="MODEL",
                   help=f"the model's file(s), any order ({sources})")
    targets = "\n".join(f"  {w.name:<10} {w.outputs}" for w in WRITERS.all())
    add_output_options(
        p, to_help=f"target format (default: caffe2):\n{targets}",
        report_help="write MODEL.report.html and MODEL.report.json (layer-by-layer\n"
                    "comparison, graph, error histogram, fix-ups) and print the table")
    add_source_options(p)
    add_verify_options(p)
    add_target_options(p)
    p.add_argument("--version", action="version", version=f"torch7-migrate {__version__}")
    return p


def run_convert(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # before the heavy imports: --help stays fast
    from migrate.pipeline import convert_source
    from migrate.verify.layerwise import format_table

    load_plugins(args.plugin)
    options = convert_options(args, target=args.to, out_dir=args.output_dir,
                              verify=not args.no_verify, report=args.report,
                              optimize=not args.no_optimize)
    source = args.model[0] if len(args.model) == 1 else args.model
    summary = convert_source(source, options)
    if args.report and summary.verification is not None:
        print(format_table(summary.verification, args.atol, args.rtol))
    print(summary)
    return 0
