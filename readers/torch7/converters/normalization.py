"""Batch normalization (inference form: running statistics)."""

import numpy as np

from migrate.errors import ConversionError
from readers.torch7.registry import converter


@converter("nn.BatchNormalization", "nn.SpatialBatchNormalization")
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
    spatial = module.cls.endswith("SpatialBatchNormalization")
    rank = 4 if spatial else 2
    return ctx.batched(
        x, rank, lambda xb: ctx.op("BatchNormalization", [xb, *params], hint="bn", epsilon=eps)
    )
