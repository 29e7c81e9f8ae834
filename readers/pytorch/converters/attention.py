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
    if isinstance(attn_mask, ir.Value):
        weights = _dynamic_mask(ctx, scores, attn_mask)
    else:
        weights = _static_mask(ctx, scores, attn_mask, is_causal, q_shape[-2], k_shape[-2])
    return ctx.op("MatMul", [weights, v], hint="attention")


def _static_mask(ctx, scores, attn_mask, is_causal: bool, rows: int, cols: int):
    """A mask known here (a buffer, causal): one additive constant. A row PyTorch masks
    entirely comes out as zeros (not NaN): its mask row is zeroed and its weights
    multiplied by 0, decided here, so no op has to find such rows at run time."""
    additive = np.zeros((rows, cols), dtype=np.float32)
    if is_causal:
        additive = np.where(np.tril(np.ones((rows, cols), dtype=bool)), 0.0, -np.inf)
    if attn_mask is not None:
        values = np.asarray(attn_mask.array)
        values = np.where(values, 0.0, -np.inf) if values.dtype == bool else values
        additive = additive + values
    if not is_causal and attn_mask is None:
        return ctx.op("Softmax", [scores], axis=-1, hint="attention")
    additive = additive.astype(np.float32)
    empty = np.isneginf(additive).all(axis=-1, keepdims=True)
    additive = np.where(empty, np.float32(0), additive).astype(np.float32)
    masked = ctx.op("Add", [scores, ctx.builder.constant(additive, "attention_mask")])
    weights = ctx.op("Softmax", [masked], axis=-1, hint="attention")
    if empty.any():
        keep = (~empty).astype(np.float32)
        weights = ctx.op("Mul", [weights, ctx.builder.constant(keep, "attention_rows")])
    return weights


def _dynamic_mask(ctx, scores, attn_mask):
    """A mask given at run time: rows masked entirely found by the ops themselves."""
    if ctx.dtype(attn_mask) == ir.DataType.BOOL:  # True: take part
        attn_mask = ctx.op("Where", [attn_mask, ctx.scalar(0.0, scores),
                                     ctx.scalar(-np.inf, scores)])
    masked = ctx.op("Add", [scores, attn_mask])
    weights = ctx.op("Softmax", [masked], axis=-1, hint="attention")
    empty = ctx.op("Equal", [ctx.op("ReduceMax", [masked], axes=[-1], keepdims=1),
                             ctx.scalar(-np.inf, scores)])
    return ctx.op("Where", [empty, ctx.scalar(0.0, scores), weights])
