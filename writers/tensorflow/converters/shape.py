"""Shape ops: Reshape and its kin keep the memory when they can, Transpose costs nothing
(the next op sees the same memory another way), and axis arguments follow the layout."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.layout import Layout
from migrate.writers.tensorflow.lowering import Stored
from migrate.writers.tensorflow.registry import op_lowering


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def reshape_value(ctx, value, out_value) -> None:
    """Bind out_value = reshape(value): free when the atoms stay in order; a dense layer's
    input keeps its stored order (the layer's weights are permuted instead); otherwise
    one transpose into the output's preferred layout."""
    target = ctx.shape(out_value)
    found = ctx.get(value)
    rank = len(target)
    preferred = [lay.channels_last(rank), lay.identity(rank)] if rank >= 3 else \
        [lay.identity(rank)]
    if found.layout.is_identity and found.tensor.shape == found.layout.shape:
        free = Layout.identity(target)
    else:
        free = lay.reshaped(found.layout, target)
    if free is None:  # factors that do not line up: through the source layout
        ctx.bind(out_value, ctx.reshape(ctx.plain(value, "Reshape regroups permuted axes"),
                                        target), Layout.identity(target))
        return
    as_perm = lay.as_permutation(free, preferred)
    if as_perm is not None:
        ctx.bind(out_value, ctx.reshape(found.tensor, as_perm.permuted_shape()), as_perm)
        return
    if rank <= 2 and lay.dense_order(free) is not None and ctx.dense_only(out_value):
        # Flatten before dense layers: features stay in stored order (H, W, C)
        ctx.bind(out_value, ctx.reshape(found.tensor, target), free)
        return
    goal = Layout.permuted(target, preferred[0])
    why = (f"{'Flatten' if rank == 2 else 'Reshape'} to {'x'.join(map(str, target))} "
           "regroups axes stored in another order")
    ctx.bind(out_value, ctx.convert(Stored(found.tensor, free), goal, why=why), goal)


@op_lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape(ctx, node):
    reshape_value(ctx, node.inputs[0], node.outputs[0])


@op_lowering("Transpose")
def transpose(ctx, node):
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    order = list(node.attributes.get_ints("perm", list(reversed(range(rank)))))
    tensor, perm = ctx.permutation(value)
    # same memory: stored = transpose(x, perm) = transpose(y, [order.index(p) ...])
    ctx.bind_permuted(node.outputs[0], tensor, [order.index(p) for p in perm])


@op_lowering("Concat")
def concat(ctx, node):
    inputs = [v for v in node.inputs if v is not None and np.prod(ctx.shape(v)) > 0]
    shape = ctx.shape(node.outputs[0])
    rank = len(shape)
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    perm = ctx.preferred_perm(inputs, rank)
    tensors = [ctx.conform(v, rank, perm, "Concat inputs in different layouts",
                           broadcast=False) for v in inputs]
    stored = tuple(shape[p] for p in perm)
    if len(tensors) == 1:
        y = ctx.reshape(tensors[0], stored)
    else:
        y = ctx.emit("CONCATENATION", tensors, stored, hint="concat", axis=perm.index(axis),
                     activation="NONE")
    ctx.bind_permuted(node.outputs[0], y, perm)


@op_lowering("Split")
def split(ctx, node):
    value = node.inputs[0]
    shape = ctx.shape(value)
    rank = len(shape)
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    sizes = [ctx.shape(o)[axis] for o in node.outputs]
    tensor, perm = ctx.permutation(value)
    stored_axis = perm.index(axis)
    shapes = []
    for size in sizes:
        out = list(tensor.shape)
        out[stored_axis] = size
        shapes.append(tuple(out))
    outs = ctx.emit_many("SPLIT_V", [tensor, ctx.int32s(sizes, "sizes"),
                                     ctx.const(np.asarray(stored_axis, np.int32), "axis")],
                         shapes, tensor.dtype, hint="split", num_splits=len(sizes),
                         axis=stored_axis, sizes=tuple(sizes))
    for out_value, out in zip(node.outputs, outs, strict=True):
        ctx.bind_permuted(out_value, out, perm)


def strided_slice(ctx, tensor, begin, end, strides, hint="slice"):
    """STRIDED_SLICE with normalised (begin, end, stride) per stored axis; an end of -1
    with a negative stride (past the first element) becomes an end-mask bit."""
    out, mask = [], 0
    ends = []
    for j, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        out.append(len(range(b, e, s)))
        if s < 0 and e < 0:
            mask |= 1 << j
            e = 0
        ends.append(e)
    return ctx.emit("STRIDED_SLICE", [tensor, ctx.int32s(begin, "begin"),
                                      ctx.int32s(ends, "end"), ctx.int32s(strides, "strides")],
                    tuple(out), tensor.dtype, hint=hint, begin_mask=0, end_mask=mask)


@op_lowering("Slice")
def slice_(ctx, node):
    value = node.inputs[0]
    shape = ctx.shape(value)
    rank = len(shape)
    starts = ctx.require_const(node.inputs[1], "Slice's starts").astype(np.int64).tolist()
    ends = ctx.require_const(node.inputs[2], "Slice's ends").astype(np.int64).tolist()
    axes = (ctx.require_const(node.inputs[3], "Slice's axes").astype(np.int64).tolist()
            if len(node.inputs) > 3 and node.inputs[3] is not None else list(range(len(starts))))
    steps = (ctx.require_const(node.inputs[4], "Slice's steps").astype(np.int64).tolist()
             if len(node.inputs) > 4 and node.inputs[4] is not None else [1] * len(starts))
    windows = [(0, d, 1) for d in shape]
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = _axis(axis, rank)
        windows[axis] = slice(int(start), int(end), int(step)).indices(shape[axis])
    tensor, perm = ctx.permutation(value)
    stored = [windows[p] for p in perm]
    if all(w == (0, d, 1) for w, d in zip(stored, tensor.shape, strict=True)):
        ctx.alias(node.outputs[0], value)
        return
    y = strided_slice(ctx, tensor, [w[0] for w in stored], [w[1] for w in stored],
                      [w[2] for w in stored])
    ctx.bind_permuted(node.outputs[0], y, perm)


@op_lowering("Pad")
def pad(ctx, node):
    value = node.inputs[0]
    shape = ctx.shape(value)
    rank = len(shape)
    mode = node.attributes.get_string("mode", "constant")
    pads = ctx.require_const(node.inputs[1], "Pad's pads").astype(np.int64).reshape(-1)
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        raise ctx.error("Pad with axes is not supported for TensorFlow/LiteRT")
    fill = 0.0
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        fill = float(ctx.require_const(node.inputs[2], "Pad's value").reshape(()))
    tensor, perm = ctx.permutation(value)
    begin = [int(pads[p]) for p in perm]
    end = [int(pads[rank + p]) for p in perm]
    if any(b < 0 for b in begin) or any(e < 0 for e in end):
        # negative pads crop
        lo = [max(-b, 0) for b in begin]
        hi = [d - max(-e, 0) for d, e in zip(tensor.shape, end, strict=True)]
        tensor = strided_slice(ctx, tensor, lo, hi, [1] * rank, hint="crop")
        begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
    if any(begin) or any(end):
        out = tuple(d + b + e for d, b, e in zip(tensor.shape, begin, end, strict=True))
        paddings = ctx.const(np.asarray([begin, end], np.int32).T.copy(), "paddings")
        if mode == "constant" and fill == 0.0:
            tensor = ctx.emit("PAD", [tensor, paddings], out, tensor.dtype, hint="pad")
        elif mode == "constant":
            tensor = ctx.emit("PADV2", [tensor, paddings, ctx.const(
                np.asarray(fill, tensor.dtype), "value")], out, tensor.dtype, hint="pad")
        elif mode == "reflect":
            tensor = ctx.emit("MIRROR_PAD", [tensor, paddings], out, tensor.dtype, hint="pad",
                              mode="REFLECT")
        elif mode == "edge":
            tensor = _edge_pad(ctx, tensor, begin, end)
        else:
            raise ctx.error(f"Pad mode '{mode}' is not supported for TensorFlow/LiteRT")
    if tensor.shape == ctx.get(value).tensor.shape and tensor is ctx.get(value).tensor:
        ctx.alias(node.outputs[0], value)
        return
    ctx.bind_permuted(node.outputs[0], tensor, perm)


def _edge_pad(ctx, tensor, begin, end):
    """Replication padding, which LiteRT lacks: each border row tiled, concatenated."""
    rank = len(tensor.shape)
    for axis in range(rank):
        if not begin[axis] and not end[axis]:
            continue
        parts = []
        size = tensor.shape[axis]
        for at, count in ((0, begin[axis]), (size - 1, end[axis])):
            if not count:
                parts.append(None)
                continue
            lo = [0] * rank
            hi = list(tensor.shape)
            lo[axis], hi[axis] = at, at + 1
            row = strided_slice(ctx, tensor, lo, hi, [1] * rank, hint="edge")
            reps = [1] * rank
            reps[axis] = count
            shape = list(row.shape)
            shape[axis] = count
            parts.append(ctx.emit("TILE", [row, ctx.int32s(reps, "multiples")], shape,
                                  tensor.dtype, hint="edge", multiples=tuple(reps)))
        pieces = [p for p in (parts[0], tensor, parts[1]) if p is not None]
        shape = list(tensor.shape)
        shape[axis] = sum(p.shape[axis] for p in pieces)
        tensor = ctx.emit("CONCATENATION", pieces, shape, tensor.dtype, hint="pad",
                          axis=axis, activation="NONE")
    return tensor


@op_lowering("Expand")
def expand(ctx, node):
    shape = ctx.shape(node.outputs[0])
    rank = len(shape)
    perm = ctx.preferred_perm([node.inputs[0]], rank)
    x = ctx.conform(node.inputs[0], rank, perm, "Expand broadcasts in the source layout")
    stored = tuple(shape[p] for p in perm)
    if x.shape == stored:
        y = x
    else:
        y = ctx.emit("BROADCAST_TO", [x, ctx.int32s(stored, "shape")], stored, x.dtype,
                     hint="expand", to_shape=stored)
    ctx.bind_permuted(node.outputs[0], y, perm)


@op_lowering("Tile")
def tile(ctx, node):
    repeats = ctx.require_const(node.inputs[1], "Tile's repeats").astype(np.int64).tolist()
    tensor, perm = ctx.permutation(node.inputs[0])
    reps = [int(repeats[p]) for p in perm]
    shape = tuple(d * r for d, r in zip(tensor.shape, reps, strict=True))
    y = ctx.emit("TILE", [tensor, ctx.int32s(reps, "multiples")], shape, tensor.dtype,
                 hint="tile", multiples=tuple(reps))
    ctx.bind_permuted(node.outputs[0], y, perm)
