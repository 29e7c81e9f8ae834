"""Pooling: max (padding that never wins, ceil mode, dilation), average (with and without
the padding counted, ceil mode: exact divisors), global pooling as reductions."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow.converters import pool_nd
from migrate.writers.tensorflow.converters.conv import (
    choose_padding,
    finish_spatial,
    pad_spatial,
    pads_2d,
    spatial_input,
    window_attrs,
)
from migrate.writers.tensorflow.registry import op_lowering
from migrate.writers.tensorflow.window import effective_end, is_same

LOWEST = float(np.finfo(np.float32).min)  # padding no maximum ever picks


def _setup(ctx, node):
    x, rank = spatial_input(ctx, node.inputs[0], "pooling needs channels last")
    kernel, strides, dilations = window_attrs(ctx, node, rank)
    begin, end = pads_2d(ctx, node, rank, ctx.shape(node.inputs[0]), kernel, strides,
                         dilations)
    out_shape = ctx.shape(node.outputs[0])
    out_hw = (1, out_shape[2]) if rank == 3 else tuple(out_shape[2:])
    return x, rank, kernel, strides, dilations, begin, end, out_hw


@op_lowering("MaxPool")
def max_pool(ctx, node):
    if pool_nd.needs_nd(ctx, node):  # 3-D, or the indices of the maxima
        pool_nd.max_pool_nd(ctx, node)
        return
    x, rank, kernel, strides, dilations, begin, end, out_hw = _setup(ctx, node)
    n, c = x.shape[0], x.shape[3]
    stored = (n, *out_hw, c)
    if any(d > 1 for d in dilations):
        y = _dilated_max(ctx, x, kernel, strides, dilations, begin, out_hw)
    else:
        padding, x = choose_padding(ctx, x, begin, end, kernel, strides, [1, 1], out_hw,
                                    pad_value=LOWEST)
        y = ctx.emit("MAX_POOL_2D", [x], stored, hint="pool", padding=padding,
                     stride=tuple(strides), filter=tuple(kernel), activation="NONE")
    finish_spatial(ctx, node, y, rank)


def _dilated_max(ctx, x, kernel, strides, dilations, begin, out_hw):
    """No builtin pools with gaps: the maximum of one strided slice per kernel tap."""
    if kernel[0] * kernel[1] > 1024:
        raise ctx.error(f"dilated max pooling with a {kernel[0]}x{kernel[1]} window is too "
                        "large to unroll (at most 1024 taps)")
    ends = [effective_end(size, k, s, d, b, o) for size, k, s, d, b, o in zip(
        x.shape[1:3], kernel, strides, dilations, begin, out_hw, strict=True)]
    x = pad_spatial(ctx, x, begin, ends, LOWEST)
    n, c = x.shape[0], x.shape[3]
    stored = (n, *out_hw, c)
    result = None
    step = ctx.int32s((1, strides[0], strides[1], 1), "strides")
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            top, left = i * dilations[0], j * dilations[1]
            tap = ctx.emit("STRIDED_SLICE", [
                x, ctx.int32s((0, top, left, 0), "begin"),
                ctx.int32s((n, top + (out_hw[0] - 1) * strides[0] + 1,
                            left + (out_hw[1] - 1) * strides[1] + 1, c), "end"), step],
                stored, hint="tap", begin_mask=0, end_mask=0)
            result = tap if result is None else ctx.emit("MAXIMUM", [result, tap], stored,
                                                         hint="pool")
    return result


def _divisors(size, kernel, stride, begin, end, out, include_pad: bool) -> np.ndarray:
    """How many cells each window averages over, as Torch and ONNX count them: with
    include_pad, the padding counts but not cells past it (ceil mode); without, only
    cells of the input."""
    counts = []
    for o in range(out):
        start = o * stride - begin
        if include_pad:
            counts.append(min(start + kernel, size + end) - start)
        else:
            counts.append(min(start + kernel, size) - max(start, 0))
    return np.asarray(counts, np.float64)


@op_lowering("AveragePool")
def average_pool(ctx, node):
    if pool_nd.needs_nd(ctx, node):
        pool_nd.average_pool_nd(ctx, node)
        return
    x, rank, kernel, strides, dilations, begin, end, out_hw = _setup(ctx, node)
    if any(d > 1 for d in dilations):
        raise ctx.error("dilated average pooling is not supported for TensorFlow/LiteRT")
    include_pad = bool(node.attributes.get_int("count_include_pad", 0))
    n, h, w, c = x.shape
    stored = (n, *out_hw, c)
    attrs = dict(stride=tuple(strides), filter=tuple(kernel), activation="NONE")
    ends = [effective_end(size, k, s, 1, b, o) for size, k, s, b, o in zip(
        (h, w), kernel, strides, begin, out_hw, strict=True)]
    if not include_pad and (any(begin) or any(ends)) and all(
            is_same(size, k, s, 1, b, e, o) for size, k, s, b, e, o in zip(
                (h, w), kernel, strides, begin, ends, out_hw, strict=True)):
        # SAME averages over the cells inside the input: exactly count_include_pad=0
        y = ctx.emit("AVERAGE_POOL_2D", [x], stored, hint="pool", padding="SAME", **attrs)
        finish_spatial(ctx, node, y, rank)
        return
    y = ctx.emit("AVERAGE_POOL_2D", [pad_spatial(ctx, x, begin, ends)], stored, hint="pool",
                 padding="VALID", **attrs)
    rows = _divisors(h, kernel[0], strides[0], begin[0], end[0], out_hw[0], include_pad)
    cols = _divisors(w, kernel[1], strides[1], begin[1], end[1], out_hw[1], include_pad)
    correction = kernel[0] * kernel[1] / np.outer(rows, cols)
    if not np.all(correction == 1.0):
        # VALID divides every window by its full size; windows over fewer cells are
        # scaled back to their own count
        factor = ctx.const(correction.astype(np.float32)[:, :, None], "divisor")
        y = ctx.emit("MUL", [y, factor], stored, hint="pool")
    finish_spatial(ctx, node, y, rank)


def _global(kind: str):
    def lower(ctx, node):
        value = node.inputs[0]
        rank = len(ctx.shape(value))
        tensor, perm = ctx.permutation(value)
        axes = sorted(perm.index(a) for a in range(2, rank))
        shape = tuple(1 if perm[j] >= 2 else tensor.shape[j] for j in range(rank))
        y = ctx.emit(kind, [tensor, ctx.int32s(axes, "axes")], shape, hint="pool",
                     keep_dims=True, axes=tuple(axes))
        ctx.bind_permuted(node.outputs[0], y, perm)

    return lower


op_lowering("GlobalAveragePool")(_global("MEAN"))
op_lowering("GlobalMaxPool")(_global("REDUCE_MAX"))
