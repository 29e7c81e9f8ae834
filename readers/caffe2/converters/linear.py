"""Fully connected layers and matrix products."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.readers.caffe2.registry import caffe2_op


def _flatten(ctx, x, axis: int):
    shape = ctx.shape(x)
    axis = axis % len(shape) if axis < 0 else axis
    if len(shape) == 2 and axis == 1:
        return x
    return ctx.op("Flatten", [x], axis=axis)


@caffe2_op("FC", "FCTransposed")
def fc(ctx, op, inputs):
    """Y = X W^T + b with X flattened to 2-D at `axis` and W at `axis_w` (FCTransposed
    stores W as K x N)."""
    x, weight, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    x2 = _flatten(ctx, x, ctx.args.int("axis", 1))
    w2 = _flatten(ctx, weight, ctx.args.int("axis_w", 1))
    transposed = op.type == "FCTransposed"
    y = ctx.op("Gemm", [x2, w2] + ([bias] if bias is not None else []), hint="fc",
               transB=0 if transposed else 1)
    axis = ctx.args.int("axis", 1) % len(ctx.shape(x))
    if axis != 1:  # the leading dims come back
        out = list(ctx.shape(x)[:axis]) + [ctx.shape(y)[1]]
        y = ctx.op("Reshape", [y, ctx.int64s(out)], hint="fc")
    return [y]


@caffe2_op("MatMul")
def matmul(ctx, op, inputs):
    a, b = inputs[:2]
    if len(ctx.shape(a)) != 2 or len(ctx.shape(b)) != 2:
        if ctx.args.int("trans_a", 0) or ctx.args.int("trans_b", 0):
            raise ConversionError("MatMul with transposes of more than 2-D inputs")
        return [ctx.op("MatMul", [a, b], hint="matmul")]
    if ctx.args.int("trans_a", 0):
        a = ctx.op("Transpose", [a], perm=[1, 0])
    if ctx.args.int("trans_b", 0):
        b = ctx.op("Transpose", [b], perm=[1, 0])
    return [ctx.op("MatMul", [a, b], hint="matmul")]


@caffe2_op("BatchMatMul")
def batch_matmul(ctx, op, inputs):
    a, b = inputs[:2]
    for flag, k in (("trans_a", 0), ("trans_b", 1)):
        if ctx.args.int(flag, 0):
            value = (a, b)[k]
            rank = len(ctx.shape(value))
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            if k == 0:
                a = ctx.op("Transpose", [a], perm=perm)
            else:
                b = ctx.op("Transpose", [b], perm=perm)
    return [ctx.op("MatMul", [a, b], hint="matmul")]
