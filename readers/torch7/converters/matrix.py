"""Products of two inputs: MM (batched matrix product), MV (matrix-vector),
Bilinear (x1' W_k x2 + b_k)."""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def two_tensors(x, what):
    if isinstance(x, ir.Value) or len(x) < 2 or not all(isinstance(v, ir.Value) for v in x[:2]):
        raise ConversionError(f"{what} takes a table of two tensors")
    return x[0], x[1]


def _swap_last_two(ctx, x):
    rank = len(ctx.shape(x))
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return ctx.op("Transpose", [x], hint="transpose", perm=perm)


@converter("nn.MM")
def mm(ctx, module, x):
    a, b = two_tensors(x, "MM")
    rank_a, rank_b = len(ctx.shape(a)), len(ctx.shape(b))
    if rank_a not in (2, 3) or rank_b != rank_a:
        raise ConversionError(f"MM takes two matrices or two batches of them, got {rank_a}-D "
                              f"and {rank_b}-D")
    if module.bool("transA"):
        a = _swap_last_two(ctx, a)
    if module.bool("transB"):
        b = _swap_last_two(ctx, b)
    sa, sb = ctx.shape(a), ctx.shape(b)
    if sa[-1] != sb[-2] or (rank_a == 3 and sa[0] != sb[0]):
        raise ConversionError(f"MM: sizes {list(sa)} and {list(sb)} do not match")
    return ctx.op("MatMul", [a, b], hint="mm")


@converter("nn.MV")
def mv(ctx, module, x):
    """M (r x c, or batch x r x c) times v (c, or batch x c)."""
    m, v = two_tensors(x, "MV")
    rank_m, rank_v = len(ctx.shape(m)), len(ctx.shape(v))
    if (rank_m, rank_v) not in ((2, 1), (3, 2)):
        raise ConversionError(f"MV takes a matrix and a vector or batches of them, got "
                              f"{rank_m}-D and {rank_v}-D")
    if module.bool("trans"):
        m = _swap_last_two(ctx, m)
    if ctx.shape(m)[-1] != ctx.shape(v)[-1]:
        raise ConversionError(f"MV: sizes {list(ctx.shape(m))} and {list(ctx.shape(v))} "
                              "do not match")
    last = ctx.int64s([rank_v], "axes")
    column = ctx.op("Unsqueeze", [v, last], hint="column")
    product = ctx.op("MatMul", [m, column], hint="mv")
    return ctx.op("Squeeze", [product, last], hint="mv")


@converter("nn.Bilinear")
def bilinear(ctx, module, x):
    """y_k = x1' W_k x2 (+ b_k) for rows x1 (n x I), x2 (n x J), weight K x I x J."""
    a, b = two_tensors(x, "Bilinear")
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 3:
        raise ConversionError("Bilinear has no 3-D weight")
    k, i, j = weight.shape
    if ctx.shape(a)[1:] != (i,) or ctx.shape(b)[1:] != (j,) or len(ctx.shape(a)) != 2:
        raise ConversionError(f"Bilinear({i}, {j}, {k}) takes rows of {i} and {j}, got "
                              f"{list(ctx.shape(a))} and {list(ctx.shape(b))}")
    n = ctx.shape(a)[0]
    # x1 W_k for every k at once: one fully connected layer with K*J outputs
    stacked = np.ascontiguousarray(weight.transpose(0, 2, 1).reshape(k * j, i))
    projected = ctx.op("Gemm", [a, ctx.const(stacked, "weight")], hint="bilinear", transB=1)
    projected = ctx.op("Reshape", [projected, ctx.int64s([n, k, j])], hint="reshape")
    rows_b = ctx.op("Unsqueeze", [b, ctx.int64s([1], "axes")], hint="rows")
    product = ctx.op("Mul", [projected, rows_b], hint="product")
    y = ctx.op("ReduceSum", [product, ctx.int64s([2], "axes")], hint="bilinear", keepdims=0)
    bias = module.tensor("bias")
    if bias is not None:
        y = ctx.op("Add", [y, ctx.const(bias.reshape(k), "bias")], hint="bias")
    return y
