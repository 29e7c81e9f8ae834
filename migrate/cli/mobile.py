"""`migrate check-mobile INIT_NET PREDICT_NET`: Caffe2 mobile readiness."""

from __future__ import annotations

from migrate.cli.options import new_parser


def run_check_mobile(argv: list[str]) -> int:
    from migrate.writers.caffe2.mobile import check_mobile_files

    p = new_parser(
        "migrate check-mobile",
        "Check that a Caffe2 pair can run in Caffe2's mobile predictor: every operator\n"
        "registered in the real Caffe2 CPU build and none of the training, ATen or GPU\n"
        "kind, CPU engines only, consistent blobs and parameters, NCHW float32.\n"
        "Exit 1 when there are problems.")
    p.add_argument("nets", nargs="+", metavar="NET",
                   help="the init_net.pb and predict_net.pb, in either order (a predict_net\n"
                        "alone is checked with the *_init_net.pb beside it, if any)")
    p.add_argument("--init-net", metavar="FILE", help="the init_net (same as giving it first)")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = p.parse_args(argv)
    report = check_mobile_files(([args.init_net] if args.init_net else []) + args.nets)
    if report.ok:
        print(f"{report.predict_net}: mobile-ready ({report.ops} ops, init net "
              f"{report.init_net})")
        return 0
    print(f"{report.predict_net}: {len(report.problems)} problem(s) for Caffe2 mobile:")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1
