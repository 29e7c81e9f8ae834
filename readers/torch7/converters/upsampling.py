"""Spatial up-sampling."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


@converter("nn.SpatialUpSamplingNearest")
def upsampling_nearest(ctx, module, x):
    s = float(module.int("scale_factor"))
    rank = len(ctx.shape(x))
    scales = ctx.const(np.array([1.0] * (rank - 2) + [s, s], np.float32), "scales")
    # output pixel (i, j) copies input pixel (floor(i / s), floor(j / s))
    return ctx.op("Resize", [x, None, scales], hint="upsample", mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


@converter("nn.SpatialUpSamplingBilinear")
def upsampling_bilinear(ctx, module, x):
    shape = ctx.shape(x)
    h, w = shape[-2:]
    if module.has("scale_factor"):
        # nn's setSize multiplies (its doc comment's (h-1)*(s-1)+h is outdated)
        s = module.int("scale_factor")
        out_h, out_w = h * s, w * s
    elif module.has("oheight") and module.has("owidth"):
        out_h, out_w = module.int("oheight"), module.int("owidth")
    else:
        raise ConversionError("neither scale_factor nor owidth/oheight is set")
    sizes = ctx.int64s(list(shape[:-2]) + [out_h, out_w], "sizes")
    # THNN's bilinear up-sampling maps corner pixels onto corner pixels.
    return ctx.op("Resize", [x, None, None, sizes], hint="upsample", mode="linear",
                  coordinate_transformation_mode="align_corners")


@converter("nn.UpSampling")
def upsampling(ctx, module, x):
    """Nearest (integer scale_factor) or linear up-sampling of a 4-D or 5-D input: bilinear
    or trilinear, corners onto corners, to scale_factor x the size or to the given
    [odepth,] oheight, owidth."""
    shape = ctx.shape(x)
    rank = len(shape)
    if rank not in (4, 5):
        raise ConversionError(f"nn.UpSampling takes a 4-D or 5-D input, got {rank}-D")
    mode = module.get("mode", "nearest")
    if module.has("scale_factor"):
        scale = module.int("scale_factor")
        if scale < 1:
            raise ConversionError(f"scale_factor {scale} must be a positive integer")
        sizes = [d * scale for d in shape[2:]]
    elif mode == "nearest":
        raise ConversionError("nearest up-sampling needs a scale_factor")
    else:
        names = (["odepth"] if rank == 5 else []) + ["oheight", "owidth"]
        sizes = [module.int(name) for name in names]
    if mode == "nearest":
        scales = ctx.const(np.array([1.0, 1.0] + [float(scale)] * (rank - 2), np.float32),
                           "scales")
        # output pixel i copies input pixel floor(i / scale) on every axis
        return ctx.op("Resize", [x, None, scales], hint="upsample", mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    if min(sizes) < 1:
        raise ConversionError(f"output size {sizes} must be positive")
    return ctx.op("Resize", [x, None, None, ctx.int64s(list(shape[:2]) + sizes, "sizes")],
                  hint="upsample", mode="linear", coordinate_transformation_mode="align_corners")
