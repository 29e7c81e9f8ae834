"""Temporal (1-D, sequence) layers: input frames x features, batched or not.

Torch7 lays a sequence out as nFrame x frameSize (batch x nFrame x frameSize), features
last; convolutions over time here become 2-D convolutions over a frames x features plane
whose kernel spans every feature, so the stored weight is used as it is (a view).
"""

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def _frames(ctx, x, what):
    shape = ctx.shape(x)
    if len(shape) not in (2, 3):
        raise ConversionError(f"{what} takes a 2-D (frames x features) or 3-D (batch x frames x "
                              f"features) input, got shape {list(shape)}")
    return shape


def _check_window(n_frames, kw, dw):
    if kw < 1 or dw < 1:
        raise ConversionError(f"kernel width {kw} and step {dw} must be positive")
    if n_frames < kw:
        raise ConversionError(f"{n_frames} input frames are fewer than the kernel width {kw}")


def _as_plane(ctx, x, fn):
    """fn applied to x (batch x frames x features) seen as a one-channel image."""
    axes = ctx.int64s([1], "axes")
    return ctx.op("Squeeze", [fn(ctx.op("Unsqueeze", [x, axes], hint="plane")), axes],
                  hint="frames")


@converter("nn.TemporalConvolution")
def temporal_convolution(ctx, module, x):
    """y[t] = bias + W (x[t*dW], ..., x[t*dW + kW - 1]), W: outputFrameSize x kW*inputFrameSize."""
    shape = _frames(ctx, x, "TemporalConvolution")
    n_in, n_out = module.int("inputFrameSize"), module.int("outputFrameSize")
    kw, dw = module.int("kW"), module.int("dW", 1)
    if shape[-1] != n_in:
        raise ConversionError(f"frames of {shape[-1]} features, the layer takes {n_in}")
    _check_window(shape[-2], kw, dw)
    weight = module.tensor("weight")
    if weight is None or weight.size != n_out * kw * n_in:
        raise ConversionError("weight does not match outputFrameSize x kW*inputFrameSize")
    bias = module.tensor("bias")
    # one output plane per output feature, its kernel a kW x inputFrameSize window
    inputs = [ctx.const(weight.reshape(n_out, 1, kw, n_in), "weight")]
    if bias is not None:
        inputs.append(ctx.const(bias.reshape(n_out), "bias"))

    def convolve(x3):
        plane = ctx.op("Unsqueeze", [x3, ctx.int64s([1], "axes")], hint="plane")
        y = ctx.op("Conv", [plane, *inputs], hint="conv", kernel_shape=[kw, n_in],
                   strides=[dw, 1])  # batch x outputFrameSize x frames x 1
        y = ctx.op("Squeeze", [y, ctx.int64s([3], "axes")], hint="frames")
        return ctx.op("Transpose", [y], hint="frames", perm=[0, 2, 1])

    return ctx.batched(x, 3, convolve)


@converter("nn.TemporalMaxPooling")
def temporal_max_pooling(ctx, module, x):
    shape = _frames(ctx, x, "TemporalMaxPooling")
    kw = module.int("kW")
    dw = module.int("dW", kw)
    _check_window(shape[-2], kw, dw)
    return ctx.batched(x, 3, lambda x3: _as_plane(ctx, x3, lambda p: ctx.op(
        "MaxPool", [p], hint="pool", kernel_shape=[kw, 1], strides=[dw, 1])))


@converter("nn.TemporalSubSampling")
def temporal_sub_sampling(ctx, module, x):
    """y[t] = weight * (sum of the kW frames from t*dW) + bias, per feature."""
    shape = _frames(ctx, x, "TemporalSubSampling")
    n_in, kw, dw = module.int("inputFrameSize"), module.int("kW"), module.int("dW", 1)
    if shape[-1] != n_in:
        raise ConversionError(f"frames of {shape[-1]} features, the layer takes {n_in}")
    _check_window(shape[-2], kw, dw)
    weight, bias = module.tensor("weight"), module.tensor("bias")
    if weight is None or weight.size != n_in:
        raise ConversionError("weight does not hold one value per feature")
    ones = ctx.const(np.ones((1, 1, kw, 1), np.float32), "window")
    # the window sums exactly (a ones kernel), then scales as nn does
    total = ctx.batched(x, 3, lambda x3: _as_plane(ctx, x3, lambda p: ctx.op(
        "Conv", [p, ones], hint="window_sum", kernel_shape=[kw, 1], strides=[dw, 1])))
    y = ctx.op("Mul", [total, ctx.const(weight.reshape(n_in), "weight")], hint="scale")
    if bias is not None:
        y = ctx.op("Add", [y, ctx.const(bias.reshape(n_in), "bias")], hint="bias")
    return y


@converter("nn.TemporalRowConvolution")
def temporal_row_convolution(ctx, module, x):
    """Each feature convolved over time with its own kernel (a depthwise 1-D convolution)."""
    shape = _frames(ctx, x, "TemporalRowConvolution")
    n_in, kw, dw = module.int("inputFrameSize"), module.int("kW"), module.int("dW", 1)
    feat_first = module.bool("featFirst")
    n_feat, n_frames = (shape[-2], shape[-1]) if feat_first else (shape[-1], shape[-2])
    if n_feat != n_in:
        raise ConversionError(f"frames of {n_feat} features, the layer takes {n_in}")
    _check_window(n_frames, kw, dw)
    weight = module.tensor("weight")
    if weight is None or weight.size != n_in * kw:
        raise ConversionError("weight does not match inputFrameSize x 1 x kW")
    inputs = [ctx.const(weight.reshape(n_in, 1, kw), "weight")]
    bias = module.tensor("bias")
    if bias is not None:
        inputs.append(ctx.const(bias.reshape(n_in), "bias"))

    def convolve(x3):
        if not feat_first:
            x3 = ctx.op("Transpose", [x3], hint="features_first", perm=[0, 2, 1])
        y = ctx.op("Conv", [x3, *inputs], hint="conv", kernel_shape=[kw], strides=[dw],
                   group=n_in)
        if not feat_first:
            y = ctx.op("Transpose", [y], hint="frames_first", perm=[0, 2, 1])
        return y

    return ctx.batched(x, 3, convolve)


@converter("nn.TemporalDynamicKMaxPooling")
def temporal_dynamic_k_max_pooling(ctx, module, x):
    """The k largest values of every feature over time, kept in their original order;
    k = max(minK, ceil(factor * nFrames))."""
    shape = _frames(ctx, x, "TemporalDynamicKMaxPooling")
    axis = len(shape) - 2
    n_frames = shape[axis]
    min_k = module.int("minK")
    k = max(min_k, math.ceil(module.float("factor", 0.0) * n_frames))
    if n_frames < min_k or not 1 <= k <= n_frames:
        raise ConversionError(f"k = {k} values cannot be taken from {n_frames} frames")
    count = ctx.int64s([k], "k")
    top = ctx.builder.op("TopK", [x, count], {"axis": axis, "largest": 1, "sorted": 1},
                         num_outputs=2, hint="topk")
    picked = top.producer().outputs[1]
    # the picked frame numbers, in increasing order
    in_order = ctx.builder.op("TopK", [picked, count], {"axis": axis, "largest": 0, "sorted": 1},
                              num_outputs=2, hint="frame_order")
    return ctx.op("GatherElements", [x, in_order], hint="kmax", axis=axis)
