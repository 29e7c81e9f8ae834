"""Resize of 5-D (N x C x D x H x W) tensors, which Caffe2 has no general operator for
(its ResizeNearest3D takes only 2x height and width scales):

- nearest, integer scales (output voxel i copies input voxel floor(i / scale)): every
  value repeated `scale` times along each axis (Reshape + Tile);
- linear, corners onto corners (trilinear): interpolation is separable, so UpsampleBilinear
  over H x W (the D slices stacked as channels), then over D (H*W as a width it keeps).
"""

from __future__ import annotations

import math

from migrate.core.errors import ConversionError


def _reshape(w, blob, shape, out):
    w.emit("Reshape", [blob], [out, f"{out}_old_shape"], shape=list(shape))
    return out


def _repeat(w, blob, shape, axis, times, name):
    """Each value of one axis repeated `times` times in place."""
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    rows = _reshape(w, blob, [outer, shape[axis], 1, inner], f"{name}_rows")
    w.emit("Tile", [rows], [f"{name}_tiled"], tiles=times, axis=2)
    out = list(shape)
    out[axis] *= times
    return _reshape(w, f"{name}_tiled", out, name), out


def _upsample_bilinear(w, blob, in_hw, out_hw, out):
    # Caffe2's UpsampleBilinear maps corners onto corners and makes int(in * scale)
    # outputs: nudge the scale so that it lands on the exact size (as the 2-D writer does)
    w.emit("UpsampleBilinear", [blob], [out],
           height_scale=(out_hw[0] + 0.25) / in_hw[0], width_scale=(out_hw[1] + 0.25) / in_hw[1])
    return out


def resize_5d(w, node):
    x = node.inputs[0]
    in_shape, out_shape = list(w.shape(x)), list(w.shape(node.outputs[0]))
    if in_shape[:2] != out_shape[:2]:
        raise ConversionError("only spatial resizing (not of batch or channels) is supported")
    attrs = node.attributes
    mode = attrs.get_string("mode", "nearest")
    transform = attrs.get_string("coordinate_transformation_mode", "half_pixel")
    name = w.prefix("upsample")
    blob = w.blob(x)
    if mode == "nearest" and transform == "asymmetric" \
            and attrs.get_string("nearest_mode", "round_prefer_floor") == "floor" \
            and all(o % i == 0 for i, o in zip(in_shape[2:], out_shape[2:], strict=True)):
        w.note("5-D nearest Resize -> Reshape + Tile per axis")
        shape = in_shape
        axes = [a for a in range(2, 5) if out_shape[a] != in_shape[a]]
        if not axes:
            w.emit("Copy", [blob], [name])
            blob = name
        for k, axis in enumerate(axes):
            out = name if k == len(axes) - 1 else f"{name}_axis{axis}"
            blob, shape = _repeat(w, blob, shape, axis, out_shape[axis] // in_shape[axis], out)
        w.bind(node.outputs[0], blob)
        return
    if mode == "linear" and transform == "align_corners":
        w.note("trilinear Resize -> UpsampleBilinear over H x W, then over D")
        n, c, d, h, wd = in_shape
        od, oh, ow = out_shape[2:]
        planes = _reshape(w, blob, [n, c * d, h, wd], f"{name}_planes")
        planes = _upsample_bilinear(w, planes, (h, wd), (oh, ow), f"{name}_hw")
        depth = _reshape(w, planes, [n * c, 1, d, oh * ow], f"{name}_depth")
        depth = _upsample_bilinear(w, depth, (d, oh * ow), (od, oh * ow), f"{name}_d")
        w.bind(node.outputs[0], _reshape(w, depth, out_shape, name))
        return
    raise ConversionError(f"5-D Resize mode={mode} ({transform}) has no Caffe2 equivalent")
