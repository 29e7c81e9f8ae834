"""Exact multi-layer expressions for what BVLC Caffe has no single layer for.

Every construction here computes the same numbers as the ONNX op it stands for:
either no arithmetic at all (Slice, Concat, Reshape move data), or arithmetic whose
only effect is a rounding of the last bit (a one-hot convolution adds zeros; a
correction factor multiplies once).

- crops: Slice along an axis; the pieces nobody reads are silenced at the end;
- explicit zero padding: a depthwise Convolution with a one-hot kernel and the
  padding as its (symmetric) pad: out[i] = x[i - begin] for any begin/end pads;
- constant padding with a value: the zero padding, then a Bias map that adds the
  value on the padded border only; padded channels: a 1x1 Convolution that copies
  the channels and has the value as the bias of the new ones;
- gathers with a fixed index list along an axis (reflect/edge padding, channel
  permutations): Slice into runs of consecutive indices, then Concat in order;
- moving one axis (a Transpose of that kind): Slice along it into single pieces,
  Reshape each so the size-1 axis sits at its new place, Concat there;
- broadcasting a smaller operand: Scale/Bias with the operand reshaped to the block of
  axes it spans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.net import MAX_MATERIALISED, NetBuilder, Shape

# Slice/Concat constructions cut an axis into at most this many pieces
MAX_PIECES = 4096
# an explicit padding's one-hot kernel has at most this many taps (else 1x1 + crop)
MAX_ONE_HOT = 49


def power(net: NetBuilder, blob: str, *, power: float = 1.0, scale: float = 1.0,
          shift: float = 0.0, kind: str = "power") -> str:
    """Caffe Power: (shift + scale * x) ^ power."""
    params = {}
    if power != 1.0:
        params["power"] = float(power)
    if scale != 1.0:
        params["scale"] = float(scale)
    if shift != 0.0:
        params["shift"] = float(shift)
    return net.layer("Power", [blob], net.shape(blob), kind=kind, power_param=params)


def reshape(net: NetBuilder, blob: str, shape: Sequence[int], kind: str = "reshape") -> str:
    shape = tuple(int(d) for d in shape)
    source = net.shape(blob)
    if shape == source:
        return blob
    if math.prod(shape) != math.prod(source):
        raise ConversionError(f"cannot reshape {list(source)} to {list(shape)}")
    dims = list(shape)
    if dims and source and dims[0] == source[0]:
        dims[0] = 0  # "copy the bottom's": the batch size may change at run time
    return net.layer("Reshape", [blob], shape, kind=kind, reshape_param={"shape": {"dim": dims}})


def split_axis(net: NetBuilder, blob: str, axis: int, points: Sequence[int],
               kind: str = "slice", main: int = 0) -> list[str]:
    """Slice a blob along `axis` at `points` (strictly increasing, inside the axis);
    piece `main` is named like the layer."""
    shape = net.shape(blob)
    bounds = [0, *points, shape[axis]]
    if len(bounds) - 1 > MAX_PIECES:
        raise ConversionError(f"cutting an axis of {shape[axis]} into {len(bounds) - 1} "
                              f"pieces is more than the {MAX_PIECES} this writer makes")
    if len(bounds) == 2:
        return [blob]
    shapes = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        piece = list(shape)
        piece[axis] = hi - lo
        shapes.append(piece)
    return net.layer_tops("Slice", [blob], shapes, kind=kind, main=main,
                          slice_param={"axis": axis, "slice_point": list(points)})


def slice_axis(net: NetBuilder, blob: str, axis: int, start: int, end: int,
               kind: str = "crop") -> str:
    """blob[..., start:end, ...] along `axis` (0 <= start < end <= size)."""
    size = net.shape(blob)[axis]
    if not 0 <= start < end <= size:
        raise ConversionError(f"slice [{start}:{end}] of an axis of {size}")
    points = [p for p in (start, end) if 0 < p < size]
    kept = 1 if start > 0 else 0
    return split_axis(net, blob, axis, points, kind, main=kept)[kept]


def concat(net: NetBuilder, blobs: Sequence[str], axis: int, kind: str = "concat") -> str:
    if len(blobs) == 1:
        return blobs[0]
    shape = list(net.shape(blobs[0]))
    shape[axis] = sum(net.shape(b)[axis] for b in blobs)
    return net.layer("Concat", list(blobs), shape, kind=kind, concat_param={"axis": axis})


def gather_axis(net: NetBuilder, blob: str, axis: int, indices: Sequence[int],
                kind: str = "gather") -> str:
    """blob.take(indices, axis) for a fixed index list: runs of consecutive indices are
    sliced out once and concatenated in order (no arithmetic)."""
    size = net.shape(blob)[axis]
    indices = [int(i) for i in indices]
    if not indices or any(not 0 <= i < size for i in indices):
        raise ConversionError(f"index outside an axis of {size}")
    if indices == list(range(size)):
        return blob
    runs: list[tuple[int, int]] = []  # (start, stop)
    for i in indices:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    cuts = sorted({c for run in runs for c in run} - {0, size})
    pieces = split_axis(net, blob, axis, cuts, kind=f"{kind}_slice")
    bounds = [0, *cuts, size]
    start_of = {lo: k for k, lo in enumerate(bounds[:-1])}
    ordered = []
    for lo, hi in runs:
        k = start_of[lo]
        while bounds[k] < hi:
            ordered.append(pieces[k])
            k += 1
    if len(ordered) > MAX_PIECES:
        raise ConversionError(f"a gather of {len(ordered)} pieces is more than the "
                              f"{MAX_PIECES} this writer makes")
    return concat(net, ordered, axis, kind=kind)


def move_axis(net: NetBuilder, blob: str, source: int, destination: int,
              kind: str = "transpose") -> str:
    """np.moveaxis(blob, source, destination): Slice along `source` into pieces of size
    1, Reshape each (a size-1 axis can sit anywhere without moving data), Concat along
    `destination`."""
    shape = list(net.shape(blob))
    if source == destination:
        return blob
    rest = [d for k, d in enumerate(shape) if k != source]
    moved = rest[:destination] + [shape[source]] + rest[destination:]
    if shape[source] == 1 or math.prod(shape) == 0:
        return reshape(net, blob, moved, kind=kind)
    pieces = split_axis(net, blob, source, list(range(1, shape[source])), kind=f"{kind}_slice")
    single = rest[:destination] + [1] + rest[destination:]
    placed = [reshape(net, piece, single, kind=f"{kind}_piece") for piece in pieces]
    return concat(net, placed, destination, kind=kind)


def _moves(shape: Sequence[int], perm: Sequence[int], forward: bool
           ) -> tuple[int, list[tuple[int, int]]]:
    """Axis moves that turn the identity order into `perm`, placing the target's axes
    left to right (forward) or right to left; (pieces needed, [(from, to)])."""
    order = list(range(len(perm)))
    moves, cost = [], 0
    positions = range(len(perm)) if forward else reversed(range(len(perm)))
    for position in positions:
        axis = perm[position]
        current = order.index(axis)
        if current != position:
            order.insert(position, order.pop(current))
            moves.append((current, position))
            cost += shape[axis]
    return cost, moves


def transpose(net: NetBuilder, blob: str, perm: Sequence[int], kind: str = "transpose") -> str:
    """A permutation of axes as a few axis moves (each costs one Slice piece per element
    of the moved axis): the cheaper of two orders of placing the axes."""
    shape = net.shape(blob)
    perm = [int(p) for p in perm]
    cost, moves = min(_moves(shape, perm, True), _moves(shape, perm, False))
    if cost > MAX_PIECES:
        raise ConversionError(f"Transpose {perm} of a {list(shape)} tensor needs {cost} "
                              f"slices in Caffe (at most {MAX_PIECES})")
    for source, destination in moves:
        blob = move_axis(net, blob, source, destination, kind=kind)
    return blob


# -- padding ------------------------------------------------------------------------------

def crop(net: NetBuilder, blob: str, begins: Sequence[int], ends: Sequence[int],
         kind: str = "crop") -> str:
    """Remove begins[k] / ends[k] (>= 0) elements at the start / end of each axis k."""
    for axis, (b, e) in enumerate(zip(begins, ends, strict=True)):
        if b or e:
            size = net.shape(blob)[axis]
            if b + e >= size:
                raise ConversionError(f"cropping {b}+{e} of an axis of {size} leaves nothing")
            blob = slice_axis(net, blob, axis, b, size - e, kind=kind)
    return blob


def zero_pad_spatial(net: NetBuilder, blob: str, begins: Sequence[int], ends: Sequence[int],
                     kind: str = "pad") -> str:
    """Zero padding of the two spatial axes of an NCHW blob (pads >= 0, any begin/end):
    a depthwise Convolution whose kernel is one-hot. With symmetric pad P and kernel
    K = 2P - b - e + 1 holding its 1 at P - b, out[i] = x[i - b] exactly. When the pads
    differ a lot (a large kernel), a 1x1 kernel with P = max(b, e) and a crop instead."""
    n, c, h, w = net.shape(blob)
    kernel, pad, hot = [], [], []
    for b, e in zip(begins, ends, strict=True):
        p = max(b, e)
        kernel.append(2 * p - b - e + 1)
        pad.append(p)
        hot.append(p - b)
    large = kernel[0] * kernel[1] > MAX_ONE_HOT
    if large:
        kernel, hot = [1, 1], [0, 0]
    weight = np.zeros((c, 1, kernel[0], kernel[1]), np.float32)
    weight[:, 0, hot[0], hot[1]] = 1.0
    shape = (n, c, h + begins[0] + ends[0], w + begins[1] + ends[1])
    if large:
        shape = (n, c, h + 2 * pad[0], w + 2 * pad[1])
    top = net.layer("Convolution", [blob], shape, kind=kind, blobs=[weight],
                    convolution_param=conv_window(
                        {"num_output": c, "group": c, "bias_term": False}, kernel, [1, 1],
                        pad, [1, 1]))
    if large:
        top = crop(net, top, [0, 0, pad[0] - begins[0], pad[1] - begins[1]],
                   [0, 0, pad[0] - ends[0], pad[1] - ends[1]], kind=f"{kind}_crop")
    return top


def conv_window(params: dict, kernel: Sequence[int], stride: Sequence[int],
                pad: Sequence[int], dilation: Sequence[int]) -> dict:
    """ConvolutionParameter window fields the way Caffe prototxts write them: one value
    when square, kernel_h/kernel_w (and pad_h/stride_h...) for 2-D otherwise."""
    params = dict(params)
    two_d = len(kernel) == 2
    for key, values, default in (("kernel", kernel, None), ("stride", stride, 1),
                                 ("pad", pad, 0)):
        values = [int(v) for v in values]
        if len(set(values)) == 1:
            if values[0] != default:
                params["kernel_size" if key == "kernel" else key] = [values[0]]
        elif two_d:
            params[f"{key}_h"], params[f"{key}_w"] = values
        else:
            params["kernel_size" if key == "kernel" else key] = values
    dilation = [int(v) for v in dilation]
    if any(d != 1 for d in dilation):
        params["dilation"] = dilation if len(set(dilation)) > 1 else [dilation[0]]
    return params


def pad_constant(net: NetBuilder, blob: str, begins: Sequence[int], ends: Sequence[int],
                 value: float = 0.0, kind: str = "pad") -> str:
    """Constant padding (negative pads crop)."""
    shape = net.shape(blob)
    blob = crop(net, blob, [max(-b, 0) for b in begins], [max(-e, 0) for e in ends],
                kind=f"{kind}_crop")
    begins = [max(b, 0) for b in begins]
    ends = [max(e, 0) for e in ends]
    spatial = len(shape) == 4
    for axis in range(len(shape)):
        if (begins[axis] or ends[axis]) and not (spatial and axis >= 2):
            channels = shape[1] + begins[1] + ends[1]
            if spatial and axis == 1 and channels * shape[1] <= MAX_MATERIALISED:
                blob = _pad_channels(net, blob, begins[1], ends[1], value, kind)
            else:
                blob = _pad_with_blocks(net, blob, axis, begins[axis], ends[axis], value,
                                        kind)
    if spatial and any(begins[2:] + ends[2:]):
        padded = zero_pad_spatial(net, blob, begins[2:], ends[2:], kind=kind)
        if value != 0.0:
            h, w = net.shape(padded)[2:]
            border = np.full((h, w), value, np.float32)
            inner = net.shape(blob)[2:]
            border[begins[2]:begins[2] + inner[0], begins[3]:begins[3] + inner[1]] = 0.0
            padded = net.layer("Bias", [padded], net.shape(padded), kind=f"{kind}_value",
                               blobs=[border], bias_param={"axis": 2, "num_axes": 2})
        blob = padded
    return blob


def _pad_channels(net: NetBuilder, blob: str, begin: int, end: int, value: float,
                  kind: str) -> str:
    """Constant channels around an NCHW blob: a 1x1 Convolution whose weights copy each
    channel to its new place (x * 1 + zeros) and whose bias is the value on the new
    channels (zeros * x + value): the layer every Caffe tool knows."""
    n, c, h, w = net.shape(blob)
    weight = np.zeros((begin + c + end, c, 1, 1), np.float32)
    weight[np.arange(begin, begin + c), np.arange(c), 0, 0] = 1.0
    bias = np.zeros(begin + c + end, np.float32)
    bias[:begin] = value
    bias[begin + c:] = value
    blobs = [weight] + ([bias] if value != 0.0 else [])
    params = {"num_output": begin + c + end, "kernel_size": [1]}
    if value == 0.0:
        params["bias_term"] = False
    return net.layer("Convolution", [blob], (n, begin + c + end, h, w), kind=kind,
                     blobs=blobs, convolution_param=params)


def _pad_with_blocks(net: NetBuilder, blob: str, axis: int, begin: int, end: int,
                     value: float, kind: str) -> str:
    """Constant padding along a non-spatial axis: Concat with constant blocks."""
    parts = []
    for size in (begin, end):
        if size:
            block = list(net.shape(blob))
            block[axis] = size
            parts.append(net.parameter(np.full(block, value, np.float32), f"{kind}_block"))
        else:
            parts.append(None)
    ordered = [p for p in (parts[0], blob, parts[1]) if p is not None]
    return concat(net, ordered, axis, kind=kind)


def pad_indices(size: int, begin: int, end: int, mode: str) -> list[int]:
    """The source index of every output position of a reflect/edge/wrap padding."""
    middle = list(range(size))
    if mode == "reflect":
        if begin >= size or end >= size:
            raise ConversionError(f"reflect padding of {max(begin, end)} on an axis of {size}")
        return middle[1:begin + 1][::-1] + middle + middle[-end - 1:-1][::-1]
    if mode == "edge":
        return [0] * begin + middle + [size - 1] * end
    if mode == "wrap":
        if begin > size or end > size:
            raise ConversionError(f"wrap padding of {max(begin, end)} on an axis of {size}")
        return middle[size - begin:] + middle + middle[:end]
    raise ConversionError(f"{mode} padding has no Caffe equivalent")


def pad_gather(net: NetBuilder, blob: str, begins: Sequence[int], ends: Sequence[int],
               mode: str, kind: str = "pad") -> str:
    blob = crop(net, blob, [max(-b, 0) for b in begins], [max(-e, 0) for e in ends],
                kind=f"{kind}_crop")
    for axis, (b, e) in enumerate(zip(begins, ends, strict=True)):
        if b > 0 or e > 0:
            size = net.shape(blob)[axis]
            blob = gather_axis(net, blob, axis, pad_indices(size, max(b, 0), max(e, 0), mode),
                               kind=kind)
    return blob


# -- broadcasting -------------------------------------------------------------------------

def operand_block(out_shape: Shape, shape: Sequence[int]) -> tuple[int, Shape, bool]:
    """Where a broadcast operand sits in the output: (first axis, the output's shape over
    the block of axes it spans, whether it must be expanded within that block)."""
    rank = len(out_shape)
    shape = [1] * (rank - len(shape)) + [int(d) for d in shape]
    if len(shape) > rank:
        raise ConversionError(f"an operand of shape {list(shape)} is larger than the result "
                              f"{list(out_shape)}")
    for d, o in zip(shape, out_shape, strict=True):
        if d not in (1, o):
            raise ConversionError(f"shape {list(shape)} does not broadcast to "
                                  f"{list(out_shape)}")
    spans = [k for k, d in enumerate(shape) if d != 1]
    if not spans:
        ones = [k for k, o in enumerate(out_shape) if o == 1]
        if ones:  # a size-1 axis of the output holds the single value
            return ones[0], (1,), False
        return 0, (), False
    first, last = spans[0], spans[-1] + 1
    block = tuple(out_shape[first:last])
    expand = tuple(shape[first:last]) != block
    return first, block, expand


def scale_or_bias_by_constant(net: NetBuilder, blob: str, constant: np.ndarray, layer: str,
                              kind: str) -> str:
    """blob * constant (layer "Scale") or blob + constant ("Bias") for a constant that
    broadcasts to blob's shape: the layer's parameter is the constant over the block of
    axes it spans."""
    out_shape = net.shape(blob)
    axis, block, expand = operand_block(out_shape, constant.shape)
    rank = len(out_shape)
    full = constant.reshape([1] * (rank - constant.ndim) + list(constant.shape))
    values = full[(0,) * axis + (slice(None),) * len(block) + (0,) * (rank - axis - len(block))]
    if expand:
        if math.prod(block) > MAX_MATERIALISED:
            raise ConversionError(f"a constant broadcast to {list(block)} is too large")
        values = np.broadcast_to(values, block)
    values = np.ascontiguousarray(values, np.float32).reshape(block)
    param = {"axis": axis, "num_axes": len(block)}
    key = "scale_param" if layer == "Scale" else "bias_param"
    return net.layer(layer, [blob], out_shape, kind=kind, blobs=[values], **{key: param})


def scale_or_bias_by_blob(net: NetBuilder, big: str, small: str, layer: str, kind: str
                          ) -> str:
    """big * small ("Scale") or big + small ("Bias") where `small` broadcasts to `big`:
    the two-bottom form, `small` reshaped to the block of axes it spans."""
    out_shape = net.shape(big)
    axis, block, expand = operand_block(out_shape, net.shape(small))
    if expand:
        raise ConversionError(f"broadcasting {list(net.shape(small))} over {list(out_shape)} "
                              "within its axes has no Caffe layer")
    small = reshape(net, small, block, kind=f"{kind}_operand")
    key = "scale_param" if layer == "Scale" else "bias_param"
    return net.layer(layer, [big, small], out_shape, kind=kind, **{key: {"axis": axis}})


def expand(net: NetBuilder, blob: str, out_shape: Sequence[int], kind: str = "expand") -> str:
    """Broadcast a blob to `out_shape` (NumPy rules): leading axes added by a Reshape,
    size-1 axes repeated by Tile layers (copies, no arithmetic)."""
    out_shape = tuple(int(d) for d in out_shape)
    shape = net.shape(blob)
    if len(shape) > len(out_shape):
        raise ConversionError(f"cannot broadcast {list(shape)} to {list(out_shape)}")
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    for d, o in zip(padded, out_shape, strict=True):
        if d not in (1, o):
            raise ConversionError(f"shape {list(shape)} does not broadcast to {list(out_shape)}")
    if math.prod(out_shape) > MAX_MATERIALISED * 16:
        raise ConversionError(f"broadcasting to {list(out_shape)} is too large")
    blob = reshape(net, blob, padded, kind=f"{kind}_rank")
    for axis, (d, o) in enumerate(zip(padded, out_shape, strict=True)):
        if d != o:
            shape = list(net.shape(blob))
            shape[axis] = o
            blob = net.layer("Tile", [blob], shape, kind=kind,
                             tile_param={"axis": axis, "tiles": o})
    return blob
