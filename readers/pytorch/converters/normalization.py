"""Normalization: BatchNorm (inference), LayerNorm, GroupNorm."""

import numpy as np

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


def _batch_statistics(ctx, x, weight, bias, eps):
    """Normalization by the batch's own statistics (per channel, over the batch and
    spatial dims): a BatchNorm without running statistics, and InstanceNorm, which
    PyTorch computes as such a BatchNorm over a batch of one (N*C channels)."""
    shape = ctx.shape(x)
    channels = shape[1]
    if shape[0] == 1 and len(shape) >= 3:  # one sample: exactly an instance norm
        return ctx.op("InstanceNormalization", [x, _ones_or(ctx, weight, x, channels, 1.0),
                                                _ones_or(ctx, bias, x, channels, 0.0)],
                      hint="norm", epsilon=float(eps))
    axes = [0] + list(range(2, len(shape)))
    mean = ctx.op("ReduceMean", [x], axes=axes, keepdims=1)
    centered = ctx.op("Sub", [x, mean])
    variance = ctx.op("ReduceMean", [ctx.op("Mul", [centered, centered])], axes=axes,
                      keepdims=1)
    deviation = ctx.op("Sqrt", [ctx.op("Add", [variance, ctx.scalar(float(eps), x)])])
    out = ctx.op("Div", [centered, deviation], hint="norm")
    per_channel = [channels] + [1] * (len(shape) - 2)
    for op_type, param in (("Mul", weight), ("Add", bias)):
        if isinstance(param, Const):
            out = ctx.op(op_type, [out, Const(param.tensor.reshape(per_channel), param.name)])
        elif param is not None:
            out = ctx.op(op_type, [out, ctx.op("Reshape", [param, ctx.int64s(per_channel)])])
    return out


@converter("aten._native_batch_norm_legit", "aten.native_batch_norm",
           "aten._native_batch_norm_legit_functional")
def batch_norm_general(ctx, x, weight, bias, *rest):
    """(input, weight, bias, running_mean, running_var, training, momentum, eps), or
    without the running statistics (`.no_stats`): training=True means the batch's own
    statistics (InstanceNorm, BatchNorm(track_running_stats=False)); a model in
    training mode also updates its buffers, which the program's outputs then say."""
    if len(rest) == 5:
        running_mean, running_var, training, _, eps = rest
    else:
        (training, _, eps), running_mean, running_var = rest, None, None
    count = 5 if "functional" in str(ctx.node.target) else 3
    if training or running_mean is None:
        out = _batch_statistics(ctx, x, weight, bias, eps)
    else:
        out = batch_norm(ctx, x, weight, bias, running_mean, running_var, 0.0, eps)[0]
    return (out,) + (_STATS,) * (count - 1)


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
