"""Normalizations: batch norm (Keras's four variables in SavedModels, a multiply-add in
LiteRT), LRN (LiteRT's builtin where its symmetric window is ONNX's, else its formula),
instance norm (its formula)."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.registry import op_lowering


@op_lowering("BatchNormalization")
def batch_normalization(ctx, node):
    if node.attributes.get_int("training_mode", 0):
        raise ctx.error("BatchNormalization in training mode cannot be converted")
    value = node.inputs[0]
    params = [np.asarray(ctx.require_const(v, "batch norm parameters"), np.float32).reshape(-1)
              for v in node.inputs[1:5]]
    eps = node.attributes.get_float("epsilon", 1e-5)
    found = ctx.get(value)
    rank = len(found.layout.shape)
    dense = found.layout.perm is None and lay.dense_order(found.layout) is not None
    if dense and params[0].size == found.layout.shape[-1]:
        # features of a flattened input in stored order: the parameters follow them
        tensor, layout, axis = found.tensor, found.layout, rank - 1
        params = [lay.permute_features(p, found.layout, axis=0) for p in params]
    else:
        tensor, perm = ctx.permutation(value)
        layout = None
        axis = perm.index(1) if rank > 1 else 0
    roles = ("gamma", "beta", "moving_mean", "moving_variance")
    consts = [ctx.const(p, role, role) for p, role in zip(params, roles, strict=True)]
    y = ctx.emit("BATCH_NORM", [tensor, *consts], tensor.shape, hint="bn", epsilon=eps,
                 axis=axis)
    if layout is not None:
        ctx.bind(node.outputs[0], y, layout)
    else:
        ctx.bind_permuted(node.outputs[0], y, perm)


@op_lowering("LRN")
def lrn(ctx, node):
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    if rank not in (3, 4):
        raise ctx.error(f"LRN on a {rank}-D input is not supported for TensorFlow/LiteRT")
    size = node.attributes.get_int("size", 5)
    alpha = node.attributes.get_float("alpha", 1e-4)
    beta = node.attributes.get_float("beta", 0.75)
    bias = node.attributes.get_float("bias", 1.0)
    x = ctx.channels_last(value, "LRN needs the channels last")
    stored = x.shape
    if rank == 3:
        x = ctx.reshape(x, (stored[0], 1, stored[1], stored[2]))
    if size % 2:
        # ONNX sums over channels c - (size-1)/2 .. c + (size-1)/2 and scales by
        # alpha / size; LiteRT sums over c - radius .. c + radius and scales by alpha
        y = ctx.emit("LOCAL_RESPONSE_NORMALIZATION", [x], x.shape, hint="lrn",
                     radius=(size - 1) // 2, bias=bias, alpha=alpha / size, beta=beta)
    else:
        y = _lrn_formula(ctx, x, size, alpha, beta, bias)
    ctx.bind_permuted(node.outputs[0], ctx.reshape(y, stored), lay.channels_last(rank))


def _lrn_formula(ctx, x, size, alpha, beta, bias):
    """An even window is not centred (floor((size-1)/2) before, ceil after): the sum of
    squares as a 1x1 convolution with a band of alpha/size."""
    channels = x.shape[3]
    band = np.zeros((channels, 1, 1, channels), np.float32)  # (O, kh, kw, I)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    for c in range(channels):
        band[c, 0, 0, max(c - before, 0):min(c + after, channels - 1) + 1] = alpha / size
    squares = ctx.emit("MUL", [x, x], x.shape, hint="square")
    total = ctx.emit("CONV_2D", [squares, ctx.const(band, "window"), None], x.shape,
                     hint="window_sum", padding="VALID", stride=(1, 1), dilation=(1, 1),
                     activation="NONE", groups=1)
    total = ctx.emit("ADD", [total, ctx.const(np.asarray(bias, np.float32), "bias")],
                     x.shape, hint="lrn_base")
    scale = ctx.emit("POW", [total, ctx.const(np.asarray(-beta, np.float32), "beta")],
                     x.shape, hint="lrn_scale")
    return ctx.emit("MUL", [x, scale], x.shape, hint="lrn")


def _standardize(ctx, x, axes: list[int], eps: float):
    """(x - mean) / sqrt(var + eps) over `axes` of the (already permuted) tensor x."""
    shape = x.shape
    reduced = tuple(1 if j in axes else d for j, d in enumerate(shape))
    axes_t = ctx.int32s(axes, "axes")
    mean = ctx.emit("MEAN", [x, axes_t], reduced, hint="mean", keep_dims=True, axes=tuple(axes))
    centred = ctx.emit("SUB", [x, mean], shape, hint="centred")
    square = ctx.emit("MUL", [centred, centred], shape, hint="square")
    var = ctx.emit("MEAN", [square, axes_t], reduced, hint="var", keep_dims=True,
                   axes=tuple(axes))
    var = ctx.emit("ADD", [var, ctx.const(np.asarray(eps, np.float32), "epsilon")], reduced,
                   hint="var")
    return ctx.emit("MUL", [centred, ctx.emit("RSQRT", [var], reduced, hint="inv_std")], shape,
                    hint="normalized")


@op_lowering("InstanceNormalization")
def instance_normalization(ctx, node):
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    scale = ctx.require_const(node.inputs[1], "InstanceNormalization's scale")
    shift = ctx.require_const(node.inputs[2], "InstanceNormalization's bias")
    eps = node.attributes.get_float("epsilon", 1e-5)
    x, perm = ctx.permutation(value)
    shape = x.shape
    y = _standardize(ctx, x, sorted(perm.index(a) for a in range(2, rank)), eps)
    broadcast = [1] * rank
    broadcast[perm.index(1)] = -1
    gamma = ctx.const(scale.astype(np.float32).reshape(broadcast), "gamma", "gamma")
    beta = ctx.const(shift.astype(np.float32).reshape(broadcast), "beta", "beta")
    y = ctx.emit("MUL", [y, gamma], shape, hint="scaled")
    y = ctx.emit("ADD", [y, beta], shape, hint="instance_norm")
    ctx.bind_permuted(node.outputs[0], y, perm)


@op_lowering("LayerNormalization")
def layer_normalization(ctx, node):
    """(x - mean) / sqrt(var + eps) * scale + bias over the axes from `axis` on."""
    value = node.inputs[0]
    rank = len(ctx.shape(value))
    axis = node.attributes.get_int("axis", -1)
    axis = axis + rank if axis < 0 else axis
    eps = node.attributes.get_float("epsilon", 1e-5)
    x, perm = ctx.permutation(value)
    shape = x.shape
    y = _standardize(ctx, x, sorted(perm.index(a) for a in range(axis, rank)), eps)
    for index, role, kind in ((1, "gamma", "MUL"), (2, "beta", "ADD")):
        if len(node.inputs) <= index or node.inputs[index] is None:
            continue
        param = np.asarray(ctx.require_const(node.inputs[index], f"LayerNormalization's "
                                             f"{role}"), np.float32)
        full = param.reshape((1,) * (rank - param.ndim) + param.shape).transpose(perm)
        while full.ndim > 1 and full.shape[0] == 1:
            full = full[0]
        y = ctx.emit(kind, [y, ctx.const(np.ascontiguousarray(full), role, role)], shape,
                     hint="layer_norm")
    if len(node.outputs) > 1 and any(o is not None and o.uses() for o in node.outputs[1:]):
        raise ctx.error("LayerNormalization's mean / inverse std outputs are not supported")
    ctx.bind_permuted(node.outputs[0], y, perm)
