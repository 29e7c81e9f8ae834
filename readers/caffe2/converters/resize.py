"""Nearest and bilinear resizing, with Caffe2's own coordinate rules."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.readers.caffe2.registry import caffe2_op


def _scales(ctx, inputs) -> tuple[float, float]:
    if len(inputs) > 1:
        scales = ctx.constant_of(inputs[1])
        if scales is None:
            raise ConversionError("resize scales given by a computed tensor")
        flat = [float(v) for v in scales.reshape(-1)]
        return flat[0], flat[1]
    return ctx.args.float("height_scale", 1.0), ctx.args.float("width_scale", 1.0)


def _sizes(ctx, x, height_scale: float, width_scale: float) -> list[int]:
    """Caffe2 makes int(in * scale) outputs."""
    n, c, h, w = ctx.shape(x)
    return [n, c, int(h * height_scale), int(w * width_scale)]


@caffe2_op("ResizeNearest")
def resize_nearest(ctx, op, inputs):
    """Output pixel y reads input pixel min(int(y / scale), H - 1)."""
    x = ctx.to_nchw(inputs[0])
    hs, ws = _scales(ctx, inputs)
    sizes = ctx.int64s(_sizes(ctx, x, hs, ws), "sizes")
    y = ctx.op("Resize", [x, None, None, sizes], hint="upsample", mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return [ctx.from_nchw(y)]


@caffe2_op("UpsampleBilinear")
def upsample_bilinear(ctx, op, inputs):
    """Corners map onto corners: (in - 1) / (out - 1) per axis."""
    x = inputs[0]
    hs, ws = _scales(ctx, inputs)
    sizes = ctx.int64s(_sizes(ctx, x, hs, ws), "sizes")
    return [ctx.op("Resize", [x, None, None, sizes], hint="upsample", mode="linear",
                   coordinate_transformation_mode="align_corners")]
