"""`migrate formats` and `migrate runtimes`: what this installation can do."""

from __future__ import annotations

from migrate.cli.options import new_parser


def _runtime_line(spec, pythons: dict[str, str]) -> str:
    from migrate.verify.layerwise import runtime_missing

    why = runtime_missing(spec.name, pythons)
    if why is None:
        status = spec.load().status(**({"python": pythons[spec.name]}
                                       if spec.name in pythons else {}))
        return f"  {spec.name:<12} installed      {status.detail}"
    return f"  {spec.name:<12} NOT installed  {spec.install_hint}"


def run_formats(argv: list[str]) -> int:
    from migrate.core.registry import READERS, RUNTIMES, WRITERS

    p = new_parser("migrate formats",
                   "Every source format (reader), target format (writer) and runtime, and\n"
                   "whether each runtime is installed here (and how to install it).")
    p.add_argument("--caffe2-python", metavar="PYTHON")
    args = p.parse_args(argv)
    pythons = {"caffe2": args.caffe2_python} if args.caffe2_python else {}
    lines = ["sources (found by content):"]
    for spec in READERS.all():
        reference = f"reference: {spec.runtime}" if spec.runtime else "reference: its graph in " \
            "onnxruntime (no runtime exists)"
        lines.append(f"  {spec.name:<12} {spec.title}; {reference}")
    lines.append("targets (--to):")
    for spec in WRITERS.all():
        aliases = f" (also {', '.join(spec.aliases)})" if spec.aliases else ""
        lines.append(f"  {spec.name:<12} {spec.title}{aliases}: {spec.outputs}; "
                     f"run in {spec.runtime}")
    lines.append("runtimes (verification):")
    lines += [_runtime_line(spec, pythons) for spec in RUNTIMES.all()]
    print("\n".join(lines))
    return 0


def run_runtimes(argv: list[str]) -> int:
    from migrate.core.errors import UsageError
    from migrate.core.registry import RUNTIMES

    p = new_parser("migrate runtimes",
                   "List the runtimes that verify conversions, or install a side runtime:\n\n"
                   "  migrate runtimes                 what is installed\n"
                   "  migrate runtimes install caffe2  provision the genuine Caffe2 runtime")
    p.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    p.add_argument("name", nargs="?", help="the runtime to install")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = p.parse_args(argv)
    if args.action == "list":
        print("\n".join(_runtime_line(spec, {}) for spec in RUNTIMES.all()))
        return 0
    spec = RUNTIMES.get(args.name or "")
    if spec is None:
        raise UsageError(f"name a runtime to install: {', '.join(RUNTIMES.names())}")
    module = spec.load()
    if not hasattr(module, "install"):
        raise UsageError(f"{spec.name} is installed with pip, not by migrate: {spec.install_hint}")
    module.install()
    print(_runtime_line(spec, {}))
    return 0
