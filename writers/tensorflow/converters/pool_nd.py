"""Pooling beyond LiteRT's 2-D builtins: 3-D windows, dilated windows of any rank, the
indices of the maxima, and MaxUnpool.

- 3-D max / average pooling is separable: a 2-D pooling over (H, W) of every depth
  slice, then a (kd x 1) pooling over the depth (the max of maxima is the max; the
  average of averages over a box is its average, the divisor of a box without padding
  counted being the product of its per-axis counts, so the padding correction is a
  product too).
- Dilated max pooling and MaxPool's indices are made of the window's taps: every tap is
  a strided view of the lowest-float padded input; the max is the MAXIMUM of the views,
  and the index of a window's max is that of its first tap (scan order, as Torch and
  ONNX Runtime pick) equal to the max: SELECT_V2 over the taps in reverse order, plus
  where the window starts and where its plane starts (ONNX's flat N x C x spatial index).
- MaxUnpool scatters the values into zeros at those indices (SCATTER_ND), turned into
  channels-last positions first; SCATTER_ND adds values whose indices repeat, so it is
  used when they cannot repeat: indices of a MaxPool whose windows do not overlap.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.converters.indexing import with_scalar
from migrate.writers.tensorflow.converters.shape import strided_slice
from migrate.writers.tensorflow.converters.volumetric import (
    pad_channels_last,
    window_geometry,
)
from migrate.writers.tensorflow.registry import op_lowering
from migrate.writers.tensorflow.window import onnx_pads

LOWEST = float(np.finfo(np.float32).min)  # padding no maximum ever picks
MAX_TAPS = 1024  # each tap is an op or three: a damaged kernel size must not unroll


def wants_indices(node) -> bool:
    if len(node.outputs) < 2 or node.outputs[1] is None:
        return False
    return bool(node.outputs[1].uses()) or node.outputs[1].is_graph_output()


def needs_nd(ctx, node) -> bool:
    """Whether a pooling node is for this module (else the 1-D/2-D builtins take it)."""
    return len(ctx.shape(node.inputs[0])) == 5 or (node.op_type == "MaxPool"
                                                    and wants_indices(node))


def _geometry(ctx, node):
    kernel = list(node.attributes.get_ints("kernel_shape"))
    strides, dilations, begin, ends, out_sizes = window_geometry(ctx, node, kernel)
    return kernel, strides, dilations, begin, ends, out_sizes


def _separable(ctx, x, kind: str, kernel, strides, out_sizes):
    """`kind` pooling (VALID) of a padded (N, D, H, W, C) tensor: (H, W) of every depth
    slice, then the depth."""
    n, d, h, w, c = x.shape
    od, oh, ow = out_sizes
    y = ctx.reshape(x, (n * d, h, w, c), hint="slices")
    y = ctx.emit(kind, [y], (n * d, oh, ow, c), x.dtype, hint="pool_hw", padding="VALID",
                 stride=tuple(strides[1:]), filter=tuple(kernel[1:]), activation="NONE")
    y = ctx.reshape(y, (n, d, oh * ow, c), hint="depth")
    y = ctx.emit(kind, [y], (n, od, oh * ow, c), x.dtype, hint="pool_d", padding="VALID",
                 stride=(strides[0], 1), filter=(kernel[0], 1), activation="NONE")
    return ctx.reshape(y, (n, od, oh, ow, c), hint="pool")


def _taps(ctx, x, kernel, strides, dilations, out_sizes):
    """(tap, strided view) of every window tap of a padded (N, *spatial, C) tensor."""
    if math.prod(kernel) > MAX_TAPS:
        raise ctx.error(f"max pooling with a {'x'.join(map(str, kernel))} window is too "
                        f"large to unroll (at most {MAX_TAPS} taps)")
    n, c = x.shape[0], x.shape[-1]
    for tap in itertools.product(*(range(k) for k in kernel)):
        starts = [j * d for j, d in zip(tap, dilations, strict=True)]
        ends = [b + (o - 1) * s + 1 for b, o, s in zip(starts, out_sizes, strides,
                                                         strict=True)]
        yield tap, strided_slice(ctx, x, [0, *starts, 0], [n, *ends, c], [1, *strides, 1],
                                 hint="tap")


@op_lowering("MaxUnpool")
def max_unpool(ctx, node):
    x_value, index_value = node.inputs[:2]
    out_shape = ctx.shape(node.outputs[0])
    rank = len(out_shape)
    pool = index_value.producer()
    if pool is None or pool.op_type != "MaxPool" or pool.outputs[1] is not index_value \
            or not _disjoint_windows(pool):
        raise ctx.error("MaxUnpool's indices must come from a MaxPool whose windows do not "
                        "overlap for TensorFlow/LiteRT (its SCATTER_ND adds repeated indices)")
    values, perm = ctx.permutation(x_value)
    index = ctx.stored(index_value, perm, "MaxUnpool's indices in the values' layout")
    if index.dtype != "int32":
        index = ctx.emit("CAST", [index], index.shape, "int32", hint="index",
                         in_dtype=index.dtype, out_dtype="int32")
    n, c = out_shape[:2]
    plane = math.prod(out_shape[2:])
    count = math.prod(values.shape)
    index = ctx.reshape(index, (count,), hint="index")  # 1-D: every kernel broadcasts
    # ONNX's flat index ((n * C + c) * S + s) -> channels last ((n * S + s) * C + c)
    within = index
    if n > 1:
        within = with_scalar(ctx, "FLOOR_MOD", index, c * plane, "in_image")
    if c > 1:
        position = with_scalar(ctx, "FLOOR_MOD", within, plane, "position")
        channel = with_scalar(ctx, "FLOOR_DIV", within, plane, "channel")
        moved = with_scalar(ctx, "MUL", position, c, "position")
        moved = ctx.emit("ADD", [moved, channel], index.shape, "int32", hint="nhwc")
        if n > 1:
            image = ctx.emit("SUB", [index, within], index.shape, "int32", hint="image")
            moved = ctx.emit("ADD", [moved, image], index.shape, "int32", hint="nhwc")
        index = moved
    total = math.prod(out_shape)
    flat = ctx.emit("SCATTER_ND", [ctx.reshape(index, (count, 1), hint="index"),
                                   ctx.reshape(values, (count,), hint="values"),
                                   ctx.int32s([total], "shape")],
                    (total,), values.dtype, hint="unpool")
    perm_out = lay.channels_last(rank)
    y = ctx.reshape(flat, tuple(out_shape[p] for p in perm_out), hint="unpool")
    ctx.bind_permuted(node.outputs[0], y, perm_out)


def _disjoint_windows(pool) -> bool:
    kernel = list(pool.attributes.get_ints("kernel_shape"))
    strides = list(pool.attributes.get_ints("strides", [1] * len(kernel)))
    dilations = list(pool.attributes.get_ints("dilations", [1] * len(kernel)))
    return all((k - 1) * d + 1 <= s for k, s, d in zip(kernel, strides, dilations,
                                                      strict=True))


def max_pool_nd(ctx, node) -> None:
    if node.attributes.get_int("storage_order", 0):
        raise ctx.error("MaxPool indices in column-major order are not supported for "
                        "TensorFlow/LiteRT")
    kernel, strides, dilations, begin, ends, out_sizes = _geometry(ctx, node)
    rank = len(kernel) + 2
    x = ctx.channels_last(node.inputs[0], "pooling needs channels last")
    padded = pad_channels_last(ctx, x, begin, ends, LOWEST)
    n, c = x.shape[0], x.shape[-1]
    stored = (n, *out_sizes, c)
    indices = wants_indices(node)
    if rank == 5 and not indices and all(d == 1 for d in dilations):
        pooled = _separable(ctx, padded, "MAX_POOL_2D", kernel, strides, out_sizes)
        ctx.bind_permuted(node.outputs[0], pooled, lay.channels_last(rank))
        return
    taps = list(_taps(ctx, padded, kernel, strides, dilations, out_sizes))
    pooled = taps[0][1]
    for _, view in taps[1:]:
        pooled = ctx.emit("MAXIMUM", [pooled, view], stored, hint="pool")
    ctx.bind_permuted(node.outputs[0], pooled, lay.channels_last(rank))
    if indices:
        _indices(ctx, node, taps, pooled, strides, dilations, begin, out_sizes)


def _indices(ctx, node, taps, pooled, strides, dilations, begin, out_sizes) -> None:
    in_shape = ctx.shape(node.inputs[0])
    n, c, in_sizes = in_shape[0], in_shape[1], list(in_shape[2:])
    spatial = len(in_sizes)
    steps = [math.prod(in_sizes[a + 1:]) for a in range(spatial)]  # row-major strides

    def offset(tap) -> np.ndarray:
        return np.asarray(sum(j * d * s for j, d, s in zip(tap, dilations, steps,
                                                           strict=True)), np.int32)

    index = ctx.const(offset(taps[-1][0]), "tap")
    for tap, view in reversed(taps[:-1]):
        first = ctx.emit("EQUAL", [view, pooled], pooled.shape, "bool", hint="is_max")
        index = ctx.emit("SELECT_V2", [first, ctx.const(offset(tap), "tap"), index],
                         pooled.shape, "int32", hint="argmax")
    # + where each window starts, + where each (image, channel) plane starts
    grid = np.zeros([1, *out_sizes, 1], np.int64)
    for a, (size, s, b) in enumerate(zip(out_sizes, strides, begin, strict=True)):
        shape = [1] * (spatial + 2)
        shape[a + 1] = size
        grid = grid + ((np.arange(size) * s - b) * steps[a]).reshape(shape)
    planes = np.arange(n * c, dtype=np.int64).reshape([n] + [1] * spatial + [c]) \
        * math.prod(in_sizes)
    start = np.ascontiguousarray(np.broadcast_to(grid + planes, pooled.shape))
    index = ctx.emit("ADD", [index, ctx.const(start.astype(np.int32), "window_start")],
                     pooled.shape, "int32", hint="indices")
    from migrate.writers.tensorflow.lowering import _DTYPES

    dtype = _DTYPES.get(node.outputs[1].dtype, "int64")
    if dtype != "int32":
        index = ctx.emit("CAST", [index], index.shape, dtype, hint="indices",
                         in_dtype="int32", out_dtype=dtype)
    ctx.bind_permuted(node.outputs[1], index, lay.channels_last(spatial + 2))


def average_pool_nd(ctx, node) -> None:
    """3-D average pooling: zero padding, separable VALID pooling, and each window's
    divisor corrected to the cells Torch and ONNX count."""
    from migrate.writers.tensorflow.converters.pool import _divisors

    kernel, strides, dilations, begin, ends, out_sizes = _geometry(ctx, node)
    if any(d > 1 for d in dilations):
        raise ctx.error("dilated average pooling is not supported for TensorFlow/LiteRT")
    include_pad = bool(node.attributes.get_int("count_include_pad", 0))
    in_sizes = ctx.shape(node.inputs[0])[2:]
    _, declared = onnx_pads(node, len(kernel), in_sizes, kernel, strides, dilations)
    x = ctx.channels_last(node.inputs[0], "pooling needs channels last")
    y = _separable(ctx, pad_channels_last(ctx, x, begin, ends), "AVERAGE_POOL_2D", kernel,
                   strides, out_sizes)
    counts = [_divisors(size, k, s, b, e, o, include_pad) for size, k, s, b, e, o in zip(
        in_sizes, kernel, strides, begin, declared, out_sizes, strict=True)]
    correction = math.prod(kernel) / np.einsum("i,j,k->ijk", *counts)
    if not np.all(correction == 1.0):
        y = ctx.emit("MUL", [y, ctx.const(correction.astype(np.float32)[..., None],
                                          "divisor")], y.shape, hint="pool")
    ctx.bind_permuted(node.outputs[0], y, lay.channels_last(5))
