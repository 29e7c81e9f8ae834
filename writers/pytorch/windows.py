"""Sliding-window arithmetic shared by the convolution and pooling converters: ONNX's
padding attributes made explicit, and PyTorch's output-size rules."""

from __future__ import annotations

import math
from collections.abc import Sequence

import onnx_ir as ir

from migrate.core.errors import ConversionError


def ints_attr(node: ir.Node, name: str, default: Sequence[int]) -> list[int]:
    attr = node.attributes.get(name)
    return list(default) if attr is None else [int(v) for v in attr.value]


def explicit_pads(node: ir.Node, spatial: Sequence[int], kernel: Sequence[int],
                  strides: Sequence[int], dilations: Sequence[int]) -> list[int]:
    """ONNX pads `[b1.., e1..]` with `auto_pad` resolved against the input size."""
    rank = len(kernel)
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return ints_attr(node, "pads", [0] * (2 * rank))
    if auto == "VALID":
        return [0] * (2 * rank)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ConversionError(f"auto_pad {auto} is not an ONNX padding mode")
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else large)
        end.append(large if auto == "SAME_UPPER" else small)
    return begin + end


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int,
                     ceil_mode: bool) -> int:
    """PyTorch's pooling output size (aten pooling_output_shape): in ceil mode the last
    window must start inside the input or its left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def torch_pad(begin: Sequence[int], end: Sequence[int]) -> list[int]:
    """ONNX per-dimension (begin, end) of the trailing dims -> F.pad's list, last dim first."""
    pairs = []
    for b, e in zip(reversed(begin), reversed(end), strict=True):
        pairs += [int(b), int(e)]
    return pairs
