"""Indexing: Gather (constant or computed indices of any rank), GatherElements, OneHot and
TopK, each on LiteRT builtins (GATHER, ONE_HOT, TOPK_V2) in whatever layout the data
has: the output's layout follows the data's and the indices' stored orders, so no
transpose is needed around them.

Indices follow ONNX: a negative index counts from the end (FLOOR_MOD by the axis size,
which leaves indices in range as they are; an index past either end, an error in ONNX,
wraps around instead of stopping the model)."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow.layout import Layout
from migrate.writers.tensorflow.registry import op_lowering


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def int_const(ctx, value, like, hint: str):
    """An integer constant of the same type as the index tensor `like`."""
    return ctx.const(np.asarray(value, like.dtype), hint, data=True)


def with_scalar(ctx, kind: str, x, value, hint: str, dtype: str | None = None):
    """kind(x, scalar); past rank 4, where LiteRT's integer and comparison kernels stop
    broadcasting, on a flat view of x (a reshape each way, no copy of the scalar)."""
    shape = x.shape
    flat = ctx.reshape(x, (int(np.prod(shape)),), hint="flat") if len(shape) > 4 else x
    y = ctx.emit(kind, [flat, int_const(ctx, value, x, hint)], flat.shape, dtype or x.dtype,
                 hint=hint)
    return ctx.reshape(y, shape, hint=hint) if len(shape) > 4 else y


def wrap_negative(ctx, index, size: int):
    """ONNX index semantics: -1 is the last of `size` (FLOOR_MOD keeps 0..size-1)."""
    return with_scalar(ctx, "FLOOR_MOD", index, size, "index")


def stored_indices(ctx, value):
    """(int64 array, None) for constant indices, else (stored tensor, its permutation)."""
    array = ctx.const_of(value)
    if array is not None and id(value) not in ctx._env:
        return array.astype(np.int64), None
    return ctx.permutation(value)


@op_lowering("Gather")
def gather(ctx, node):
    value, index_value = node.inputs
    shape = ctx.shape(value)
    axis = _axis(node.attributes.get_int("axis", 0), len(shape))
    tensor, perm = ctx.permutation(value)
    stored_axis = perm.index(axis)
    indices, index_perm = stored_indices(ctx, index_value)
    if index_perm is None:  # constant indices
        indices = np.where(indices < 0, indices + shape[axis], indices)
        index_perm = tuple(range(indices.ndim))
        index = ctx.const(indices.astype(np.int32), "indices")
    else:
        index = wrap_negative(ctx, indices, shape[axis])
    k = len(index.shape)
    out = list(tensor.shape[:stored_axis]) + list(index.shape) + \
        list(tensor.shape[stored_axis + 1:])
    # the output's source axes, in stored order: the data's, with the gathered axis
    # replaced by the index's axes (in the index's stored order)
    out_perm: list[int] = []
    for p in perm:
        if p < axis:
            out_perm.append(p)
        elif p == axis:
            out_perm += [axis + q for q in index_perm]
        else:
            out_perm.append(p + k - 1)
    y = ctx.emit("GATHER", [tensor, index], out, tensor.dtype, hint="gather",
                 axis=stored_axis)
    ctx.bind_permuted(node.outputs[0], y, out_perm)


@op_lowering("GatherElements")
def gather_elements(ctx, node):
    """out[..., i, ...] = data[..., index[..., i, ...], ...] along `axis`: one GATHER from
    the flattened data at index * stride + (the other coordinates' offset)."""
    value, index_value = node.inputs
    shape = ctx.shape(value)
    rank = len(shape)
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    tensor, perm = ctx.permutation(value)
    steps = np.cumprod((tensor.shape[1:] + (1,))[::-1])[::-1]  # stored row-major strides
    stride = {p: int(steps[j]) for j, p in enumerate(perm)}  # of each source axis
    indices, index_perm = stored_indices(ctx, index_value)
    index_shape = ctx.shape(index_value)
    grid = np.indices(index_shape, dtype=np.int64)
    offsets = sum(grid[a] * stride[a] for a in range(rank) if a != axis)
    if index_perm is None:
        indices = np.where(indices < 0, indices + shape[axis], indices)
        flat = indices * stride[axis] + offsets
        index = ctx.const(flat.astype(np.int32), "indices")
        index_perm = tuple(range(rank))
    else:
        index = wrap_negative(ctx, indices, shape[axis])
        if stride[axis] != 1:
            index = with_scalar(ctx, "MUL", index, stride[axis], "stride")
        stored_offsets = np.ascontiguousarray(np.transpose(offsets, index_perm))
        index = ctx.emit("ADD", [index, int_const(ctx, stored_offsets, index, "offsets")],
                         index.shape, index.dtype, hint="index")
    flat_data = ctx.reshape(tensor, (int(np.prod(tensor.shape)),), hint="flat")
    y = ctx.emit("GATHER", [flat_data, index], index.shape, tensor.dtype, hint="gather",
                 axis=0)
    ctx.bind_permuted(node.outputs[0], y, index_perm)


@op_lowering("OneHot")
def one_hot(ctx, node):
    """ONE_HOT along a new last stored axis; ONNX's negative indices count from the end
    (TensorFlow's give all-off rows), so they are moved up by `depth` first."""
    index_value, depth_value, values_value = node.inputs
    depth = int(ctx.require_const(depth_value, "OneHot's depth").reshape(()))
    values = ctx.require_const(values_value, "OneHot's values").reshape(-1)
    out_shape = ctx.shape(node.outputs[0])
    axis = _axis(node.attributes.get_int("axis", -1), len(out_shape))
    index, perm = ctx.permutation(index_value)
    if index.dtype not in ("int32", "int64"):
        index = ctx.emit("CAST", [index], index.shape, "int64", hint="index",
                         in_dtype=index.dtype, out_dtype="int64")
    negative = with_scalar(ctx, "LESS", index, 0, "negative", "bool")
    moved = with_scalar(ctx, "ADD", index, depth, "from_end")
    index = ctx.emit("SELECT_V2", [negative, moved, index], index.shape, index.dtype,
                     hint="index")
    from migrate.writers.tensorflow.lowering import _DTYPES

    dtype = _DTYPES.get(node.outputs[0].dtype, "float32")
    off, on = (ctx.const(np.asarray(v, dtype), name) for v, name in
               ((values[0], "off_value"), (values[1], "on_value")))
    y = ctx.emit("ONE_HOT", [index, ctx.const(np.asarray(depth, np.int32), "depth"), on, off],
                 (*index.shape, depth), dtype, hint="one_hot", axis=-1)
    out_perm = [p + (p >= axis) for p in perm] + [axis]
    ctx.bind_permuted(node.outputs[0], y, out_perm)


@op_lowering("TopK")
def top_k(ctx, node):
    """TOPK_V2 over the last stored axis (the axis is moved last; free when the others
    have size 1), largest first, ties by lower index as ONNX; the smallest as the
    largest of the negated values."""
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    axis = _axis(node.attributes.get_int("axis", -1), rank)
    k = int(ctx.require_const(node.inputs[1], "TopK's k").reshape(-1)[0])
    largest = bool(node.attributes.get_int("largest", 1))
    _, perm = ctx.permutation(value)
    last = tuple([p for p in perm if p != axis] + [axis])
    x = ctx.stored(value, last, f"TopK over axis {axis} needs it last")
    if not largest:
        x = ctx.emit("NEG", [x], x.shape, x.dtype, hint="negated")
    out = (*x.shape[:-1], k)
    values, indices = ctx.emit_many("TOPK_V2", [x, ctx.const(np.asarray(k, np.int32), "k")],
                                    [out, out], x.dtype, hint="topk")
    indices.dtype = "int32"
    if not largest:
        values = ctx.emit("NEG", [values], out, x.dtype, hint="smallest")
    from migrate.writers.tensorflow.lowering import _DTYPES

    index_dtype = _DTYPES.get(node.outputs[1].dtype, "int64")
    if index_dtype != "int32":
        indices = ctx.emit("CAST", [indices], out, index_dtype, hint="indices",
                           in_dtype="int32", out_dtype=index_dtype)
    ctx.bind_permuted(node.outputs[0], values, last)
    ctx.bind_permuted(node.outputs[1], indices, last)


@op_lowering("Compress")
def compress(ctx, node):
    """The slices along `axis` where the condition holds: WHERE (the positions, a
    data-dependent count, which LiteRT and TensorFlow both size at run time) and a
    GATHER of them. The result's length is known only when the model runs, so it must
    be a graph output (an op after it needs static shapes)."""
    value, condition = node.inputs
    if node.outputs[0].uses():
        raise ctx.error("Compress selects a number of values known only when the model "
                        "runs; for TensorFlow/LiteRT its result must be a graph output (the "
                        "ops after it need static shapes)")
    axis = node.attributes.get("axis")
    x = ctx.plain(value, "Compress selects in the source layout")
    if axis is None:  # the flattened input
        x = ctx.reshape(x, (int(np.prod(x.shape)),), hint="flat")
        axis = 0
    else:
        axis = _axis(axis.as_int(), len(x.shape))
    keep = ctx.plain(condition, "Compress's condition")
    if keep.dtype != "bool":
        keep = ctx.emit("CAST", [keep], keep.shape, "bool", hint="condition",
                        in_dtype=keep.dtype, out_dtype="bool")
    found = ctx.emit("WHERE", [keep], (-1, 1), "int64", hint="positions")
    positions = ctx.emit("RESHAPE", [found, ctx.int32s([-1])], (-1,), "int64",
                         hint="positions", new_shape=(-1,))
    out = list(x.shape)
    out[axis] = -1
    y = ctx.emit("GATHER", [x, positions], out, x.dtype, hint="compress", axis=axis)
    ctx.bind(node.outputs[0], y, Layout.identity(out))
