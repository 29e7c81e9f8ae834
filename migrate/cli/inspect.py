"""`migrate inspect MODEL...`: what is in a model and what can be converted."""

from __future__ import annotations

from migrate.cli.options import add_source_options, load_plugins, new_parser


def run_inspect(argv: list[str]) -> int:
    from migrate.core.detect import resolve_source
    from migrate.core.model import ReadOptions

    p = new_parser("migrate inspect",
                   "Print a model's layers (for Torch7 its module tree), parameter counts and\n"
                   "which layers have a converter.")
    p.add_argument("model", nargs="+", metavar="MODEL", help="the model's file(s)")
    add_source_options(p)
    args = p.parse_args(argv)
    load_plugins(args.plugin)
    spec, paths = resolve_source(args.model)
    from migrate.cli.options import parse_shapes

    options = ReadOptions(input_shapes=parse_shapes(args.input_shape) if args.input_shape
                          else None, max_bytes=args.max_bytes,
                          allow_random_init=args.allow_random_init,
                          model_class=args.model_class)
    print(spec.load().inspect(paths, options))
    return 0
