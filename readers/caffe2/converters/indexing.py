"""Gather, OneHot, BooleanMask, TopK, ScatterAssign."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.caffe2.registry import caffe2_op


@caffe2_op("Gather")
def gather(ctx, op, inputs):
    data, indices = inputs[:2]
    return [ctx.op("Gather", [data, indices], hint="gather", axis=ctx.args.int("axis", 0))]


@caffe2_op("OneHot")
def one_hot(ctx, op, inputs):
    """1-D indices and a scalar size -> float 0/1 rows."""
    indices, size = inputs[:2]
    depth = ctx.constant_of(size)
    if depth is None:
        raise ConversionError("OneHot with a computed size")
    values = ctx.const(np.asarray([0.0, 1.0], np.float32), "onehot_values")
    return [ctx.op("OneHot", [indices, ctx.int64s([int(np.asarray(depth).reshape(-1)[0])],
                                                   "depth"), values], hint="onehot", axis=-1)]


@caffe2_op("BooleanMask")
def boolean_mask(ctx, op, inputs):
    """The elements of a 1-D tensor where the mask is true (a constant mask: the output's
    size must be known)."""
    data, mask = inputs[:2]
    if len(ctx.shape(data)) != 1:
        raise ConversionError("BooleanMask of a tensor of more than one dimension")
    return [ctx.op("Compress", [data, mask], hint="masked", axis=0)]


@caffe2_op("TopK")
def top_k(ctx, op, inputs):
    k = ctx.int64s([ctx.args.int("k")], "k")
    values, indices = ctx.outputs("TopK", [inputs[0], k], 2, hint="topk",
                                  axis=ctx.args.int("axis", -1), largest=1, sorted=1)
    return [values, indices]


@caffe2_op("ScatterAssign")
def scatter_assign(ctx, op, inputs):
    """DATA[INDICES[i]] = SLICES[i] along the first axis."""
    data, indices, slices = inputs[:3]
    index = ctx.op("Unsqueeze", [ctx.op("Cast", [indices], to=7), ctx.int64s([1], "axes")])
    return [ctx.op("ScatterND", [data, index, slices], hint="scatter")]
