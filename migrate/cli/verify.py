"""`migrate verify SOURCE... CONVERTED...`: check files converted earlier."""

from __future__ import annotations

import os
import sys

from migrate.cli.options import add_source_options, add_verify_options, load_plugins, new_parser


def parser():
    p = new_parser(
        "migrate verify",
        "Compare already converted files with their source model, layer by layer; names the\n"
        "first layer whose output exceeds the tolerance.\n\n"
        "  migrate verify model.t7 model_init_net.pb model_predict_net.pb --input x.npy\n"
        "  migrate verify deploy.prototxt weights.caffemodel out/model.onnx --input img.png\n\n"
        "The source's files come first (all of them for a two-file format), then the\n"
        "converted ones, each group in any order; formats are found by content.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="the source model's file(s), then the converted file(s)")
    p.add_argument("--report", metavar="HTML",
                   help="also write this HTML report (and the JSON beside it)")
    add_source_options(p)
    add_verify_options(p)
    return p


def run_verify(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # before the heavy imports: --help stays fast
    from migrate.cli.options import convert_options
    from migrate.pipeline import verify_files
    from migrate.verify.layerwise import format_table
    from migrate.verify.report import write_report

    load_plugins(args.plugin)
    result, data = verify_files(args.files, convert_options(args))
    print(format_table(result, args.atol, args.rtol))
    for note in result.notes:
        print(f"note: {note}")
    if args.report:
        write_report(data, args.report, os.path.splitext(args.report)[0] + ".json")
        print(f"report: {args.report}")
    if not result.executed:
        print(f"migrate: verification NOT RUN: {result.skipped}", file=sys.stderr)
        return 1
    if result.first_divergence or not result.outputs.passed:
        where = result.first_divergence.label if result.first_divergence else "the outputs"
        print(f"migrate: verification failed: first divergence at {where}", file=sys.stderr)
        return 1
    print(f"outputs: {result.outputs.describe()}")
    return 0
