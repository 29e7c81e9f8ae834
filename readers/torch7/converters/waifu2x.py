"""nagadomi/waifu2x's own `w2nn.*` classes (lib/*.lua), as its models save them.

Converted in evaluate mode, as waifu2x runs its models (w2nn.load_model calls
:evaluate()).
"""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.conv import spatial_convolution
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_table, as_tensor, as_tensors

PACKAGE = "nagadomi/waifu2x"


@converter("w2nn.InplaceClip01", package=PACKAGE)
def inplace_clip01(ctx, module, x):
    """clamp(x, 0, 1), in place in Torch7 (the last layer of every srcnn.lua model)."""
    x = as_tensor(x, "InplaceClip01")
    return ctx.op("Clip", [x, ctx.scalar(0.0, "min"), ctx.scalar(1.0, "max")], hint="clip01")


@converter("w2nn.LeakyReLU", package=PACKAGE)
def leaky_relu(ctx, module, x):
    """(|x| + x)/2 - negative_scale (|x| - x)/2: x above zero, negative_scale * x below."""
    x = as_tensor(x, "LeakyReLU")
    return ctx.op("LeakyRelu", [x], hint="leakyrelu",
                  alpha=module.float("negative_scale", 0.333))


@converter("w2nn.ScaleTable", package=PACKAGE)
def scale_table(ctx, module, x):
    """{x, s} -> x * s, s (N x C x 1 x 1 in the SE blocks) expanded as x."""
    data, scale = as_tensors(x, "ScaleTable", size=2)
    data_shape, scale_shape = ctx.shape(data), ctx.shape(scale)
    if (len(data_shape) != len(scale_shape) or data_shape[1] != scale_shape[1]
            or any(s not in (1, d) for s, d in zip(scale_shape, data_shape, strict=True))):
        raise ConversionError(f"ScaleTable: {list(scale_shape)} does not expand as "
                              f"{list(data_shape)}")
    return ctx.op("Mul", [scale, data], hint="scale")


@converter("w2nn.AuxiliaryLossTable", package=PACKAGE)
def auxiliary_loss_table(ctx, module, x):
    """Evaluate mode: entry `i` of the input table (training returns the whole table)."""
    items = as_table(x, "AuxiliaryLossTable", at_least=1)
    i = module.int("i", 1)
    if not 1 <= i <= len(items):
        raise ConversionError(f"AuxiliaryLossTable selects entry {i} of a table of {len(items)}")
    return as_tensor(items[i - 1], f"AuxiliaryLossTable's entry {i}")


@converter("w2nn.ShakeShakeTable", package=PACKAGE)
def shake_shake_table(ctx, module, x):
    """Evaluate mode: the sum of the two branches (training mixes them at random)."""
    a, b = as_tensors(x, "ShakeShakeTable", size=2)
    return ctx.op("Add", [a, b], hint="add")


@converter("w2nn.Print", "w2nn.GradWeight", package=PACKAGE)
def copy(ctx, module, x):
    """Debug print / gradient scaling: the forward output is a copy of the input."""
    return as_tensor(x, module.cls)


@converter("w2nn.PrintTable", package=PACKAGE)
def print_table(ctx, module, x):
    return x


# A SpatialConvolution subclass (fixed 3x3 difference filters, no bias)
converter("w2nn.EdgeFilter", package=PACKAGE)(spatial_convolution)
