"""Layers jcjohnson/fast-neural-style shipped in its own code and saved in its models
(fast_neural_style/ShaveImage.lua, TotalVariation.lua); its InstanceNormalization is
in instance_norm.py."""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_tensor

PACKAGE = "jcjohnson/fast-neural-style"


@converter("nn.ShaveImage", package=PACKAGE)
def shave_image(ctx, module, x):
    """Crops `size` pixels off every border: x[:, :, s+1 .. H-s, s+1 .. W-s]."""
    x = as_tensor(x, "ShaveImage")
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ConversionError(f"ShaveImage takes N x C x H x W input, got {list(shape)}")
    s = module.int("size")
    height, width = shape[2], shape[3]
    if s < 0 or height - 2 * s < 1 or width - 2 * s < 1:
        raise ConversionError(f"cannot shave {s} pixels off a {height}x{width} image")
    if s == 0:
        return x
    return ctx.op("Slice", [x, ctx.int64s([s, s], "starts"),
                            ctx.int64s([height - s, width - s], "ends"),
                            ctx.int64s([2, 3], "axes")], hint="shave")


@converter("nn.TotalVariation", package=PACKAGE)
def total_variation(ctx, module, x):
    """A loss that acts in the backward pass only: the forward output is the input."""
    return as_tensor(x, "TotalVariation")
