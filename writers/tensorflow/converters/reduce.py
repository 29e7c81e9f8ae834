"""Reductions and softmax: axes follow the layout; LiteRT's softmax works on the last
stored axis, so the softmax axis is moved last (free when the axes it passes have size 1:
e.g. over the channels of NHWC, or of 1x1000x1x1)."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow.registry import op_lowering


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _softmax(kind: str):
    def lower(ctx, node):
        value = node.inputs[0]
        rank = len(ctx.shape(value))
        axis = _axis(node.attributes.get_int("axis", -1), rank)
        _, perm = ctx.permutation(value)
        last = tuple([p for p in perm if p != axis] + [axis])
        x = ctx.stored(value, last, f"{node.op_type} over axis {axis} needs it last")
        y = ctx.emit(kind, [x], x.shape, hint=kind.lower(), beta=1.0)
        ctx.bind_permuted(node.outputs[0], y, last)

    return lower


op_lowering("Softmax")(_softmax("SOFTMAX"))
op_lowering("LogSoftmax")(_softmax("LOG_SOFTMAX"))

_REDUCE = {"ReduceMean": "MEAN", "ReduceSum": "SUM", "ReduceMax": "REDUCE_MAX",
           "ReduceMin": "REDUCE_MIN", "ReduceProd": "REDUCE_PROD"}


def _axes(ctx, node, rank: int) -> list[int]:
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = ctx.require_const(node.inputs[1], "the reduction axes").reshape(-1).tolist()
    else:
        axes = list(node.attributes.get_ints("axes", []))
    if not axes:
        if node.attributes.get_int("noop_with_empty_axes", 0):
            return []
        axes = list(range(rank))
    return sorted({_axis(int(a), rank) for a in axes})


def _reduce(kind: str):
    def lower(ctx, node):
        value = node.inputs[0]
        rank = len(ctx.shape(value))
        axes = _axes(ctx, node, rank)
        if not axes:
            ctx.alias(node.outputs[0], value)
            return
        keep = bool(node.attributes.get_int("keepdims", 1))
        tensor, perm = ctx.permutation(value)
        y, out_perm = reduce_stored(ctx, kind, tensor, perm, axes, keep)
        ctx.bind_permuted(node.outputs[0], y, out_perm)

    return lower


def reduce_stored(ctx, kind, tensor, perm, axes, keep):
    """(reduced tensor, its permutation) for source `axes` of a tensor stored as `perm`."""
    stored_axes = sorted(perm.index(a) for a in axes)
    if keep:
        shape = tuple(1 if j in stored_axes else d for j, d in enumerate(tensor.shape))
        out_perm = list(perm)
    else:
        shape = tuple(d for j, d in enumerate(tensor.shape) if j not in stored_axes)
        out_perm = [p - sum(a < p for a in axes) for p in perm if p not in axes]
    y = ctx.emit(kind, [tensor, ctx.int32s(stored_axes, "axes")], shape, tensor.dtype,
                 hint=kind.lower(), keep_dims=keep, axes=tuple(stored_axes))
    return y, out_perm


for _onnx, _kind in _REDUCE.items():
    op_lowering(_onnx)(_reduce(_kind))


@op_lowering("ReduceL2", "ReduceSumSquare", "ReduceL1", "ReduceLogSumExp")
def reduce_formula(ctx, node):
    """The composite reductions, spelled out with LiteRT builtins."""
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    axes = _axes(ctx, node, rank) or list(range(rank))
    keep = bool(node.attributes.get_int("keepdims", 1))
    x, perm = ctx.permutation(value)
    if node.op_type == "ReduceL1":
        inner = ctx.emit("ABS", [x], x.shape, hint="abs")
    elif node.op_type == "ReduceLogSumExp":
        inner = ctx.emit("EXP", [x], x.shape, hint="exp")
    else:
        inner = ctx.emit("MUL", [x, x], x.shape, hint="square")
    y, out_perm = reduce_stored(ctx, "SUM", inner, perm, axes, keep)
    if node.op_type == "ReduceL2":
        y = ctx.emit("SQRT", [y], y.shape, hint="l2")
    elif node.op_type == "ReduceLogSumExp":
        y = ctx.emit("LOG", [y], y.shape, hint="logsumexp")
    ctx.bind_permuted(node.outputs[0], y, out_perm)


@op_lowering("ArgMax", "ArgMin")
def arg_reduce(ctx, node):
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    if node.attributes.get_int("select_last_index", 0):
        raise ctx.error(f"{node.op_type} with select_last_index is not supported for LiteRT")
    keep = bool(node.attributes.get_int("keepdims", 1))
    tensor, perm = ctx.permutation(value)
    j = perm.index(axis)
    shape = tuple(d for k, d in enumerate(tensor.shape) if k != j)
    kind = "ARG_MAX" if node.op_type == "ArgMax" else "ARG_MIN"
    y = ctx.emit(kind, [tensor, ctx.const(np.asarray([j], np.int32), "axis")], shape, "int64",
                 hint=kind.lower(), axis=j)
    out_perm = [p - (p > axis) for p in perm if p != axis]
    if keep:
        kept = list(tensor.shape)
        kept[j] = 1
        y = ctx.reshape(y, kept)
        out_perm = list(perm)
    ctx.bind_permuted(node.outputs[0], y, out_perm)
