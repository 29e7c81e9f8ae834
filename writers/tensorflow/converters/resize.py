"""Resize: the ONNX coordinate modes LiteRT's two resize builtins compute exactly, and a
clear error for the rest (cubic, other rounding rules); 1-D as 2-D with a height of 1,
3-D as two 2-D resizes (linear and nearest interpolation are separable)."""

from __future__ import annotations

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.converters.conv import finish_spatial, spatial_input
from migrate.writers.tensorflow.registry import op_lowering

# (mode, coordinate transformation, nearest rounding) -> (builtin, align_corners,
# half_pixel_centers). LiteRT's nearest: floor(out * in/out) (asymmetric), round(...)
# with align_corners, floor((out + 0.5) * in/out) with half-pixel centres.
_MODES = {
    ("nearest", "asymmetric", "floor"): ("RESIZE_NEAREST_NEIGHBOR", False, False),
    ("nearest", "align_corners", "round_prefer_ceil"): ("RESIZE_NEAREST_NEIGHBOR", True, False),
    ("nearest", "half_pixel", "round_prefer_ceil"): ("RESIZE_NEAREST_NEIGHBOR", False, True),
    ("nearest", "tf_half_pixel_for_nn", "round_prefer_ceil"):
        ("RESIZE_NEAREST_NEIGHBOR", False, True),
    ("linear", "asymmetric", None): ("RESIZE_BILINEAR", False, False),
    ("linear", "align_corners", None): ("RESIZE_BILINEAR", True, False),
    ("linear", "half_pixel", None): ("RESIZE_BILINEAR", False, True),
}


@op_lowering("Resize")
def resize(ctx, node):
    value = node.inputs[0]
    in_shape = ctx.shape(value)
    out_shape = ctx.shape(node.outputs[0])
    if len(in_shape) not in (3, 4, 5) or tuple(in_shape[:2]) != tuple(out_shape[:2]):
        raise ctx.error("only resizing the spatial axes of a 3-D, 4-D or 5-D tensor is "
                        "supported for TensorFlow/LiteRT")
    mode = node.attributes.get_string("mode", "nearest")
    coords = node.attributes.get_string("coordinate_transformation_mode", "half_pixel")
    rounding = node.attributes.get_string("nearest_mode", "round_prefer_floor") \
        if mode == "nearest" else None
    if coords == "pytorch_half_pixel" and min(out_shape[2:]) > 1:
        coords = "half_pixel"  # the two differ only for an output of size 1
    if tuple(in_shape) == tuple(out_shape) and coords != "tf_crop_and_resize":
        ctx.alias(node.outputs[0], value)
        return
    found = _MODES.get((mode, coords, rounding))
    if found is None:
        rule = f", nearest_mode={rounding}" if rounding else ""
        raise ctx.error(f"Resize mode={mode}, coordinate_transformation_mode={coords}{rule} "
                        "has no exact LiteRT equivalent")
    kind, align_corners, half_pixel = found
    attrs = dict(align_corners=align_corners, half_pixel_centers=half_pixel)
    if len(in_shape) == 5:
        _resize_volume(ctx, node, kind, attrs)
        return
    x, rank = spatial_input(ctx, value, "resizing needs channels last")
    size = (1, out_shape[2]) if rank == 3 else tuple(out_shape[2:])
    y = _resize_2d(ctx, x, kind, size, attrs)
    finish_spatial(ctx, node, y, rank)


def _resize_2d(ctx, x, kind: str, size, attrs):
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    return ctx.emit(kind, [x, ctx.int32s(size, "size")], (x.shape[0], *size, x.shape[3]),
                    hint="resize", size=tuple(size), **attrs)


def _resize_volume(ctx, node, kind: str, attrs) -> None:
    """Resizing is separable: (H, W) of every depth slice, then the depth (the (H W)
    axis beside it keeps its size, which every coordinate mode maps onto itself)."""
    x = ctx.channels_last(node.inputs[0], "resizing needs channels last")
    n, d, h, w, c = x.shape
    od, oh, ow = ctx.shape(node.outputs[0])[2:]
    y = ctx.reshape(x, (n * d, h, w, c), hint="slices")
    y = _resize_2d(ctx, y, kind, (oh, ow), attrs)
    y = ctx.reshape(y, (n, d, oh * ow, c), hint="depth")
    y = _resize_2d(ctx, y, kind, (od, oh * ow), attrs)
    ctx.bind_permuted(node.outputs[0], ctx.reshape(y, (n, od, oh, ow, c), hint="resize"),
                      lay.channels_last(5))
