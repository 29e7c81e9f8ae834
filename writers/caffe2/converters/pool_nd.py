"""Pooling beyond Caffe2's 2-D operators: any number of spatial dims, dilation, padding
larger than the window, the indices of the maxima, and MaxUnpool.

Caffe2's MaxPool / AveragePool take list arguments (`kernels`, `strides`, `pads`) for
1 to 3 spatial dims, but no dilation, no padding as large as the window, and (on CPU)
no indices. Those max poolings are written as their taps: every window position is a
strided view of the (lowest-float padded) input, and the max is the Max of the views.
The index of a window's max is that of its first tap (scan order, as Torch and ONNX
Runtime pick) that equals the max: Where over the taps in reverse order.
MaxUnpool scatters the values into zeros at those flat indices (ScatterAssign).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.converters.pad_nd import pad_nd
from migrate.writers.caffe2.registry import op_converter

# Each tap is a few ops; a damaged kernel size must not unroll into millions.
MAX_TAPS = 1024
LOWEST = float(np.finfo(np.float32).min)
_INT64 = 10  # caffe2.proto TensorProto.INT64


def pool_geometry(w, node):
    """kernel, strides, dilations, begin pads and end pads; ceil mode becomes the end
    padding that gives the output size the graph declares."""
    attrs = node.attributes
    kernel = list(attrs.get_ints("kernel_shape"))
    n = len(kernel)
    strides = list(attrs.get_ints("strides", [1] * n))
    dilations = list(attrs.get_ints("dilations", [1] * n))
    pads = list(attrs.get_ints("pads", [0] * (2 * n)))
    if attrs.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise ConversionError("pooling with auto_pad SAME has no Caffe2 equivalent here")
    if attrs.get_int("storage_order", 0):
        raise ConversionError("column-major max pooling indices have no Caffe2 equivalent")
    in_sizes = w.shape(node.inputs[0])[2:]
    out_sizes = w.shape(node.outputs[0])[2:]
    begins = pads[:n]
    ends = pads[n:]
    if attrs.get_int("ceil_mode", 0):
        ends = [max((o - 1) * s + d * (k - 1) + 1 - i - b, 0)
                for o, s, d, k, i, b in zip(out_sizes, strides, dilations, kernel, in_sizes,
                                            begins, strict=True)]
    return kernel, strides, dilations, begins, ends, list(in_sizes), list(out_sizes)


def pads_reach_window(node) -> bool:
    """Padding as wide as the window (Caffe2's pooling refuses it)."""
    kernel = list(node.attributes.get_ints("kernel_shape"))
    pads = list(node.attributes.get_ints("pads", [0] * (2 * len(kernel))))
    return any(p >= k for p, k in zip(pads, kernel + kernel, strict=True))


def _needs_taps(kernel, dilations, begins, ends):
    return any(d != 1 for d in dilations) or any(
        p >= k for p, k in zip(begins + ends, kernel + kernel, strict=True))


def pool_nd(w, node, op_type, kind, **extra):
    """MaxPool / AveragePool over 1 to 3 dims with Caffe2's list arguments."""
    kernel, strides, dilations, begins, ends, _, _ = pool_geometry(w, node)
    if op_type == "MaxPool" and subsampled_max_pool(w, node):
        return
    if op_type == "MaxPool" and _needs_taps(kernel, dilations, begins, ends):
        w.note("MaxPool with dilation or padding as wide as the window -> strided taps + Max")
        w.bind(node.outputs[0], _max_of_taps(w, node)[0])
        return
    if any(d != 1 for d in dilations):
        raise ConversionError("dilated average pooling has no Caffe2 equivalent")
    if node.attributes.get_int("ceil_mode", 0) and op_type == "AveragePool" \
            and extra.get("count_include_pad") and ends != begins:
        raise ConversionError("ceil-mode average pooling counting the padding over 1 or 3 "
                              "dims has no Caffe2 equivalent")
    if any(p >= k for p, k in zip(begins + ends, kernel + kernel, strict=True)):
        raise ConversionError("average pooling with padding as wide as the window has no "
                              "Caffe2 equivalent")
    w.simple(op_type, kind, node, inputs=[w.blob(node.inputs[0])], kernels=kernel,
             strides=strides, pads=begins + ends, order="NCHW", **extra)


def subsampled_max_pool(w, node) -> bool:
    """A dilated max pooling whose strides are multiples of its dilations reads every
    d-th value only: keep those (a 1-wide pooling with stride d) and pool them with an
    ordinary window of the same size and stride s / d. False when it does not apply."""
    kernel, strides, dilations, begins, _, in_sizes, out_sizes = pool_geometry(w, node)
    if all(d == 1 for d in dilations) or any(s % d for s, d in zip(strides, dilations,
                                                                     strict=True)):
        return False
    w.note("dilated MaxPool with strides a multiple of the dilation -> subsampling + MaxPool")
    x = node.inputs[0]
    name = w.prefix("pool")
    # exactly the padded extent the windows cover: (o - 1) * s + (k - 1) * d + 1
    extents = [(o - 1) * s + (k - 1) * d + 1
               for o, s, k, d in zip(out_sizes, strides, kernel, dilations, strict=True)]
    after = [max(e - b - i, 0) for e, b, i in zip(extents, begins, in_sizes, strict=True)]
    blob, shape = pad_nd(w, w.blob(x), w.shape(x), [0, 0, *begins], [0, 0, *after],
                         f"{name}_padded", value=LOWEST)
    for a, extent in enumerate(extents, start=2):
        if shape[a] > extent:  # values past the last window
            starts, ends = [0] * len(shape), [-1] * len(shape)
            ends[a] = extent
            w.emit("Slice", [blob], [f"{name}_cut{a}"], starts=starts, ends=ends)
            blob, shape[a] = f"{name}_cut{a}", extent
    n = len(kernel)
    w.emit("MaxPool", [blob], [f"{name}_every_d"], kernels=[1] * n, strides=dilations,
           order="NCHW")
    w.emit("MaxPool", [f"{name}_every_d"], [name], kernels=kernel,
           strides=[s // d for s, d in zip(strides, dilations, strict=True)], order="NCHW")
    w.bind(node.outputs[0], name)
    return True


def _taps(w, node, name):
    """(tap index tuple, blob) of every window tap, in scan order."""
    kernel, strides, dilations, begins, ends, in_sizes, out_sizes = pool_geometry(w, node)
    if math.prod(kernel) > MAX_TAPS:
        raise ConversionError(f"max pooling with a {'x'.join(map(str, kernel))} window is too "
                              f"large to unroll for Caffe2 (at most {MAX_TAPS} taps)")
    x = node.inputs[0]
    shape = list(w.shape(x))
    rank = len(shape)
    spans = [(o - 1) * s + 1 for o, s in zip(out_sizes, strides, strict=True)]
    # pad so that every tap's strided view lies inside (the last tap's view ends at
    # (k - 1) * d + span of the padded input)
    after = [max(sp + d * (k - 1) - b - i, 0)
             for sp, d, k, b, i in zip(spans, dilations, kernel, begins, in_sizes, strict=True)]
    blob, shape = pad_nd(w, w.blob(x), shape, [0, 0, *begins], [0, 0, *after],
                         f"{name}_padded", value=LOWEST)
    for tap in itertools.product(*(range(k) for k in kernel)):
        view = blob
        for a, j in enumerate(tap):
            start, axis = j * dilations[a], a + 2
            if start == 0 and spans[a] == shape[axis]:
                continue
            starts, stops = [0] * rank, [-1] * rank
            starts[axis], stops[axis] = start, start + spans[a]
            out = f"{name}_tap{'_'.join(map(str, tap))}_{axis}"
            w.emit("Slice", [view], [out], starts=starts, ends=stops)
            view = out
        if any(s != 1 for s in strides):
            # a 1-wide max pool with the layer's stride keeps every stride-th value
            out = f"{name}_tap{'_'.join(map(str, tap))}"
            w.emit("MaxPool", [view], [out], kernels=[1] * len(kernel), strides=strides,
                   order="NCHW")
            view = out
        yield tap, view


def _max_of_taps(w, node):
    name = w.prefix("pool")
    taps = list(_taps(w, node, name))
    if len(taps) == 1:
        w.emit("Copy", [taps[0][1]], [name])
    else:
        w.emit("Max", [blob for _, blob in taps], [name])
    return name, taps


def max_pool_with_indices(w, node):
    """MaxPool's two outputs: the max, and its flat index into the (unpadded) input,
    N x C x spatial, as ONNX defines them."""
    w.note("MaxPool indices -> strided taps, EQ and Where (first max in scan order)")
    pooled, taps = _max_of_taps(w, node)
    w.bind(node.outputs[0], pooled)
    _, strides, dilations, begins, _, in_sizes, out_sizes = pool_geometry(w, node)
    n, c = w.shape(node.inputs[0])[:2]
    # row-major strides of the input's spatial dims
    steps = [math.prod(in_sizes[a + 1:]) for a in range(len(in_sizes))]
    name = f"{pooled}_indices"

    def offset(tap):
        return sum(j * d * s for j, d, s in zip(tap, dilations, steps, strict=True))

    last_tap = taps[-1][0]
    index = f"{name}_tap{len(taps) - 1}"
    w.emit("ConstantFill", [pooled], [index], value=offset(last_tap), dtype=_INT64)
    for k in range(len(taps) - 2, -1, -1):
        tap, view = taps[k]
        w.emit("EQ", [view, pooled], [f"{name}_is{k}"])
        w.emit("ConstantFill", [pooled], [f"{name}_at{k}"], value=offset(tap), dtype=_INT64)
        w.emit("Where", [f"{name}_is{k}", f"{name}_at{k}", index], [f"{name}_tap{k}"])
        index = f"{name}_tap{k}"
    # + where each window starts, + where each plane starts
    grid = np.zeros([1, 1, *out_sizes], np.int64)
    for a, (size, s, b) in enumerate(zip(out_sizes, strides, begins, strict=True)):
        shape = [1] * (len(out_sizes) + 2)
        shape[a + 2] = size
        grid = grid + ((np.arange(size) * s - b) * steps[a]).reshape(shape)
    planes = (np.arange(n * c, dtype=np.int64) * math.prod(in_sizes)).reshape(
        [n, c] + [1] * len(out_sizes))
    w.emit("Add", [index, w.param(grid, f"{name}_window_start")], [f"{name}_in_plane"])
    w.emit("Add", [f"{name}_in_plane", w.param(planes, f"{name}_plane_start")], [name])
    w.bind(node.outputs[1], name)


@op_converter("MaxUnpool")
def max_unpool(w, node):
    x, indices = node.inputs[:2]
    out_shape = list(w.shape(node.outputs[0]))
    name = w.prefix("unpool")
    w.note("MaxUnpool -> ScatterAssign into zeros")
    flat = f"{name}_flat"
    w.emit("ConstantFill", [], [flat], shape=[math.prod(out_shape)], value=0.0)
    w.emit("Reshape", [w.blob(x)], [f"{name}_values", f"{name}_values_shape"], shape=[-1])
    w.emit("Reshape", [w.blob(indices)], [f"{name}_at", f"{name}_at_shape"], shape=[-1])
    w.emit("ScatterAssign", [flat, f"{name}_at", f"{name}_values"], [flat])
    w.emit("Reshape", [flat], [name, f"{name}_old_shape"], shape=out_shape)
    w.bind(node.outputs[0], name)
