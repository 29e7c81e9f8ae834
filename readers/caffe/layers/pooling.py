"""Pooling, with Caffe's own output size: rounded up (round_mode CEIL, the default), the
last window dropped only when padding is used and it would start in the padding, and
average windows divided by their size clipped to the padded input (PoolingLayer).

ONNX pooling with ceil_mode=1 and symmetric pads computes exactly that for max pooling,
and for average pooling without padding (count_include_pad=0: the clipped window); that
is also how the Torch7 reader and Caffe2's legacy Caffe padding see ceil mode. Average
pooling with padding whose last windows overhang (Caffe counts the padding up to
input + pad only) is built from explicit pieces, as is any pooling whose size ONNX
infers differently from Caffe.
"""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError, UnsupportedError
from migrate.core.formats import caffe_pb2
from migrate.readers.caffe.registry import caffe_layer

MAX, AVE, STOCHASTIC = (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE,
                        caffe_pb2.PoolingParameter.STOCHASTIC)
FLT_MIN = float(np.finfo(np.float32).tiny)


def _two(param, name: str, single: str, default: int | None) -> list[int]:
    h, w = f"{name}_h", f"{name}_w"
    if param.HasField(h) or param.HasField(w):
        if not (param.HasField(h) and param.HasField(w)) or param.HasField(single):
            raise ConversionError(f"give {single} or both {h} and {w}")
        return [getattr(param, h), getattr(param, w)]
    if param.HasField(single) or default is None:
        if not param.HasField(single):
            raise ConversionError(f"{single} (or {h}/{w}) is required")
        return [getattr(param, single)] * 2
    return [default, default]


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """PoolingLayer::Reshape for one axis (Caffe computes it in float)."""
    span = (size + 2 * pad - kernel) / stride
    out = int(math.ceil(span) if ceil else math.floor(span)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool(ctx, x, method: int, kernel: list[int], stride: list[int], pad: list[int],
         ceil: bool, hint: str | None = None):
    """Caffe's pooling of a 4-D value (also used for LRN within a channel)."""
    n, c, height, width = ctx.shape(x)
    out = [caffe_pooled_size(s, k, st, p, ceil)
           for s, k, st, p in zip((height, width), kernel, stride, pad, strict=True)]
    if min(out) < 1:
        raise ConversionError(f"a {kernel[0]}x{kernel[1]} window does not fit the "
                              f"{height}x{width} input")
    for size, o, st, p in zip((height, width), out, stride, pad, strict=True):
        if (o - 1) * st - p >= size:
            raise UnsupportedError("its last window lies entirely outside the input (a stride "
                                   "larger than the window), where Caffe computes garbage")
    floor = [caffe_pooled_size(s, k, st, p, False)
             for s, k, st, p in zip((height, width), kernel, stride, pad, strict=True)]
    attrs = dict(kernel_shape=kernel, strides=stride, pads=pad * 2,
                 ceil_mode=0 if floor == out else 1)
    if method == STOCHASTIC:
        return _stochastic(ctx, x, kernel, stride, pad, out, hint)
    if method == AVE and floor != out and any(pad):
        # Caffe divides the last windows by their size clipped to the padded input: with
        # padding no ONNX attribute says that portably
        return _explicit(ctx, x, method, kernel, stride, pad, out, hint)
    op_type = "MaxPool" if method == MAX else "AveragePool"
    if method == AVE:
        # with padding (and no overhang) Caffe counts the padding; without padding, only
        # the clipped window's values (the same as ONNX's count_include_pad=0 then)
        attrs["count_include_pad"] = 1 if any(pad) else 0
    y = ctx.op(op_type, [x], hint=hint, **attrs)
    if ctx.shape(y)[2:] == tuple(out):
        return y
    # ONNX shape inference disagrees with Caffe's size: explicit end padding instead
    ctx.builder.graph.remove(y.producer(), safe=True)
    return _explicit(ctx, x, method, kernel, stride, pad, out, hint)


def _end_pads(shape, kernel, stride, pad, out) -> list[int]:
    return [max(0, (o - 1) * st + k - s - p)
            for s, k, st, p, o in zip(shape, kernel, stride, pad, out, strict=True)]


def _explicit(ctx, x, method, kernel, stride, pad, out, hint):
    """Floor-mode pooling over end padding that makes room for Caffe's last window; an
    average is then rescaled from the full window size to Caffe's clipped one."""
    size = ctx.shape(x)[2:]
    end = _end_pads(size, kernel, stride, pad, out)
    if method == MAX:
        return ctx.op("MaxPool", [x], hint=hint, kernel_shape=kernel, strides=stride,
                      pads=[pad[0], pad[1], end[0], end[1]])
    padded = ctx.op("Pad", [x, ctx.int64s([0, 0, pad[0], pad[1], 0, 0, end[0], end[1]], "pads")])
    y = ctx.op("AveragePool", [padded], kernel_shape=kernel, strides=stride)
    factor = np.ones(out, np.float32)
    for axis in (0, 1):
        for o in range(out[axis]):
            start = o * stride[axis] - pad[axis]
            stop = min(start + kernel[axis], size[axis] + pad[axis])
            index = (o, slice(None)) if axis == 0 else (slice(None), o)
            factor[index] *= kernel[axis] / (stop - start)
    if np.all(factor == 1):
        return y
    return ctx.op("Mul", [y, ctx.const(factor.reshape(1, 1, *out), "window_scale")], hint=hint)


def _stochastic(ctx, x, kernel, stride, pad, out, hint):
    """Test-time stochastic pooling (the GPU kernel; Caffe's CPU code has none):
    sum(x^2) / (FLT_MIN + sum(x)) over each window, clipped to the input."""
    if any(pad):
        raise ConversionError("stochastic pooling takes no padding")
    size = ctx.shape(x)[2:]
    end = _end_pads(size, kernel, stride, [0, 0], out)
    attrs = dict(kernel_shape=kernel, strides=stride, pads=[0, 0, end[0], end[1]],
                 count_include_pad=0)
    squares = ctx.op("AveragePool", [ctx.op("Mul", [x, x])], **attrs)
    sums = ctx.op("AveragePool", [x], **attrs)
    # both are sums divided by the same clipped window size
    counts = np.ones(out, np.float32)
    for axis in (0, 1):
        for o in range(out[axis]):
            start = o * stride[axis]
            n = min(start + kernel[axis], size[axis]) - start
            index = (o, slice(None)) if axis == 0 else (slice(None), o)
            counts[index] *= n
    tiny = ctx.const((FLT_MIN / counts).reshape(1, 1, *out), "flt_min")
    return ctx.op("Div", [squares, ctx.op("Add", [sums, tiny])], hint=hint)


@caffe_layer("Pooling")
def pooling(ctx, layer, bottoms):
    ctx.needs_bottoms(bottoms, 1)
    if len(layer.top) > 1:
        raise UnsupportedError("a second top (the max positions, for unpooling) is not "
                               "supported")
    param = layer.pooling_param
    x = bottoms[0]
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ConversionError(f"needs a 4-D blob (Caffe's check), got shape {list(shape)}")
    if param.pool not in (MAX, AVE, STOCHASTIC):
        raise ConversionError(f"unknown pooling method {param.pool}")
    ceil = param.round_mode == caffe_pb2.PoolingParameter.CEIL and param.ceil_mode
    if param.global_pooling:
        if param.HasField("kernel_size") or param.HasField("kernel_h") or \
                param.HasField("kernel_w"):
            raise ConversionError("global pooling takes no kernel size")
        kernel = [shape[2], shape[3]]
        stride, pad = _two(param, "stride", "stride", 1), _two(param, "pad", "pad", 0)
        if stride != [1, 1] or pad != [0, 0]:
            raise ConversionError("global pooling needs pad 0 and stride 1")
        if param.pool == MAX:
            return ctx.op("GlobalMaxPool", [x])
        if param.pool == AVE:
            return ctx.op("GlobalAveragePool", [x])
    else:
        kernel = _two(param, "kernel", "kernel_size", None)
        stride = _two(param, "stride", "stride", 1)
        pad = _two(param, "pad", "pad", 0)
    if min(kernel) < 1 or min(stride) < 1:
        raise ConversionError(f"kernel {kernel} and stride {stride} must be at least 1")
    if any(pad):
        if param.pool not in (MAX, AVE):
            raise ConversionError("padding is implemented only for average and max pooling")
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise ConversionError(f"pad {pad} must be smaller than the kernel {kernel}")
    return pool(ctx, x, param.pool, kernel, stride, pad, ceil)
