"""Normalization: BatchNorm (inference), LayerNorm, GroupNorm."""

import numpy as np

from migrate.core.errors import UnsupportedError
from migrate.readers.pytorch.context import Const, Unavailable
from migrate.readers.pytorch.registry import converter

_STATS = Unavailable("the batch statistics of a normalization are not computed by the "
                     "converted model (inference only)")


def _ones_or(ctx, value, like, count: int, fill: float):
    if value is not None:
        return value
    dtype = like.dtype.numpy() if like.dtype is not None else np.float32
    return ctx.builder.constant(np.full(count, fill, dtype=dtype), "ones" if fill else "zeros")


@converter("aten._native_batch_norm_legit_no_training")
def batch_norm(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
    channels = ctx.shape(x)[1]
    scale = _ones_or(ctx, weight, x, channels, 1.0)
    shift = _ones_or(ctx, bias, x, channels, 0.0)
    # epsilon as PyTorch holds it: a double, added to the variance in float
    out = ctx.op("BatchNormalization", [x, scale, shift, running_mean, running_var],
                 hint="batchnorm", epsilon=float(eps))
    return out, _STATS, _STATS


@converter("aten._native_batch_norm_legit", "aten.native_batch_norm",
           "aten._native_batch_norm_legit_functional", "aten.batch_norm")
def batch_norm_training(ctx, *args, **kwargs):
    raise UnsupportedError("BatchNorm in training mode (statistics of the batch): call "
                           "model.eval() before exporting")


@converter("aten.native_layer_norm")
def layer_norm(ctx, x, normalized_shape, weight, bias, eps):
    dims = [int(d) for d in normalized_shape]
    count = int(np.prod(dims))
    scale = weight if weight is not None else _ones_or(ctx, None, x, count, 1.0)
    if weight is None and len(dims) > 1:
        scale = ctx.op("Reshape", [scale, ctx.int64s(dims)])
    out = ctx.op("LayerNormalization", [x, scale] + ([bias] if bias is not None else []),
                 hint="layernorm", axis=-len(dims), epsilon=float(eps))
    return out, _STATS, _STATS


@converter("aten.native_group_norm")
def group_norm(ctx, x, weight, bias, n, c, hxw, groups, eps):
    """GroupNorm = InstanceNormalization over (N, groups, rest), then the per-channel
    affine (ONNX's GroupNormalization is opset 18, past the common graph's 17)."""
    shape = ctx.shape(x)
    groups = int(groups)
    grouped = ctx.op("Reshape", [x, ctx.int64s([shape[0], groups, -1])])
    ones = _ones_or(ctx, None, x, groups, 1.0)
    zeros = _ones_or(ctx, None, x, groups, 0.0)
    normed = ctx.op("InstanceNormalization", [grouped, ones, zeros], epsilon=float(eps))
    out = ctx.op("Reshape", [normed, ctx.int64s(shape)])
    per_channel = [shape[1]] + [1] * (len(shape) - 2)
    for op_type, param in (("Mul", weight), ("Add", bias)):
        if isinstance(param, Const):
            out = ctx.op(op_type, [out, Const(param.tensor.reshape(per_channel), param.name)])
        elif param is not None:
            out = ctx.op(op_type, [out, ctx.op("Reshape", [param, ctx.int64s(per_channel)])])
    return out, _STATS, _STATS
