"""Batch normalization (inference form: running statistics)."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


@converter("nn.BatchNormalization", "nn.SpatialBatchNormalization",
           "nn.VolumetricBatchNormalization")
def batch_normalization(ctx, module, x):
    eps = module.float("eps", 1e-5)
    mean = module.tensor("running_mean")
    if mean is None:
        raise ConversionError("batch normalization has no running_mean")
    n = mean.size
    var = module.tensor("running_var")
    if var is None:
        # Models saved before 2016 keep running_std = 1/sqrt(var + eps); nn itself
        # converts it on load the same way (BatchNormalization:read).
        std = module.tensor("running_std")
        if std is None:
            raise ConversionError("batch normalization has neither running_var nor running_std")
        var = (std.astype(np.float64) ** -2 - eps).astype(np.float32)
    weight = module.tensor("weight")  # absent when affine=false
    bias = module.tensor("bias")
    scale = np.ones(n, np.float32) if weight is None else weight.reshape(n)
    shift = np.zeros(n, np.float32) if bias is None else bias.reshape(n)
    params = [
        ctx.const(scale, "scale"), ctx.const(shift, "bias"),
        ctx.const(mean.reshape(n), "mean"), ctx.const(var.reshape(n), "var"),
    ]
    # batch x features, batch x planes x H x W, batch x planes x T x H x W
    if module.cls.endswith("VolumetricBatchNormalization"):
        rank = 5
    else:
        rank = 4 if module.cls.endswith("SpatialBatchNormalization") else 2
    return ctx.batched(
        x, rank, lambda xb: ctx.op("BatchNormalization", [xb, *params], hint="bn", epsilon=eps)
    )


@converter("nn.SpatialCrossMapLRN", "nn.SpatialLRN")
def cross_map_lrn(ctx, module, x):
    # y = x / (k + alpha/size * sum of x^2 over `size` neighbouring maps)^beta: ONNX's LRN
    return ctx.batched(x, 4, lambda x4: ctx.op(
        "LRN", [x4], hint="lrn", size=module.int("size", 5), alpha=module.float("alpha", 1e-4),
        beta=module.float("beta", 0.75), bias=module.float("k", 1.0)))


@converter("nn.Normalize")
def normalize(ctx, module, x):
    """y = x / (sum |x|^p + eps)^(1/p) over the features (x / (max|x| + eps) for p=inf)."""
    p = module.float("p")
    eps = module.float("eps", 1e-10)
    rank = len(ctx.shape(x))
    if rank not in (1, 2):
        raise ConversionError("nn.Normalize takes 1-D or 2-D input")
    axis = rank - 1
    if p == float("inf"):
        norm = ctx.op("ReduceMax", [ctx.op("Abs", [x], hint="abs")], hint="norm",
                      axes=[axis], keepdims=1)
        norm = ctx.op("Add", [norm, ctx.scalar(eps, "eps")], hint="norm")
    else:
        if p == 2.0:
            powered = ctx.op("Mul", [x, x], hint="square")
        else:
            base = x if p % 2 == 0 else ctx.op("Abs", [x], hint="abs")
            powered = ctx.op("Pow", [base, ctx.scalar(p, "p")], hint="pow")
        total = ctx.op("ReduceSum", [powered, ctx.int64s([axis], "axes")], hint="sum", keepdims=1)
        total = ctx.op("Add", [total, ctx.scalar(eps, "eps")], hint="sum")
        if p == 2.0:
            norm = ctx.op("Sqrt", [total], hint="norm")
        else:
            norm = ctx.op("Pow", [total, ctx.scalar(1.0 / p, "inv_p")], hint="norm")
    return ctx.op("Div", [x, norm], hint="normalize")
