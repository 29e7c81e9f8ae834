"""cudnn.torch classes whose maths differ from the nn class of the same name.

Every other `cudnn.X` saved by a GPU model (cudnn.convert copies the nn fields and
adds descriptors, iSize, mode, ...; tensors are torch.CudaTensor) is converted by
the `nn.X` converter (see registry.py's aliased prefixes).
"""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter, lookup
from migrate.readers.torch7.values import as_tensor

PACKAGE = "soumith/cudnn.torch"


def _instance_softmax(ctx, x, op_type, what):
    """cuDNN MODE_INSTANCE: over everything but the batch (C x H x W of a 4-D input, the
    whole of a 1-D or 3-D one), where nn.SoftMax takes the channels only."""
    x = as_tensor(x, what)
    shape = list(ctx.shape(x))
    rank = len(shape)
    if rank > 4:
        raise ConversionError(f"{what} takes 1-D to 4-D input, got {rank}-D")
    if rank <= 2 or all(d == 1 for d in shape[2:]):
        return ctx.op(op_type, [x], hint=op_type.lower(), axis=min(rank - 1, 1))
    if rank == 3:
        shape = [1, *shape]  # cudnn views a single sample as a batch of one
    ctx.note(f"{what} ({PACKAGE}) normalises over C x H x W of each sample (cuDNN instance "
             "mode, as the GPU model computed), not over the channels as nn's class does")
    flat = ctx.op("Reshape", [x, ctx.int64s([shape[0], -1])], hint="flatten")
    y = ctx.op(op_type, [flat], hint=op_type.lower(), axis=1)
    return ctx.op("Reshape", [y, ctx.int64s(list(ctx.shape(x)))], hint="unflatten")


@converter("cudnn.SoftMax", package=PACKAGE)
def softmax(ctx, module, x):
    return _instance_softmax(ctx, x, "Softmax", "cudnn.SoftMax")


@converter("cudnn.LogSoftMax", package=PACKAGE)
def log_softmax(ctx, module, x):
    return _instance_softmax(ctx, x, "LogSoftmax", "cudnn.LogSoftMax")


@converter("cudnn.ClippedReLU", package=PACKAGE)
def clipped_relu(ctx, module, x):
    """min(max(x, 0), ceiling)."""
    x = as_tensor(x, "ClippedReLU")
    return ctx.op("Clip", [x, ctx.scalar(0.0, "min"), ctx.scalar(module.float("ceiling"),
                                                                 "ceiling")], hint="clippedrelu")


@converter("cudnn.SpatialAveragePooling", package=PACKAGE)
def spatial_average_pooling(ctx, module, x):
    """cudnn's class always counts the padding (`count_include_pad ~= nil and
    count_include_pad or true` is true for false too) and refuses divide=false."""
    if module.has("divide") and not module.bool("divide"):
        raise ConversionError("cudnn.SpatialAveragePooling with divide=false (cudnn refuses it)")
    proxy = module.child(module.obj, module.path)
    proxy.fields = dict(module.fields, count_include_pad=True)
    return lookup("nn.SpatialAveragePooling")(ctx, proxy, x)
