"""`nn.InstanceNormalization` as two style-transfer projects shipped it.

Both classes share a name but not their fields:
- jcjohnson/fast-neural-style (fast_neural_style/InstanceNormalization.lua): fields
  nOutput, eps, prev_N, weight, bias;
- junyanz/CycleGAN (util/InstanceNormalization.lua): fields nOutput, eps, momentum,
  affine, running_mean, running_var, prev_batch_size, and weight/bias only when affine.

Each views its N x C x H x W input as 1 x NC x H x W and runs an inner
SpatialBatchNormalization in training mode, so that every sample and channel is
normalised with its own mean and (biased) variance over H x W: instance
normalisation (Ulyanov et al.), evaluate mode included. nn commit 919eeca (Aug 2017)
made a batch-size-1 BatchNormalization use its running statistics instead, which
silently turns these layers into a fixed affine map on later nn. The projects were
written and their models trained for true instance normalisation, so that is what
this converts to (ONNX InstanceNormalization), and the conversion notes say so.
"""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_tensor

FAST_NEURAL_STYLE = "jcjohnson/fast-neural-style"
CYCLEGAN = "junyanz/CycleGAN"


def project_of(module) -> str:
    """Which project's class a saved nn.InstanceNormalization is (by its fields)."""
    cyclegan_fields = ("affine", "prev_batch_size", "momentum", "running_mean")
    return CYCLEGAN if any(module.has(f) for f in cyclegan_fields) else FAST_NEURAL_STYLE


@converter("nn.InstanceNormalization", package=f"{FAST_NEURAL_STYLE} or {CYCLEGAN}")
def instance_normalization(ctx, module, x):
    x = as_tensor(x, "InstanceNormalization")
    shape = ctx.shape(x)
    if len(shape) != 4:
        # both classes read input:size(1..4)
        raise ConversionError(f"InstanceNormalization takes N x C x H x W input, got {shape}")
    n = module.int("nOutput", shape[1])
    if shape[1] != n:
        raise ConversionError(f"input has {shape[1]} channels, the layer {n}")
    eps = module.float("eps", 1e-5)
    project = project_of(module)
    affine = module.bool("affine", True)  # fast-neural-style's is always affine
    weight, bias = module.tensor("weight"), module.tensor("bias")
    if affine and (weight is None or bias is None):
        raise ConversionError("affine InstanceNormalization without weight/bias")
    scale = weight.reshape(n) if affine else np.ones(n, np.float32)
    shift = bias.reshape(n) if affine else np.zeros(n, np.float32)
    ctx.note(f"nn.InstanceNormalization ({project}) converted to true instance normalization "
             "(each sample's own statistics, as the project was written and trained for; "
             "Torch7 nn after commit 919eeca would apply its running statistics instead)")
    return ctx.op("InstanceNormalization", [x, ctx.const(scale, "scale"),
                                            ctx.const(shift, "bias")],
                  hint="instancenorm", epsilon=eps)
