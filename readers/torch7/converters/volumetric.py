"""Volumetric (3-D) layers: batch x planes x T x H x W (or one sample without the batch)."""

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.padding import crop_and_pad
from migrate.readers.torch7.converters.pooling import torch_pooling_pads
from migrate.readers.torch7.converters.unpooling import remember_max_pool
from migrate.readers.torch7.registry import converter


def _thw(module, prefix, default=None, fallback=None):
    """A (T, H, W) triple of fields, e.g. kT, kH, kW; `fallback` names older field names."""
    values = []
    for axis in "THW":
        value = module.get(prefix + axis)
        if value is None and fallback is not None:
            value = module.get(fallback + axis)
        if value is None:
            if default is None:
                raise ConversionError(f"field '{prefix}{axis}' is missing")
            value = default
        values.append(int(value))
    return values


def _weight(module, shape, what):
    weight = module.tensor("weight")
    if weight is None or weight.size != math.prod(shape):
        raise ConversionError(f"{what} weight does not match its planes and kernel {shape}")
    return weight.reshape(shape)


def _bias_inputs(ctx, module, n):
    bias = module.tensor("bias")
    if bias is None:
        return []
    if bias.size != n:
        raise ConversionError(f"bias has {bias.size} values for {n} output planes")
    return [ctx.const(bias.reshape(n), "bias")]


@converter("nn.VolumetricConvolution", "nn.VolumetricDilatedConvolution")
def volumetric_convolution(ctx, module, x):
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    kernel = _thw(module, "k")
    strides = _thw(module, "d", 1)
    pads = _thw(module, "pad", 0)
    dilations = _thw(module, "dilation", 1)
    weight = _weight(module, [n_out, n_in, *kernel], "convolution")
    inputs = [ctx.const(weight, "weight"), *_bias_inputs(ctx, module, n_out)]
    return ctx.batched(x, 5, lambda x5: ctx.op(
        "Conv", [x5, *inputs], hint="conv", kernel_shape=kernel, strides=strides,
        pads=pads * 2, dilations=dilations))


def _full_convolution_adjustments(ctx, module, x, kernel, strides, pads):
    """nn: a table input {x, target} sets the adjustments so the output takes the
    target's size; otherwise adjT/adjH/adjW."""
    if isinstance(x, list):
        if len(x) != 2:
            raise ConversionError("expects a tensor or a table {input, target}")
        x, target = x
        sizes = ctx.shape(target)[-3:]
        adjust = [(t + 2 * p - k) % s for t, k, p, s in zip(sizes, kernel, pads, strides,
                                                           strict=True)]
        return x, adjust
    return x, _thw(module, "adj", 0)


@converter("nn.VolumetricFullConvolution")
def volumetric_full_convolution(ctx, module, x):
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    kernel = _thw(module, "k")
    strides = _thw(module, "d", 1)
    pads = _thw(module, "pad", 0, fallback="p")
    x, adjust = _full_convolution_adjustments(ctx, module, x, kernel, strides, pads)
    if not module.has("adjW"):
        # saved before nn had adjustments: the weight was nOutputPlane x nInputPlane
        # (nn transposes it on load)
        weight = _weight(module, [n_out, n_in, *kernel], "full convolution")
        weight = np.ascontiguousarray(weight.transpose(1, 0, 2, 3, 4))
    else:
        weight = _weight(module, [n_in, n_out, *kernel], "full convolution")
    if any(a >= s for a, s in zip(adjust, strides, strict=True)):
        raise ConversionError(f"adjustments {adjust} must be smaller than the strides {strides}")
    inputs = [ctx.const(weight, "weight"), *_bias_inputs(ctx, module, n_out)]
    return ctx.batched(x, 5, lambda x5: ctx.op(
        "ConvTranspose", [x5, *inputs], hint="deconv", kernel_shape=kernel, strides=strides,
        pads=pads * 2, output_padding=adjust))


