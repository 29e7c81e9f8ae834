"""Resize (nearest, linear) on the two spatial axes.

Resizing an axis is a fixed linear map M (output x input), the same for every row and
channel; ONNX's coordinate modes only change M. The writer computes M for the node and
looks for an exact BVLC construction:

- a Deconvolution (depthwise, fixed kernel) when M is a strided stencil: integer
  upscaling, e.g. nearest x2 (kernel [1, 1], stride 2) or bilinear x2 with aligned
  corners (kernel [.5, 1, .5], stride 2, pad 1); borders that clamp (half_pixel) are
  handled by repeating the edge rows first (Slice + Concat);
- otherwise an InnerProduct per axis whose weight is M itself (kron(M, I) for the height
  axis), while those weights stay small;

and checks that the construction's matrix equals M before using it. What neither can
express gets a clear error.
"""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import conv_window, crop, gather_axis, reshape
from migrate.writers.caffe.registry import op_converter

# the height axis's InnerProduct weight is (out_h * width) x (in_h * width)
MAX_DENSE_WEIGHTS = 1 << 22


def _coordinates(mode: str, out: int, size: int, scale: float) -> np.ndarray:
    """ONNX Resize: the input coordinate of each output position."""
    x = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if mode == "align_corners":
        return x * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    raise ConversionError(f"Resize with coordinate_transformation_mode {mode}")


def resize_matrix(mode: str, coordinate_mode: str, nearest_mode: str, size: int, out: int,
                  scale: float) -> np.ndarray:
    """The (out x size) matrix of one axis's resize, as ONNX Runtime computes it."""
    coords = _coordinates(coordinate_mode, out, size, scale)
    matrix = np.zeros((out, size))
    rows = np.arange(out)
    if mode == "nearest":
        rounding = {"round_prefer_floor": lambda c: np.ceil(c - 0.5),
                    "round_prefer_ceil": lambda c: np.floor(c + 0.5),
                    "floor": np.floor, "ceil": np.ceil}.get(nearest_mode)
        if rounding is None:
            raise ConversionError(f"Resize nearest_mode {nearest_mode}")
        index = np.clip(rounding(coords), 0, size - 1).astype(int)
        matrix[rows, index] = 1.0
        return matrix
    if mode == "linear":
        coords = np.clip(coords, 0, size - 1)
        low = np.floor(coords).astype(int)
        high = np.minimum(low + 1, size - 1)
        frac = coords - low
        np.add.at(matrix, (rows, low), 1.0 - frac)
        np.add.at(matrix, (rows, high), frac)
        return matrix
    raise ConversionError(f"Resize mode {mode} has no Caffe construction")


def stencil(matrix: np.ndarray, stride: int, edge: tuple[int, int]):
    """M as (kernel, pad, crop_end) of a stride-`stride` deconvolution over the input
    with `edge` rows repeated at its ends, or None when it is not one."""
    out, size = matrix.shape
    padded = size + edge[0] + edge[1]
    replicate = np.zeros((padded, size))
    for j in range(padded):
        replicate[j, min(max(j - edge[0], 0), size - 1)] = 1.0
    column = size // 2 + edge[0]  # read the kernel off a column far from the borders
    rows = np.nonzero(matrix[:, column - edge[0]])[0]
    if rows.size == 0:
        return None
    first, last = int(rows[0]), int(rows[-1])
    kernel = matrix[first:last + 1, column - edge[0]].copy()
    offset = column * stride - first  # output o = j * stride + k - offset
    if offset < 0:
        return None
    implied = np.zeros((out, padded))
    for j in range(padded):
        for k, weight in enumerate(kernel):
            o = j * stride + k - offset
            if 0 <= o < out:
                implied[o, j] = weight
    if not np.allclose(implied @ replicate, matrix, rtol=0, atol=1e-6):
        return None
    length = (padded - 1) * stride + kernel.size - 2 * offset
    if length < out:
        return None
    return kernel, offset, length - out


