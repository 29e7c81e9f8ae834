"""Reductions: mean, sum, max, min over dims (adaptive_avg_pool2d(x, 1) arrives as a
mean over the spatial dims: a global average pooling)."""

import onnx_ir as ir

from migrate.readers.pytorch.context import Const, Unavailable, axis
from migrate.readers.pytorch.registry import converter


def _axes(ctx, x, dims):
    rank = ctx.rank(x)
    if dims is None or (isinstance(dims, list | tuple) and len(dims) == 0):
        return list(range(rank))
    dims = [dims] if isinstance(dims, int) else dims
    return sorted({axis(int(d), rank) for d in dims})


@converter("aten.mean")
def mean(ctx, x, dims=None, keepdim=False, dtype=None):
    axes = _axes(ctx, x, dims)
    rank = ctx.rank(x)
    if keepdim and rank >= 3 and axes == list(range(2, rank)):
        return ctx.op("GlobalAveragePool", [x], hint="globalpool")
    # opset 17: ReduceMean takes its axes as an attribute
    return ctx.op("ReduceMean", [x], hint="mean", axes=axes, keepdims=int(bool(keepdim)))


@converter("aten.sum")
def sum_(ctx, x, dims=None, keepdim=False, dtype=None):
    x = ctx.cast(x, ctx.expected_dtype())
    return ctx.op("ReduceSum", [x, ctx.int64s(_axes(ctx, x, dims))], hint="sum",
                  keepdims=int(bool(keepdim)))


def _reduce(onnx_type: str):
    def convert(ctx, x, dims=None, keepdim=False):
        return ctx.op(onnx_type, [x], axes=_axes(ctx, x, dims), keepdims=int(bool(keepdim)))

    return convert


converter("aten.amax")(_reduce("ReduceMax"))
converter("aten.amin")(_reduce("ReduceMin"))


@converter("aten.argmax", "aten.argmin")
def argmax(ctx, x, dim=None, keepdim=False):
    op_type = "ArgMax" if "argmax" in str(ctx.node.target) else "ArgMin"
    if dim is None:
        x = ctx.op("Reshape", [x, ctx.int64s([-1])])
        dim = 0
    return ctx.op(op_type, [x], axis=axis(int(dim), ctx.rank(x)), keepdims=int(bool(keepdim)),
                  select_last_index=0)


_INDICES = Unavailable("the indices of max/min over a dim are not computed by the converted "
                       "model (use torch.argmax / torch.argmin)")


def _extreme(onnx_type: str, binary: str):
    def convert(ctx, x, dim=None, keepdim=False):
        if isinstance(dim, ir.Value | Const):  # max.other: element-wise
            return ctx.op(binary, [x, dim])
        if dim is None:  # over everything
            return ctx.op(onnx_type, [x], axes=list(range(ctx.rank(x))), keepdims=0)
        return ctx.op(onnx_type, [x], axes=_axes(ctx, x, dim),
                      keepdims=int(bool(keepdim))), _INDICES

    return convert


converter("aten.max")(_extreme("ReduceMax", "Max"))
converter("aten.min")(_extreme("ReduceMin", "Min"))


def _logical(onnx_type: str):
    """any / all: the max / min of the values as 0 and 1."""
    def convert(ctx, x, dim=None, keepdim=False):
        numbers = ctx.op("Cast", [x], to=int(ir.DataType.FLOAT))
        reduced = ctx.op(onnx_type, [numbers], axes=_axes(ctx, x, dim),
                         keepdims=int(bool(keepdim)))
        return ctx.op("Cast", [reduced], to=int(ir.DataType.BOOL))

    return convert


converter("aten.any")(_logical("ReduceMax"))
converter("aten.all")(_logical("ReduceMin"))