def volumetric_max_pool_attributes(ctx, module, x5):
    kernel = _thw(module, "k")
    strides = _thw(module, "d", None)
    strides = [s if s else k for s, k in zip(strides, kernel, strict=True)]
    pads = _thw(module, "pad", 0)
    dilations = _thw(module, "dilation", 1)
    if any(p >= 2 and d >= 2 for p, d in zip(pads, dilations, strict=True)):
        # nn's kernel shrinks a border window by its padding, not by the taps the
        # padding removes: it skips real input values there (no standard pooling does)
        raise ConversionError(f"dilation {dilations} with padding {pads} of 2 or more: nn's "
                              "kernel skips border taps there, which no MaxPool reproduces")
    _, onnx_pads = torch_pooling_pads(ctx.shape(x5)[2:], kernel, strides, pads, dilations,
                                      module.bool("ceil_mode"))
    return dict(kernel_shape=kernel, strides=strides, pads=onnx_pads, dilations=dilations)


@converter("nn.VolumetricMaxPooling", "nn.VolumetricDilatedMaxPooling")
def volumetric_max_pooling(ctx, module, x):
    def pool(x5):
        y = ctx.op("MaxPool", [x5], hint="pool",
                   **volumetric_max_pool_attributes(ctx, module, x5))
        return remember_max_pool(ctx, module, y)

    return ctx.batched(x, 5, pool)


@converter("nn.VolumetricAveragePooling")
def volumetric_average_pooling(ctx, module, x):
    # nn's Lua passes no padding, floor rounding and count_include_pad to the kernel,
    # whatever fields the module has.
    kernel = _thw(module, "k")
    strides = [s if s else k for s, k in zip(_thw(module, "d", 0), kernel, strict=True)]
    return ctx.batched(x, 5, lambda x5: ctx.op(
        "AveragePool", [x5], hint="avgpool", kernel_shape=kernel, strides=strides))


@converter("nn.VolumetricReplicationPadding")
def volumetric_replication_padding(ctx, module, x):
    """Border values repeated outward (negative amounts crop), on the last three dims."""
    left = module.int("pleft")
    amounts = {name: module.int(name, left)
               for name in ("pright", "ptop", "pbottom", "pfront", "pback")}
    rank = len(ctx.shape(x))
    if rank not in (4, 5):
        raise ConversionError(f"expects a 4-D or 5-D input, got {rank}-D")
    before = {rank - 3: amounts["pfront"], rank - 2: amounts["ptop"], rank - 1: left}
    after = {rank - 3: amounts["pback"], rank - 2: amounts["pbottom"],
             rank - 1: amounts["pright"]}
    return crop_and_pad(ctx, x, before, after, mode="edge")


CUDNN = "soumith/cudnn.torch"


def _cudnn_pooling_attributes(ctx, module, x5, average):
    """cudnn._Pooling3D: padding on every side, output ceil/floor((in + 2 pad - k) / d + 1)
    (no nn rule dropping a last window that starts in the padding)."""
    kernel, strides, pads = _thw(module, "k"), _thw(module, "d", 0), _thw(module, "pad", 0)
    strides = [s if s else k for s, k in zip(strides, kernel, strict=True)]
    in_sizes = ctx.shape(x5)[2:]
    ends = []
    for size, k, s, p in zip(in_sizes, kernel, strides, pads, strict=True):
        span = size + 2 * p - k
        if span < 0 or p >= k:
            raise ConversionError(f"window {kernel} with padding {pads} does not fit the "
                                  f"input {list(in_sizes)}")
        out = (-(-span // s) if module.bool("ceil_mode") else span // s) + 1
        if (out - 1) * s >= size + p:
            # ceil mode made a window of padding only (nn would drop it)
            raise ConversionError(f"ceil mode makes a last window of padding only along an "
                                  f"axis of {size} (window {kernel}, padding {pads})")
        ends.append(max((out - 1) * s + k - size - p, 0))
    attrs = dict(kernel_shape=kernel, strides=strides, pads=pads + ends)
    if average:
        # CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING divides by the whole window
        attrs["count_include_pad"] = 1
    return attrs


@converter("cudnn.VolumetricMaxPooling", package=CUDNN)
def cudnn_volumetric_max_pooling(ctx, module, x):
    def pool(x5):
        y = ctx.op("MaxPool", [x5], hint="pool",
                   **_cudnn_pooling_attributes(ctx, module, x5, average=False))
        return remember_max_pool(ctx, module, y)

    return ctx.batched(x, 5, pool)


@converter("cudnn.VolumetricAveragePooling", package=CUDNN)
def cudnn_volumetric_average_pooling(ctx, module, x):
    return ctx.batched(x, 5, lambda x5: ctx.op(
        "AveragePool", [x5], hint="avgpool",
        **_cudnn_pooling_attributes(ctx, module, x5, average=True)))
