"""Sliding-window arithmetic shared by convolutions and pooling: explicit pads, and when
LiteRT's SAME padding computes exactly the same thing."""

from __future__ import annotations

from collections.abc import Sequence


def onnx_pads(node, spatial: int, in_sizes: Sequence[int], kernel: Sequence[int],
              strides: Sequence[int], dilations: Sequence[int]) -> tuple[list[int], list[int]]:
    """(begin pads, end pads) per spatial axis, auto_pad resolved."""
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
            total = same_total(size, k, s, d)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return begin, end
    if auto == "VALID":
        return [0] * spatial, [0] * spatial
    pads = list(node.attributes.get_ints("pads", [0] * (2 * spatial)))
    return pads[:spatial], pads[spatial:]


def same_total(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Total padding TensorFlow's SAME adds on one axis (output size ceil(size / stride))."""
    out = -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    return max((out - 1) * stride + effective - size, 0)


def is_same(size: int, kernel: int, stride: int, dilation: int, begin: int, end: int,
            out: int) -> bool:
    """Whether SAME padding gives exactly these pads and this output size."""
    total = same_total(size, kernel, stride, dilation)
    return out == -(-size // stride) and begin == total // 2 and end == total - total // 2


def effective_end(size: int, kernel: int, stride: int, dilation: int, begin: int,
                  out: int) -> int:
    """End padding a VALID window needs to produce `out` positions (ceil mode reads
    past the explicit pads); never negative (VALID ignores rows it does not reach)."""
    effective = (kernel - 1) * dilation + 1
    return max((out - 1) * stride + effective - size - begin, 0)
