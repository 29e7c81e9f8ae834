"""Interpolation (F.interpolate / nn.Upsample): nearest, nearest-exact, (bi/tri)linear
with and without align_corners, bicubic, as ONNX Resize with the coordinate mapping
PyTorch uses.

PyTorch maps an output index back with the scale factor the user gave when one was
given (1/scale, even when in*scale is not whole), else with in/out; ONNX Resize does
the same with `scales` and with `sizes` respectively, so whichever PyTorch used is
passed.
"""

import numpy as np

from migrate.core.errors import UnsupportedError
from migrate.readers.pytorch.registry import converter


def _resize(ctx, x, output_size, scale_factors, mode: str, align_corners: bool = False):
    shape = ctx.shape(x)
    spatial = len(shape) - 2
    if mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    elif mode == "nearest-exact":
        attrs = dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                     nearest_mode="round_prefer_ceil")
    else:
        transform = "align_corners" if align_corners else "pytorch_half_pixel"
        attrs = dict(mode="cubic" if mode == "cubic" else "linear",
                     coordinate_transformation_mode=transform)
        if mode == "cubic":
            attrs["cubic_coeff_a"] = -0.75  # PyTorch's bicubic kernel
    if scale_factors is not None and not align_corners:
        scales = [1.0, 1.0] + [float(s) for s in scale_factors]
        if len(scales) != len(shape):
            scales = [1.0, 1.0] + [float(scale_factors[0])] * spatial
        scales_value = ctx.builder.constant(np.asarray(scales, np.float32), "scales")
        out = ctx.op("Resize", [x, None, scales_value], hint="resize", **attrs)
    else:
        sizes = ctx.expected_shape() or (list(shape[:2]) + [int(s) for s in output_size])
        out = ctx.op("Resize", [x, None, None, ctx.int64s(sizes)], hint="resize", **attrs)
    return out


@converter("aten.upsample_nearest1d", "aten.upsample_nearest2d", "aten.upsample_nearest3d")
def upsample_nearest(ctx, x, output_size, *scales):
    return _resize(ctx, x, output_size, _scale_factors(scales), "nearest")


@converter("aten._upsample_nearest_exact1d", "aten._upsample_nearest_exact2d",
           "aten._upsample_nearest_exact3d")
def upsample_nearest_exact(ctx, x, output_size, *scales):
    return _resize(ctx, x, output_size, _scale_factors(scales), "nearest-exact")


@converter("aten.upsample_linear1d", "aten.upsample_bilinear2d", "aten.upsample_trilinear3d")
def upsample_linear(ctx, x, output_size, align_corners, *scales):
    return _resize(ctx, x, output_size, _scale_factors(scales), "linear", bool(align_corners))


@converter("aten.upsample_bicubic2d")
def upsample_bicubic(ctx, x, output_size, align_corners, *scales):
    return _resize(ctx, x, output_size, _scale_factors(scales), "cubic", bool(align_corners))


@converter("aten._upsample_bilinear2d_aa", "aten._upsample_bicubic2d_aa")
def upsample_antialias(ctx, *args):
    raise UnsupportedError("interpolation with antialias=True has no ONNX Resize equivalent")


def _scale_factors(scales):
    """The `.vec` overloads pass one list of factors (or None); the others one optional
    factor per spatial dim."""
    if not scales:
        return None
    if len(scales) == 1 and (scales[0] is None or isinstance(scales[0], list | tuple)):
        return scales[0]
    if any(s is None for s in scales):
        return None
    return list(scales)