def _deconvolution(net, blob, matrices, out_shape):
    """The resize as one depthwise Deconvolution (after edge replication), or None."""
    plans = []
    for matrix in matrices:
        out, size = matrix.shape
        found = None
        for stride in sorted({max(out // size, 1), max(round((out - 1) / max(size - 1, 1)), 1)}):
            for edge in ((0, 0), (1, 1), (1, 0), (0, 1)):
                plan = stencil(matrix, stride, edge)
                if plan is not None:
                    found = (stride, edge, plan)
                    break
            if found:
                break
        if found is None:
            return None
        plans.append(found)
    n, c = net.shape(blob)[:2]
    for axis, (_, edge, _) in enumerate(plans):
        if any(edge):
            size = net.shape(blob)[2 + axis]
            indices = [0] * edge[0] + list(range(size)) + [size - 1] * edge[1]
            blob = gather_axis(net, blob, 2 + axis, indices, kind="edge")
    kernel = np.outer(plans[0][2][0], plans[1][2][0]).astype(np.float32)
    weight = np.ascontiguousarray(np.broadcast_to(kernel, (c, 1, *kernel.shape)))
    pads = [plan[2][1] for plan in plans]
    strides = [plan[0] for plan in plans]
    extra = [plan[2][2] for plan in plans]
    shape = [n, c] + [o + e for o, e in zip(out_shape[2:], extra, strict=True)]
    top = net.layer("Deconvolution", [blob], shape, kind=None if not any(extra) else "resize",
                    blobs=[weight], convolution_param=conv_window(
                        {"num_output": c, "group": c, "bias_term": False}, kernel.shape,
                        strides, pads, [1, 1]))
    return crop(net, top, [0, 0, 0, 0], [0, 0, *extra])


def _dense(net, blob, matrices, out_shape):
    """The resize as InnerProducts whose weights are the matrices (width first)."""
    n, c, h, w = net.shape(blob)
    out_h, out_w = out_shape[2:]
    if out_h * w * h * out_w > MAX_DENSE_WEIGHTS and h != out_h:
        raise ConversionError(f"Resize {h}x{w} -> {out_h}x{out_w}: no exact Caffe "
                              "construction (not an integer stencil, and the dense form "
                              f"would need {out_h * out_w * h * out_w:,} weights)")
    if w != out_w or not np.array_equal(matrices[1], np.eye(w)):
        blob = net.layer("InnerProduct", [blob], (n, c, h, out_w), kind="resize_w",
                         blobs=[matrices[1].astype(np.float32)],
                         inner_product_param={"num_output": out_w, "bias_term": False,
                                              "axis": 3})
    if h != out_h or not np.array_equal(matrices[0], np.eye(h)):
        weight = np.kron(matrices[0], np.eye(out_w)).astype(np.float32)
        flat = net.layer("InnerProduct", [blob], (n, c, out_h * out_w), kind="resize_h",
                         blobs=[weight], inner_product_param={
                             "num_output": out_h * out_w, "bias_term": False, "axis": 2})
        blob = reshape(net, flat, (n, c, out_h, out_w), kind="resize")
    return blob


@op_converter("Resize")
def resize(net, node):
    x = node.inputs[0]
    in_shape = net.value_shape(x)
    out_shape = net.value_shape(node.outputs[0])
    attrs = node.attributes
    if len(in_shape) != 4 or tuple(in_shape[:2]) != tuple(out_shape[:2]):
        raise ConversionError("Resize of other than the two spatial axes of NCHW")
    mode = attrs.get_string("mode", "nearest")
    coordinate_mode = attrs.get_string("coordinate_transformation_mode", "half_pixel")
    nearest_mode = attrs.get_string("nearest_mode", "round_prefer_floor")
    scales = None
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        given = net.const(node.inputs[2]).reshape(-1)
        scales = [float(s) for s in given[2:]] if given.size == 4 else None
    if scales is None:
        scales = [o / i for o, i in zip(out_shape[2:], in_shape[2:], strict=True)]
    matrices = [resize_matrix(mode, coordinate_mode, nearest_mode, size, out, scale)
                for size, out, scale in zip(in_shape[2:], out_shape[2:], scales, strict=True)]
    blob = net.blob(x)
    top = _deconvolution(net, blob, matrices, out_shape)
    if top is not None:
        net.note(f"Resize ({mode}, {coordinate_mode}) -> depthwise Deconvolution with a "
                 "fixed kernel")
    else:
        top = _dense(net, blob, matrices, out_shape)
        net.note(f"Resize ({mode}, {coordinate_mode}, {in_shape[2]}x{in_shape[3]} -> "
                 f"{out_shape[2]}x{out_shape[3]}) -> InnerProduct with the interpolation "
                 "matrix as weights")
    net.bind(node.outputs[0], top)

