"""Sliding-window attributes of ONNX Conv / ConvTranspose / pooling nodes, resolved to
numbers (auto_pad included)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import onnx_ir as ir

from migrate.core.errors import ConversionError


@dataclass
class Window:
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    begins: list[int]  # pads before each spatial axis
    ends: list[int]  # pads after

    @property
    def extents(self) -> list[int]:
        """The span of each (dilated) kernel."""
        return [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations, strict=True)]


def window(node: ir.Node, spatial: Sequence[int], kernel: Sequence[int]) -> Window:
    """The window of a Conv or pooling node over an input of `spatial` size."""
    rank = len(kernel)
    attrs = node.attributes
    strides = list(attrs.get_ints("strides", [1] * rank))
    dilations = list(attrs.get_ints("dilations", [1] * rank))
    pads = list(attrs.get_ints("pads", [0] * 2 * rank))
    if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        raise ConversionError("strides, dilations or pads do not match the kernel's rank")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations):
        raise ConversionError("strides and dilations must be positive")
    result = Window(list(kernel), strides, dilations, pads[:rank], pads[rank:])
    auto_pad = attrs.get_string("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        result.begins, result.ends = [0] * rank, [0] * rank
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        for k, (size, stride, extent) in enumerate(zip(spatial, strides, result.extents,
                                                       strict=True)):
            out = math.ceil(size / stride)
            total = max((out - 1) * stride + extent - size, 0)
            small, large = total // 2, total - total // 2
            result.begins[k], result.ends[k] = ((small, large) if auto_pad == "SAME_UPPER"
                                                else (large, small))
    if any(p < 0 for p in result.begins + result.ends):
        raise ConversionError("negative pads")
    return result
