"""Spatial pooling (max, average, LP, adaptive) and FeatureLPPooling."""

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.unpooling import remember_max_pool
from migrate.readers.torch7.registry import converter


def _window(module):
    kw, kh = module.int("kW"), module.int("kH")
    return dict(
        kernel_shape=[kh, kw],
        strides=[module.int("dH", kh), module.int("dW", kw)],
        pads=[module.int("padH", 0), module.int("padW", 0)] * 2,
        ceil_mode=int(module.bool("ceil_mode")),
    )


def torch_pooling_pads(in_sizes, kernel, strides, pads, dilations, ceil_mode):
    """Torch7's max pooling output sizes, as explicit ONNX pads (begin..., end...) that give
    exactly those sizes with ceil_mode off.

    nn rounds up in ceil mode, and when any padding is set drops a last window that
    would start in the end padding; a max over the extra end padding changes nothing.
    """
    outs = []
    for size, k, s, p, d in zip(in_sizes, kernel, strides, pads, dilations, strict=True):
        if k < 1 or s < 1 or d < 1 or p < 0:
            raise ConversionError(f"window {kernel}, stride {strides}, padding {pads} and "
                                  f"dilation {dilations} must be positive")
        if p > k // 2:
            raise ConversionError(f"padding {pads} must be at most half the window {kernel}")
        span = size + 2 * p - (d * (k - 1) + 1)
        outs.append((-(-span // s) if ceil_mode else span // s) + 1)
    if any(pads):
        outs = [o - 1 if (o - 1) * s >= size + p else o
                for o, s, size, p in zip(outs, strides, in_sizes, pads, strict=True)]
    if any(o < 1 for o in outs):
        raise ConversionError(f"the window {kernel} is larger than the input {list(in_sizes)}")
    ends = [max((o - 1) * s + d * (k - 1) + 1 - size - p, 0)
            for o, s, d, k, size, p in zip(outs, strides, dilations, kernel, in_sizes, pads,
                                           strict=True)]
    return outs, list(pads) + ends


@converter("nn.SpatialMaxPooling", "nn.SpatialDilatedMaxPooling")
def spatial_max_pooling(ctx, module, x):
    attrs = _window(module)
    attrs["dilations"] = [module.int("dilationH", 1), module.int("dilationW", 1)]

    def pool(x4):
        if attrs.pop("ceil_mode"):
            # nn's sizes as explicit end padding: ONNX's ceil_mode does not drop a last
            # window that starts in the padding, as nn does
            _, attrs["pads"] = torch_pooling_pads(
                ctx.shape(x4)[2:], attrs["kernel_shape"], attrs["strides"], attrs["pads"][:2],
                attrs["dilations"], True)
        # an nn.SpatialMaxUnpooling may later use this pooling's indices
        return remember_max_pool(ctx, module, ctx.op("MaxPool", [x4], hint="pool", **attrs))

    return ctx.batched(x, 4, pool)


@converter("nn.SpatialAveragePooling")
def spatial_average_pooling(ctx, module, x):
    attrs = _window(module)
    # Torch7 counts the zero padding unless told otherwise (count_include_pad=true),
    # and models saved before the field existed always counted it.
    attrs["count_include_pad"] = int(module.bool("count_include_pad", True))
    if module.has("divide") and not module.bool("divide"):
        # divide=false: a sum pooling; AveragePool times the window size.
        y = ctx.batched(x, 4, lambda x4: ctx.op("AveragePool", [x4], hint="avgpool", **attrs))
        k = attrs["kernel_shape"][0] * attrs["kernel_shape"][1]
        return ctx.op("Mul", [y, ctx.scalar(float(k), "window")], hint="scale")
    return ctx.batched(x, 4, lambda x4: ctx.op("AveragePool", [x4], hint="avgpool", **attrs))


@converter("nn.SpatialLPPooling")
def spatial_lp_pooling(ctx, module, x):
    # an nn.Sequential subclass (Power or Square, SpatialAveragePooling, MulConstant,
    # Power or Sqrt) whose children do the work
    for child in module.children():
        x = ctx.convert(child, x)
    return x


# outputs of one adaptive pooling axis (a damaged size field must not make huge tables)
MAX_ADAPTIVE_OUTPUTS = 1 << 16


def _adaptive_windows(size, out, exact_start):
    """THNN's adaptive windows [start, end) along one axis of `size` -> `out` values,
    computed in float32 as THNN does."""
    if not 1 <= out <= MAX_ADAPTIVE_OUTPUTS:
        raise ConversionError(f"output size {out} is outside 1..{MAX_ADAPTIVE_OUTPUTS}")
    f32 = np.float32
    i = np.arange(out + 1, dtype=np.int64)
    if exact_start:  # SpatialAdaptiveAveragePooling: (float)(i * size) / out
        edges = (i * size).astype(f32) / f32(out)
    else:  # SpatialAdaptiveMaxPooling: (float)i / out * size
        edges = i.astype(f32) / f32(out) * f32(size)
    starts, ends = np.floor(edges[:-1]), np.ceil(edges[1:])
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _pool_axis(ctx, x, axis, windows, average):
    """Max or mean over each window of one axis (2-D maps: axis 2 or 3)."""
    op = "AveragePool" if average else "MaxPool"

    def along(k, step):
        return dict(kernel_shape=[k, 1] if axis == 2 else [1, k],
                    strides=[step, 1] if axis == 2 else [1, step])

    sizes = sorted({end - start for start, end in windows})
    starts = [start for start, _ in windows]
    steps = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    if len(sizes) == 1 and len(steps) <= 1 and starts[0] == 0:
        # equal windows at a fixed step: an ordinary pooling along this axis
        k, step = sizes[0], steps.pop() if steps else 1
        if (k, step) == (1, 1):
            return x
        return ctx.op(op, [x], hint="adaptive_pool", **along(k, step))
    # windows of a few sizes at irregular starts: pool every start with each size, then
    # pick each window's result (ops do not grow with the number of windows)
    pooled, first = [], {}
    for k in sizes:
        first[k] = sum(ctx.shape(p)[axis] for p in pooled)
        pooled.append(x if k == 1 else ctx.op(op, [x], hint="window_pool", **along(k, 1)))
    every = pooled[0] if len(pooled) == 1 else ctx.op("Concat", pooled, hint="windows",
                                                      axis=axis)
    picks = [first[end - start] + start for start, end in windows]
    return ctx.op("Gather", [every, ctx.int64s(picks, "windows")], hint="adaptive_pool",
                  axis=axis)


def _adaptive_pooling(ctx, module, x, average):
    """Output (H, W) with window i spanning [floor(i*in/out), ceil((i+1)*in/out)); a max
    (or mean) over such a rectangle is the max (mean) over its rows of the max (mean)
    over its columns, so each axis is pooled in turn."""
    out_w, out_h = module.int("W"), module.int("H")

    def pool(x4):
        h, w = ctx.shape(x4)[2:]
        y = _pool_axis(ctx, x4, 2, _adaptive_windows(h, out_h, average), average)
        return _pool_axis(ctx, y, 3, _adaptive_windows(w, out_w, average), average)

    return ctx.batched(x, 4, pool)


@converter("nn.SpatialAdaptiveMaxPooling")
def spatial_adaptive_max_pooling(ctx, module, x):
    return _adaptive_pooling(ctx, module, x, average=False)


@converter("nn.SpatialAdaptiveAveragePooling")
def spatial_adaptive_average_pooling(ctx, module, x):
    return _adaptive_pooling(ctx, module, x, average=True)


@converter("nn.FeatureLPPooling")
def feature_lp_pooling(ctx, module, x):
    """y = (sum over `width` neighbouring features of x^p)^(1/p), every `stride` features
    (nn's kernel: pow without abs)."""
    width, stride = module.int("width"), module.int("stride")
    power = module.float("power")
    batch_mode = module.bool("batch_mode")
    shape = ctx.shape(x)
    rank = len(shape)
    if batch_mode and not 2 <= rank <= 4 or not batch_mode and not 1 <= rank <= 3:
        raise ConversionError(f"a {rank}-D input (batch_mode={batch_mode}): nn takes 2-4 "
                              "dims in batch mode, 1-3 otherwise")
    # nn's layout: [batch][feature][opt1][opt2]
    lead = 1 if batch_mode else 0
    batch, n_feat, rest = (shape[0] if batch_mode else 1), shape[lead], math.prod(shape[lead + 1:])
    if width < 1 or stride < 1 or n_feat < width:
        raise ConversionError(f"width {width}, stride {stride} over {n_feat} features")
    if power == 0.0:
        raise ConversionError("power 0 has no inverse (nn takes the 1/power root)")
    powered = (ctx.op("Mul", [x, x], hint="square") if power == 2.0 else
               ctx.op("Pow", [x, ctx.scalar(power, "power")], hint="pow"))
    plane = ctx.op("Reshape", [powered, ctx.int64s([batch, 1, n_feat, rest])], hint="plane")
    # a ones kernel sums the window exactly
    total = ctx.op("Conv", [plane, ctx.const(np.ones((1, 1, width, 1), np.float32), "window")],
                   hint="window_sum", kernel_shape=[width, 1], strides=[stride, 1])
    root = (ctx.op("Sqrt", [total], hint="sqrt") if power == 2.0 else
            ctx.op("Pow", [total, ctx.scalar(1.0 / power, "inv_power")], hint="root"))
    out_shape = list(shape)
    out_shape[lead] = (n_feat - width) // stride + 1
    return ctx.op("Reshape", [root, ctx.int64s(out_shape)], hint="features")
