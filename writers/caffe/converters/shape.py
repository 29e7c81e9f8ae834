"""Ops that move data without arithmetic: Reshape/Flatten/Squeeze/Unsqueeze, Concat,
Slice/Split, Transpose, Pad, Expand/Tile, Gather with constant indices,
DepthToSpace/SpaceToDepth, Constant."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import (
    expand,
    gather_axis,
    pad_constant,
    pad_gather,
    reshape,
    split_axis,
    transpose,
)
from migrate.writers.caffe.registry import op_converter


def _same_data(net, node):
    """A reshape: Caffe's Reshape (Flatten for ONNX's usual Flatten(axis=1))."""
    x = node.inputs[0]
    out_shape = net.value_shape(node.outputs[0])
    blob = net.blob(x)
    in_shape = net.shape(blob)
    if tuple(out_shape) == in_shape:
        net.bind(node.outputs[0], blob)
        return
    if node.op_type == "Flatten" and len(out_shape) == 2 and len(in_shape) >= 2 and \
            out_shape[0] == in_shape[0]:
        net.output("Flatten", [blob])
        return
    net.bind(node.outputs[0], reshape(net, blob, out_shape, kind=None))


op_converter("Reshape", "Flatten", "Squeeze", "Unsqueeze")(_same_data)


def _axis(node, rank, default=0):
    axis = node.attributes.get_int("axis", default)
    return axis + rank if axis < 0 else axis


@op_converter("Concat")
def concat_(net, node):
    out_shape = net.value_shape(node.outputs[0])
    axis = _axis(node, len(out_shape))
    blobs = [net.blob(v) for v in node.inputs if v is not None and
             np.prod(net.value_shape(v)) > 0]
    if len(blobs) == 1:
        net.bind(node.outputs[0], blobs[0])
        return
    net.output("Concat", blobs, concat_param={"axis": axis})


@op_converter("Slice")
def slice_(net, node):
    x = node.inputs[0]
    blob = net.blob(x)
    shape = list(net.shape(blob))
    rank = len(shape)
    starts = net.const(node.inputs[1]).reshape(-1).tolist()
    ends = net.const(node.inputs[2]).reshape(-1).tolist()
    axes = (net.const(node.inputs[3]).reshape(-1).tolist()
            if len(node.inputs) > 3 and node.inputs[3] is not None else list(range(len(starts))))
    steps = (net.const(node.inputs[4]).reshape(-1).tolist()
             if len(node.inputs) > 4 and node.inputs[4] is not None else [1] * len(starts))
    cuts = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = axis + rank if axis < 0 else axis
        size = shape[axis]
        if step != 1:
            raise ConversionError(f"Slice with step {step}: Caffe's Slice takes contiguous "
                                  "pieces only")
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        if end <= start:
            raise ConversionError("an empty Slice has no Caffe form")
        if (start, end) != (0, size):
            cuts.append((axis, start, end))
    if not cuts:
        net.bind(node.outputs[0], blob)
        return
    for k, (axis, start, end) in enumerate(cuts):
        size = net.shape(blob)[axis]
        points = [p for p in (start, end) if 0 < p < size]
        kept = 1 if start > 0 else 0
        blob = split_axis(net, blob, axis, points, main=kept,
                          kind=None if k == len(cuts) - 1 else "slice")[kept]
    net.bind(node.outputs[0], blob)


@op_converter("Split")
def split(net, node):
    blob = net.blob(node.inputs[0])
    shape = net.shape(blob)
    axis = _axis(node, len(shape))
    sizes = [net.value_shape(out)[axis] for out in node.outputs]
    if sum(sizes) != shape[axis]:
        raise ConversionError("Split sizes do not add up to the axis")
    points = list(np.cumsum(sizes)[:-1])
    if any(s == 0 for s in sizes):
        raise ConversionError("an empty Split piece has no Caffe form")
    pieces = split_axis(net, blob, axis, [int(p) for p in points], kind=None)
    for out, piece in zip(node.outputs, pieces, strict=True):
        net.bind(out, piece)


@op_converter("Transpose")
def transpose_(net, node):
    blob = net.blob(node.inputs[0])
    rank = len(net.shape(blob))
    perm = list(node.attributes.get_ints("perm", list(reversed(range(rank)))))
    if perm != list(range(rank)):
        net.note("Transpose -> Slice + Reshape + Concat (Caffe has no Permute layer)")
    net.bind(node.outputs[0], transpose(net, blob, perm, kind="transpose"))


@op_converter("Pad")
def pad(net, node):
    x = node.inputs[0]
    blob = net.blob(x)
    rank = len(net.shape(blob))
    pads = net.const(node.inputs[1]).reshape(-1).astype(np.int64).tolist()
    value = 0.0
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        constant = net.const(node.inputs[2])
        value = float(constant.reshape(-1)[0]) if constant.size else 0.0
    axes = list(range(rank))
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        axes = [a + rank if a < 0 else a for a in net.const(node.inputs[3]).reshape(-1)]
    begins, ends = [0] * rank, [0] * rank
    for k, axis in enumerate(axes):
        begins[axis], ends[axis] = int(pads[k]), int(pads[k + len(axes)])
    if not any(begins + ends):
        net.bind(node.outputs[0], blob)
        return
    mode = node.attributes.get_string("mode", "constant")
    if mode == "constant":
        top = pad_constant(net, blob, begins, ends, value, kind="pad")
    else:
        net.note(f"{mode} padding -> Slice + Concat of the border rows and columns")
        top = pad_gather(net, blob, begins, ends, mode, kind="pad")
    net.bind(node.outputs[0], top)


@op_converter("Constant")
def constant(net, node):
    attrs = node.attributes
    if "value" not in attrs:
        raise ConversionError("a Constant other than a tensor value")
    array = np.asarray(attrs["value"].as_tensor().numpy())
    net.bind(node.outputs[0], net.parameter(array, "const"))


@op_converter("Expand")
def expand_(net, node):
    net.bind(node.outputs[0], expand(net, net.blob(node.inputs[0]),
                                     net.value_shape(node.outputs[0]), kind="expand"))


@op_converter("Tile")
def tile(net, node):
    blob = net.blob(node.inputs[0])
    repeats = net.const(node.inputs[1]).reshape(-1).tolist()
    for axis, times in enumerate(repeats):
        if times != 1:
            shape = list(net.shape(blob))
            shape[axis] *= int(times)
            blob = net.layer("Tile", [blob], shape, kind="tile",
                             tile_param={"axis": axis, "tiles": int(times)})
    net.bind(node.outputs[0], blob)


def _blocks(net, node):
    n, c, h, w = net.value_shape(node.inputs[0])
    return n, c, h, w, node.attributes.get_int("blocksize")


@op_converter("DepthToSpace")
def depth_to_space(net, node):
    n, c, h, w, b = _blocks(net, node)
    blob = net.blob(node.inputs[0])
    if node.attributes.get_string("mode", "DCR") == "DCR":
        blob = reshape(net, blob, (n, b, b, c // (b * b), h, w), kind="blocks")
        perm = (0, 3, 4, 1, 5, 2)
    else:
        blob = reshape(net, blob, (n, c // (b * b), b, b, h, w), kind="blocks")
        perm = (0, 1, 4, 2, 5, 3)
    net.note("DepthToSpace -> Reshape + Slice/Reshape/Concat moves + Reshape")
    blob = transpose(net, blob, perm, kind="shuffle")
    net.bind(node.outputs[0], reshape(net, blob, net.value_shape(node.outputs[0]), kind=None))


@op_converter("SpaceToDepth")
def space_to_depth(net, node):
    n, c, h, w, b = _blocks(net, node)
    blob = reshape(net, net.blob(node.inputs[0]), (n, c, h // b, b, w // b, b), kind="blocks")
    net.note("SpaceToDepth -> Reshape + Slice/Reshape/Concat moves + Reshape")
    blob = transpose(net, blob, (0, 3, 5, 1, 2, 4), kind="shuffle")
    net.bind(node.outputs[0], reshape(net, blob, net.value_shape(node.outputs[0]), kind=None))


@op_converter("Gather")
def gather(net, node):
    """Gather with constant indices: Slice the axis into runs of consecutive indices,
    Concat them in the indices' order, Reshape to the indices' shape."""
    data, indices = node.inputs
    blob = net.blob(data)
    shape = net.shape(blob)
    axis = _axis(node, len(shape))
    index = net.const(indices).astype(np.int64).reshape(-1)
    index = np.where(index < 0, index + shape[axis], index)
    top = gather_axis(net, blob, axis, index.tolist(), kind="gather")
    net.bind(node.outputs[0], reshape(net, top, net.value_shape(node.outputs[0]), kind=None))
