"""Padding on any axes for Caffe2, whose PadImage pads the two last dims of 4-D tensors
only: blocks concatenated along each padded axis (static shapes).

- constant: blocks filled at run time (ConstantFill), so no block costs file space;
- edge: the first / last slice of the axis, tiled as many times as the padding.
"""

from __future__ import annotations

from collections.abc import Sequence


def _slice_axis(w, blob, rank, axis, start, end, out):
    starts, ends = [0] * rank, [-1] * rank
    starts[axis], ends[axis] = start, end
    w.emit("Slice", [blob], [out], starts=starts, ends=ends)
    return out


def pad_nd(w, blob: str, shape: Sequence[int], begins: Sequence[int], ends: Sequence[int],
           name: str, mode: str = "constant", value: float = 0.0) -> tuple[str, list[int]]:
    """`blob` padded by begins[a] / ends[a] on each axis a; returns the blob and its shape.
    The last emitted blob is `name`."""
    shape = list(shape)
    rank = len(shape)
    axes = [a for a in range(rank) if begins[a] or ends[a]]
    for k, axis in enumerate(axes):
        out = name if k == len(axes) - 1 else f"{name}_axis{axis}"
        parts = []
        for count, side in ((begins[axis], "before"), (ends[axis], "after")):
            if not count:
                continue
            block = f"{name}_{side}{axis}"
            if mode == "edge":
                at = 0 if side == "before" else shape[axis] - 1
                edge = _slice_axis(w, blob, rank, axis, at, at + 1, f"{block}_edge")
                w.emit("Tile", [edge], [block], tiles=count, axis=axis)
            else:
                block_shape = list(shape)
                block_shape[axis] = count
                w.emit("ConstantFill", [], [block], shape=block_shape, value=float(value))
            parts.append((side, block))
        ordered = [b for s, b in parts if s == "before"] + [blob] + [
            b for s, b in parts if s == "after"]
        w.emit("Concat", ordered, [out, f"{out}_split_info"], axis=axis)
        blob = out
        shape[axis] += begins[axis] + ends[axis]
    return blob, shape
