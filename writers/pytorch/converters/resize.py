"""Resize as nn.Upsample, mapping ONNX's coordinate transformations onto PyTorch's modes:

- nearest, asymmetric coordinates, floor         -> mode="nearest"
- nearest, half_pixel, round_prefer_ceil          -> mode="nearest-exact"
- linear/cubic, align_corners                     -> align_corners=True
- linear/cubic, half_pixel or pytorch_half_pixel  -> align_corners=False
  (cubic only with PyTorch's coefficient -0.75 and exclude_outside=0)

A scale given in the file becomes scale_factor (PyTorch then maps coordinates with
1/scale, as ONNX does), output sizes become size. Anything else is an error naming the
layer."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, literal, tuple_literal
from migrate.writers.pytorch.registry import op_converter

_LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}


def _mode(node, rank: int) -> tuple[str, bool | None]:
    """(PyTorch mode, align_corners or None when it does not apply)."""
    mode = node.attributes.get_string("mode", "nearest")
    ctm = node.attributes.get_string("coordinate_transformation_mode", "half_pixel")
    what = f"Resize mode={mode}, coordinate_transformation_mode={ctm}"
    if mode == "nearest":
        nearest = node.attributes.get_string("nearest_mode", "round_prefer_floor")
        if ctm == "asymmetric" and nearest == "floor":
            return "nearest", None
        if ctm in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
            return "nearest-exact", None
        raise ConversionError(f"{what}, nearest_mode={nearest} has no PyTorch equivalent")
    if ctm not in ("align_corners", "half_pixel", "pytorch_half_pixel"):
        raise ConversionError(f"{what} has no PyTorch equivalent")
    if mode == "linear" and rank in _LINEAR:
        return _LINEAR[rank], ctm == "align_corners"
    if mode == "cubic" and rank == 4:
        a = node.attributes.get_float("cubic_coeff_a", -0.75)
        if np.float32(a) != np.float32(-0.75) or node.attributes.get_int("exclude_outside", 0):
            raise ConversionError("cubic Resize with cubic_coeff_a != -0.75 or "
                                  "exclude_outside=1 has no PyTorch equivalent")
        return "bicubic", ctm == "align_corners"
    raise ConversionError(f"{what} of a {rank}-D input has no PyTorch equivalent")


@op_converter("Resize")
def resize(g: CodeGen, node) -> None:
    x = node.inputs[0]
    shape = g.shape(x)
    out = g.shape(node.outputs[0])
    rank = len(shape)
    if rank < 3 or tuple(out[:2]) != tuple(shape[:2]):
        raise ConversionError("resizing the batch or channel dimension has no PyTorch "
                              "equivalent")
    mode, align = _mode(node, rank)
    scales = g.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
        else None
    args = []
    if scales is not None and scales.size == rank:
        spatial = [float(s) for s in scales.reshape(-1)[2:]]
        if len(set(spatial)) == 1:
            args.append(f"scale_factor={literal(spatial[0], np.float32)}")
        else:
            args.append(f"scale_factor=({', '.join(literal(s, np.float32) for s in spatial)})")
    else:
        sizes = list(out[2:])
        args.append(f"size={sizes[0] if len(sizes) == 1 else tuple_literal(sizes)}")
    args.append(f'mode="{mode}"')
    if align is not None:
        args.append(f"align_corners={align}")
    layer = g.module("upsample", f"nn.Upsample({', '.join(args)})")
    g.emit(f"{layer}({g.ref(x)})")
