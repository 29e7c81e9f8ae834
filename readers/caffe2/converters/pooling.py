"""Max and average pooling (1-D, 2-D, 3-D; global; Caffe's legacy ceil rounding)."""

from __future__ import annotations

from migrate.readers.caffe2.converters.window import resolve_pads, window
from migrate.readers.caffe2.registry import caffe2_op


def _pool(ctx, inputs, onnx_type: str, global_type: str, **extra):
    x = ctx.to_nchw(inputs[0])
    if ctx.args.int("global_pooling", 0):
        return [ctx.from_nchw(ctx.op(global_type, [x], hint="pool"))]
    dims = len(ctx.shape(x)) - 2
    geometry = window(ctx.args, dims)
    pads, ceil = resolve_pads(list(ctx.shape(x)[2:]), geometry)
    attrs = dict(kernel_shape=geometry["kernel"], strides=geometry["strides"], pads=pads,
                 ceil_mode=int(ceil), **extra)
    if onnx_type == "MaxPool" and geometry["dilations"] != [1] * dims:
        attrs["dilations"] = geometry["dilations"]
    return [ctx.from_nchw(ctx.op(onnx_type, [x], hint="pool", **attrs))]


@caffe2_op("MaxPool", "MaxPool1D", "MaxPool2D", "MaxPool3D")
def max_pool(ctx, op, inputs):
    return _pool(ctx, inputs, "MaxPool", "GlobalMaxPool")


@caffe2_op("AveragePool", "AveragePool1D", "AveragePool2D", "AveragePool3D")
def average_pool(ctx, op, inputs):
    # Caffe2 counts only the input's own elements unless told to count the padding
    return _pool(ctx, inputs, "AveragePool", "GlobalAveragePool",
                 count_include_pad=ctx.args.int("count_include_pad", 0))
