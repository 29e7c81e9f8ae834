"""Attention: F.scaled_dot_product_attention (nn.MultiheadAttention and transformer
layers call it), as its definition: softmax(q k^T * scale + mask) v."""

import math

import numpy as np
import onnx_ir as ir

from migrate.core.errors import UnsupportedError
from migrate.readers.pytorch.registry import converter


@converter("aten.scaled_dot_product_attention")
def scaled_dot_product_attention(ctx, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    if float(dropout_p) != 0.0:
        raise UnsupportedError("attention dropout (training): call model.eval()")
    q_shape, k_shape = ctx.shape(q), ctx.shape(k)
    if enable_gqa and q_shape[-3] != k_shape[-3]:
        raise UnsupportedError("grouped-query attention (enable_gqa) with fewer key heads")
    rank = len(k_shape)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    scores = ctx.op("MatMul", [q, ctx.op("Transpose", [k], perm=perm)], hint="scores")
    factor = 1.0 / math.sqrt(q_shape[-1]) if scale is None else float(scale)
    scores = ctx.op("Mul", [scores, ctx.scalar(factor, scores)])
    masked = attn_mask is not None or is_causal
    if is_causal:
        rows, cols = q_shape[-2], k_shape[-2]
        causal = np.where(np.tril(np.ones((rows, cols), dtype=bool)), 0.0, -np.inf)
        scores = ctx.op("Add", [scores, ctx.builder.constant(causal.astype(np.float32),
                                                             "causal_mask")])
    if attn_mask is not None:
        if ctx.dtype(attn_mask) == ir.DataType.BOOL:  # True: take part
            attn_mask = ctx.op("Where", [attn_mask, ctx.scalar(0.0, scores),
                                         ctx.scalar(-np.inf, scores)])
        scores = ctx.op("Add", [scores, attn_mask])
    weights = ctx.op("Softmax", [scores], axis=-1, hint="attention")
    if masked:
        # PyTorch gives a row whose every position is masked zeros, not NaN
        empty = ctx.op("Equal", [ctx.op("ReduceMax", [scores], axes=[-1], keepdims=1),
                                 ctx.scalar(-np.inf, scores)])
        weights = ctx.op("Where", [empty, ctx.scalar(0.0, scores), weights])
    return ctx.op("MatMul", [weights, v], hint="attention")
