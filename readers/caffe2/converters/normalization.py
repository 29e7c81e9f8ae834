"""Batch, instance, layer and local response normalization."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.readers.caffe2.registry import caffe2_op


@caffe2_op("SpatialBN")
def spatial_bn(ctx, op, inputs):
    if not ctx.args.int("is_test", 0) and len(op.output) > 1:
        raise ConversionError("SpatialBN in training mode (is_test=0)")
    x, scale, bias, mean, var = inputs[:5]
    y = ctx.op("BatchNormalization", [ctx.to_nchw(x), scale, bias, mean, var], hint="bn",
               epsilon=ctx.args.float("epsilon", 1e-5))
    return [ctx.from_nchw(y)]


@caffe2_op("InstanceNorm")
def instance_norm(ctx, op, inputs):
    x, scale, bias = inputs[:3]
    y = ctx.op("InstanceNormalization", [ctx.to_nchw(x), scale, bias], hint="instancenorm",
               epsilon=ctx.args.float("epsilon", 1e-5))
    return [ctx.from_nchw(y)]


@caffe2_op("LayerNorm")
def layer_norm(ctx, op, inputs):
    """Normalizes over the dims from `axis` on; with elementwise_affine, the scale and
    bias come as inputs 1 and 2. (Its mean and std outputs are not used at inference.)"""
    x = inputs[0]
    rank = len(ctx.shape(x))
    axis = ctx.args.int("axis", 1) % rank
    epsilon = ctx.args.float("epsilon", 1e-5)
    inner = list(ctx.shape(x)[axis:])
    if ctx.args.int("elementwise_affine", 0) and len(inputs) >= 3:
        scale, bias = inputs[1], inputs[2]
        if list(ctx.shape(scale)) != inner:
            scale = ctx.op("Reshape", [scale, ctx.int64s(inner)])
            bias = ctx.op("Reshape", [bias, ctx.int64s(inner)])
    else:
        import numpy as np

        scale = ctx.const(np.ones(inner, np.float32), "ln_scale")
        bias = ctx.const(np.zeros(inner, np.float32), "ln_bias")
    return [ctx.op("LayerNormalization", [x, scale, bias], hint="layernorm", axis=axis,
                   epsilon=epsilon)]


@caffe2_op("LRN")
def lrn(ctx, op, inputs):
    y = ctx.op("LRN", [ctx.to_nchw(inputs[0])], hint="lrn", size=ctx.args.int("size"),
               alpha=ctx.args.float("alpha", 1e-4), beta=ctx.args.float("beta", 0.75),
               bias=ctx.args.float("bias", 1.0))
    return [ctx.from_nchw(y)]
