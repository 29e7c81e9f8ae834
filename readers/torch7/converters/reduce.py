"""Reductions along one dimension."""

from migrate.readers.torch7.registry import converter


def _dimension(ctx, module, x):
    """nn's positive 1-based dimension (nInputDims shifts it past a batch dim)."""
    rank = len(ctx.shape(x))
    dim = module.int("dimension", 1)
    n_input_dims = module.get("nInputDims")
    if dim < 0:
        dim = rank + dim + 1
    elif n_input_dims is not None and rank == int(n_input_dims) + 1:
        dim += 1
    return dim - 1, rank


@converter("nn.Sum", "nn.Mean")
def sum_(ctx, module, x):
    axis, rank = _dimension(ctx, module, x)
    average = module.cls == "nn.Mean" or module.bool("sizeAverage")
    # nn keeps the dimension only for 1-D input or when squeeze=false
    keep = int(rank == 1 or not module.bool("squeeze", True))
    if average:
        return ctx.op("ReduceMean", [x], hint="mean", axes=[axis], keepdims=keep)
    return ctx.op("ReduceSum", [x, ctx.int64s([axis], "axes")], hint="sum", keepdims=keep)


@converter("nn.Max", "nn.Min")
def max_(ctx, module, x):
    axis, rank = _dimension(ctx, module, x)
    op = "ReduceMax" if module.cls == "nn.Max" else "ReduceMin"
    return ctx.op(op, [x], hint=op[6:].lower(), axes=[axis], keepdims=int(rank == 1))
