"""Element-wise activations and the power/exp/log family (NeuronLayer subclasses)."""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.caffe.registry import caffe_layer


def _one(ctx, bottoms):
    ctx.needs_bottoms(bottoms, 1)
    return bottoms[0]


@caffe_layer("ReLU")
def relu(ctx, layer, bottoms):
    x = _one(ctx, bottoms)
    slope = layer.relu_param.negative_slope
    if slope == 0:
        return ctx.op("Relu", [x])
    return ctx.op("LeakyRelu", [x], alpha=float(slope))


@caffe_layer("ReLU6")
def relu6(ctx, layer, bottoms):
    """The forks' ReLU6 (MobileNet ports): min(max(x, 0), 6)."""
    return ctx.op("Clip", [_one(ctx, bottoms), ctx.scalar(0.0), ctx.scalar(6.0)])


@caffe_layer("Clip")
def clip(ctx, layer, bottoms):
    param = layer.clip_param
    return ctx.op("Clip", [_one(ctx, bottoms), ctx.scalar(param.min), ctx.scalar(param.max)])


@caffe_layer("Sigmoid")
def sigmoid(ctx, layer, bottoms):
    return ctx.op("Sigmoid", [_one(ctx, bottoms)])


@caffe_layer("TanH")
def tanh(ctx, layer, bottoms):
    return ctx.op("Tanh", [_one(ctx, bottoms)])


@caffe_layer("AbsVal")
def absval(ctx, layer, bottoms):
    return ctx.op("Abs", [_one(ctx, bottoms)])


@caffe_layer("BNLL")
def bnll(ctx, layer, bottoms):
    """log(1 + exp(x)), computed stably by Caffe: softplus."""
    return ctx.op("Softplus", [_one(ctx, bottoms)])


@caffe_layer("ELU")
def elu(ctx, layer, bottoms):
    return ctx.op("Elu", [_one(ctx, bottoms)], alpha=float(layer.elu_param.alpha))


@caffe_layer("Swish")
def swish(ctx, layer, bottoms):
    """x * sigmoid(beta * x)."""
    x = _one(ctx, bottoms)
    beta = layer.swish_param.beta
    inner = x if beta == 1 else ctx.op("Mul", [x, ctx.scalar(beta)])
    return ctx.op("Mul", [x, ctx.op("Sigmoid", [inner])])


@caffe_layer("Threshold")
def threshold(ctx, layer, bottoms):
    """1 where x > threshold, else 0."""
    x = _one(ctx, bottoms)
    above = ctx.op("Greater", [x, ctx.scalar(layer.threshold_param.threshold)])
    return ctx.op("Where", [above, ctx.scalar(1.0), ctx.scalar(0.0)])


def _affine(ctx, x, scale: float, shift: float):
    """shift + scale * x, leaving out what is the identity."""
    if scale != 1:
        x = ctx.op("Mul", [x, ctx.scalar(scale)])
    if shift != 0:
        x = ctx.op("Add", [x, ctx.scalar(shift)])
    return x


@caffe_layer("Power")
def power(ctx, layer, bottoms):
    """(shift + scale * x) ^ power; Caffe gives a constant when power or scale is 0."""
    x = _one(ctx, bottoms)
    param = layer.power_param
    p, scale, shift = float(param.power), float(param.scale), float(param.shift)
    if p == 0 or scale == 0:
        value = 1.0 if p == 0 else float(np.float32(shift) ** np.float32(p))
        zeros = ctx.op("Mul", [x, ctx.scalar(0.0)])
        return ctx.op("Add", [zeros, ctx.scalar(value)])
    y = _affine(ctx, x, scale, shift)
    if p == 1:
        return y if y is not x else ctx.op("Identity", [x])
    return ctx.op("Pow", [y, ctx.scalar(p)])


@caffe_layer("Exp")
def exp(ctx, layer, bottoms):
    """base ^ (shift + scale * x); base -1 means e."""
    x = _one(ctx, bottoms)
    param = layer.exp_param
    base = float(param.base)
    if base != -1 and base <= 0:
        raise ConversionError(f"base {base} must be positive (or -1 for e)")
    log_base = 1.0 if base == -1 else math.log(base)
    y = _affine(ctx, x, log_base * param.scale, log_base * param.shift)
    return ctx.op("Exp", [y])


@caffe_layer("Log")
def log(ctx, layer, bottoms):
    """log_base(shift + scale * x); base -1 means e."""
    x = _one(ctx, bottoms)
    param = layer.log_param
    base = float(param.base)
    if base != -1 and base <= 0:
        raise ConversionError(f"base {base} must be positive (or -1 for e)")
    y = ctx.op("Log", [_affine(ctx, x, float(param.scale), float(param.shift))])
    if base == -1:
        return y
    return ctx.op("Mul", [y, ctx.scalar(1.0 / math.log(base))])


@caffe_layer("PReLU")
def prelu(ctx, layer, bottoms):
    """max(x, 0) + slope[c] * min(x, 0) over the channel axis 1 (one shared slope with
    channel_shared)."""
    x = _one(ctx, bottoms)
    shape = ctx.shape(x)
    channels = shape[1] if len(shape) > 1 else 1
    shared = layer.prelu_param.channel_shared
    # a shared slope is a 0-axis blob (PReLULayer), some writers store it as [1]
    (slope,) = ctx.blobs((ctx.stored_shapes()[:1] or [[]])[0] if shared else [channels])
    if shared and slope.size != 1:
        raise ConversionError(f"a shared slope must be one value, got {slope.size}")
    slope = np.ascontiguousarray(slope, dtype=np.float32)
    if not shared and len(shape) > 2:
        slope = slope.reshape(channels, *([1] * (len(shape) - 2)))
    return ctx.op("PRelu", [x, ctx.const(slope, "slope")])


@caffe_layer("Dropout")
def dropout(ctx, layer, bottoms):
    """The identity at test time (Caffe scales during training)."""
    return _one(ctx, bottoms)
