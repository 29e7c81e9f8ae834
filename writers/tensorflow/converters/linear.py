"""Dense layers: Gemm / MatMul with constant weights -> FULLY_CONNECTED (Keras's kernel),
with the weights' input rows permuted when the input's features are stored in another
order (Flatten of a channels-last tensor); other products -> BATCH_MATMUL."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.registry import op_lowering


def _dense_input(ctx, value):
    """(stored 2-D input, the layout of its features or None when in source order)."""
    found = ctx.get(value)
    if found.layout.perm is None:
        if lay.dense_order(found.layout) is not None and \
                found.tensor.shape == found.layout.shape:
            return found.tensor, found.layout
    return ctx.plain(value, "a dense layer takes its features in order"), None


def _fc_weights(weight: np.ndarray, trans_b: int, alpha: float, layout) -> np.ndarray:
    """LiteRT's (M, K) weights of x @ B: B itself when transB (no copy), features permuted
    like the input's."""
    w = np.asarray(weight, np.float32)
    w = w if trans_b else w.T
    if alpha != 1.0:
        w = w * np.float32(alpha)
    if layout is not None:
        w = lay.permute_features(w, layout, axis=1)
    return np.ascontiguousarray(w)


@op_lowering("Gemm")
def gemm(ctx, node):
    a_value, b_value = node.inputs[0], node.inputs[1]
    c_value = node.inputs[2] if len(node.inputs) > 2 else None
    alpha = node.attributes.get_float("alpha", 1.0)
    beta = node.attributes.get_float("beta", 1.0)
    trans_a = node.attributes.get_int("transA", 0)
    trans_b = node.attributes.get_int("transB", 0)
    weight = ctx.const_of(b_value)
    out_shape = ctx.shape(node.outputs[0])
    if trans_a:
        x, features = ctx.stored(a_value, (1, 0), "Gemm with transA"), None
    elif weight is not None:
        x, features = _dense_input(ctx, a_value)
    else:
        x, features = ctx.plain(a_value, "a matrix product takes its operands in order"), None
    if weight is None:
        y = _matmul(ctx, x, ctx.plain(b_value, "a matrix product takes its operands in "
                                               "order"), trans_b, out_shape)
        if alpha != 1.0:
            y = ctx.emit("MUL", [y, ctx.const(np.asarray(alpha, np.float32), "alpha")],
                         out_shape, hint="alpha")
        bias = None
    else:
        # LiteRT's FULLY_CONNECTED weights are (M, K); the SavedModel keeps Keras's (K, M)
        fc = _fc_weights(weight, trans_b, alpha, features)
        bias = _bias(ctx, c_value, beta, fc.shape[0])
        weights = ctx.const(fc, "kernel", "kernel")
        y = ctx.emit("FULLY_CONNECTED", [x, weights, bias], out_shape, hint="dense",
                     activation="NONE", keep_num_dims=False)
    if c_value is not None and (weight is None or bias is None):
        c = ctx.conform(c_value, 2, (0, 1), "Gemm's C in the source layout")
        if beta != 1.0:
            c = ctx.emit("MUL", [c, ctx.const(np.asarray(beta, np.float32), "beta")],
                         c.shape, hint="beta")
        y = ctx.emit("ADD", [y, c], out_shape, hint="gemm")
    ctx.bind_permuted(node.outputs[0], y, (0, 1))


def _bias(ctx, c_value, beta: float, m: int):
    """C as a bias vector when it is a constant that broadcasts along the rows."""
    if c_value is None:
        return None
    c = ctx.const_of(c_value)
    if c is None or c.size not in (1, m) or (c.ndim == 2 and c.shape[0] != 1):
        return None
    vector = np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (m,))
    return ctx.const(vector * np.float32(beta) if beta != 1.0 else np.ascontiguousarray(vector),
                     "bias", "bias")


def _matmul(ctx, a, b, trans_b: int, out_shape):
    return ctx.emit("BATCH_MATMUL", [a, b], tuple(out_shape), hint="matmul", adj_x=False,
                    adj_y=bool(trans_b))


@op_lowering("MatMul")
def matmul(ctx, node):
    a_value, b_value = node.inputs
    out_shape = ctx.shape(node.outputs[0])
    rank = len(out_shape)
    weight = ctx.const_of(b_value)
    if weight is not None and weight.ndim == 2 and len(ctx.shape(a_value)) >= 2:
        a_rank = len(ctx.shape(a_value))
        if a_rank == 2:
            x, features = _dense_input(ctx, a_value)
            perm = (0, 1)
        else:
            # any layout that keeps the features last
            found = ctx.get(a_value)
            perm = found.layout.perm
            if perm is None or perm[-1] != a_rank - 1 or \
                    found.tensor.shape != found.layout.permuted_shape():
                perm = lay.identity(a_rank)
            x, features = ctx.stored(a_value, perm, "a matrix product takes its features "
                                                  "last"), None
        weights = ctx.const(_fc_weights(weight, 0, 1.0, features), "kernel", "kernel")
        stored = tuple(out_shape[p] for p in perm)
        y = ctx.emit("FULLY_CONNECTED", [x, weights, None], stored, hint="dense",
                     activation="NONE", keep_num_dims=a_rank > 2)
        ctx.bind_permuted(node.outputs[0], y, perm)
        return
    a = ctx.conform(a_value, max(rank, 2), lay.identity(max(rank, 2)),
                    "a matrix product takes its operands in order") \
        if len(ctx.shape(a_value)) >= 2 else None
    b = ctx.conform(b_value, max(rank, 2), lay.identity(max(rank, 2)),
                    "a matrix product takes its operands in order") \
        if len(ctx.shape(b_value)) >= 2 else None
    if a is None or b is None:
        raise ctx.error("MatMul of a 1-D operand is not supported for TensorFlow/LiteRT")
    y = _matmul(ctx, a, b, 0, out_shape)
    ctx.bind_permuted(node.outputs[0], y, lay.identity(rank))
