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
