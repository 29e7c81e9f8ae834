"""Convolutions (engines, e.g. NNPACK or CUDNN, are ignored: the math is the same)."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.caffe2.converters.window import resolve_pads, window
from migrate.readers.caffe2.registry import caffe2_op


def _nchw_weight(ctx, weight, transposed: bool = False):
    """NHWC nets store conv weights as M x kH x kW x C."""
    if ctx.order() == "NCHW":
        return weight
    array = ctx.constant_of(weight)
    if array is None:
        raise ConversionError("an NHWC convolution needs constant weights")
    rank = array.ndim
    return ctx.const(np.ascontiguousarray(np.moveaxis(array, rank - 1, 1)), "weight")


@caffe2_op("Conv", "Conv1D", "Conv2D", "Conv3D")
def conv(ctx, op, inputs):
    x, weight = inputs[0], _nchw_weight(ctx, inputs[1])
    bias = inputs[2:3]
    x = ctx.to_nchw(x)
    dims = len(ctx.shape(x)) - 2
    geometry = window(ctx.args, dims, list(ctx.shape(weight)[2:]))
    pads, _ = resolve_pads(list(ctx.shape(x)[2:]), geometry)
    y = ctx.op("Conv", [x, weight, *bias], hint="conv", kernel_shape=geometry["kernel"],
               strides=geometry["strides"], dilations=geometry["dilations"], pads=pads,
               group=ctx.args.int("group", 1))
    return [ctx.from_nchw(y)]


@caffe2_op("ConvTranspose")
def conv_transpose(ctx, op, inputs):
    x, weight = ctx.to_nchw(inputs[0]), _nchw_weight(ctx, inputs[1])
    bias = inputs[2:3]
    dims = len(ctx.shape(x)) - 2
    geometry = window(ctx.args, dims, list(ctx.shape(weight)[2:]))
    if dims == 2 and (ctx.args.has("adj_h") or ctx.args.has("adj_w")):
        adj = [ctx.args.int("adj_h", ctx.args.int("adj", 0)),
               ctx.args.int("adj_w", ctx.args.int("adj", 0))]
    else:
        adj = ctx.args.ints("adjs", [ctx.args.int("adj", 0)] * dims)
    y = ctx.op("ConvTranspose", [x, weight, *bias], hint="deconv",
               kernel_shape=geometry["kernel"], strides=geometry["strides"],
               pads=geometry["pads"], output_padding=adj, group=ctx.args.int("group", 1))
    return [ctx.from_nchw(y)]
