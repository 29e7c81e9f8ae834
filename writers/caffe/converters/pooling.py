"""MaxPool / AveragePool / global pooling -> Pooling, with Caffe's rounding reconciled.

Caffe's Pooling pads symmetrically, rounds its output size UP and then drops a last
window that would start in the end padding (pooling_layer.cpp). An ONNX pooling may
round down (floor mode) and pad asymmetrically. Per spatial axis the writer picks the
Caffe pad P = begin + m * stride (< kernel) whose windows contain the wanted ones (the
same start positions), and crops the extra outputs with a Slice; when no such pad
exists, it pads explicitly (with -FLT_MAX for MAX) and pools without padding.

Average pooling: Caffe sums the same elements (padding adds zeros) but divides by its
own window size: the window clipped to `size + pad`, padding included. Where that is
not the source's divisor (count_include_pad=0, asymmetric or explicit padding, ceil
windows), a Scale by (Caffe's divisor / wanted divisor) per output position follows.
"""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import crop, pad_constant, slice_axis
from migrate.writers.caffe.registry import op_converter
from migrate.writers.caffe.windows import window

FLT_MAX = float(np.finfo(np.float32).max)
MAX_DILATED_TAPS = 256


def caffe_pooled(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's output size (ceil rounding, last window inside the image or its head pad)."""
    span = size + 2 * pad - kernel
    if span < 0:
        return 0
    out = -(-span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _plan(size: int, kernel: int, stride: int, begin: int, out: int):
    """(pad, outputs to crop before, after) for Caffe to compute the wanted windows
    directly, or None."""
    m = 0
    while True:
        pad = begin + m * stride
        if pad and pad >= kernel:
            return None
        count = caffe_pooled(size, kernel, stride, pad)
        if count >= m + out:
            return pad, m, count - m - out
        m += 1


def _divisors(size, kernel, stride, pad, count):
    """Caffe's AVE divisor for each of its `count` outputs on one axis."""
    starts = np.arange(count) * stride - pad
    return np.minimum(starts + kernel, size + pad) - starts


def _wanted(size, kernel, stride, begin, end, out, include_pad):
    starts = np.arange(out) * stride - begin
    lo, hi = (-begin, size + end) if include_pad else (0, size)
    return np.minimum(starts + kernel, hi) - np.maximum(starts, lo)


def _pool(net, node, method: str):
    x = node.inputs[0]
    if len(node.outputs) > 1 and (node.outputs[1].uses() or node.outputs[1].is_graph_output()):
        raise ConversionError("MaxPool's indices output has no Caffe equivalent")
    in_shape = net.value_shape(x)
    out_shape = net.value_shape(node.outputs[0])
    kernel = list(node.attributes.get_ints("kernel_shape"))
    if len(kernel) != 2 or len(in_shape) != 4:
        raise ConversionError(f"{len(kernel)}-D pooling: Caffe pools 2-D (NCHW) only")
    win = window(node, in_shape[2:], kernel)
    if win.dilations != [1, 1]:
        if method != "MAX":
            raise ConversionError("dilated average pooling has no Caffe form")
        return _dilated_max_pool(net, node, win)
    include_pad = bool(node.attributes.get_int("count_include_pad", 0))
    blob = net.blob(x)
    sizes = list(in_shape[2:])
    plans = [_plan(n, k, s, b, o) for n, k, s, b, o in
             zip(sizes, kernel, win.strides, win.begins, out_shape[2:], strict=True)]
    explicit_begin, explicit_end = [0, 0], [0, 0]
    for axis, plan in enumerate(plans):
        if plan is None:  # pad this axis explicitly and pool it without padding
            n, k, s, b, o = (sizes[axis], kernel[axis], win.strides[axis], win.begins[axis],
                             out_shape[2 + axis])
            explicit_begin[axis] = b
            explicit_end[axis] = max((o - 1) * s + k - n - b, 0)
            plans[axis] = (0, 0, caffe_pooled(n + b + explicit_end[axis], k, s, 0) - o)
    if any(explicit_begin + explicit_end):
        net.note("pooling padding Caffe cannot place -> explicit padding before the Pooling")
        blob = pad_constant(net, blob, [0, 0, *explicit_begin], [0, 0, *explicit_end],
                            value=-FLT_MAX if method == "MAX" else 0.0, kind="pad")
    pads = [p for p, _, _ in plans]
    before = [m for _, m, _ in plans]
    after = [a for _, _, a in plans]
    caffe_sizes = list(net.shape(blob)[2:])
    counts = [o + m + a for o, m, a in zip(out_shape[2:], before, after, strict=True)]
    factor = None
    if method == "AVE":
        factor = np.ones((1, 1))
        for axis in range(2):
            caffe_div = _divisors(caffe_sizes[axis], kernel[axis], win.strides[axis],
                                  pads[axis], counts[axis])[before[axis]:][:out_shape[2 + axis]]
            wanted = _wanted(sizes[axis], kernel[axis], win.strides[axis], win.begins[axis],
                             win.ends[axis], out_shape[2 + axis], include_pad)
            ratio = caffe_div.astype(np.float64) / wanted
            factor = factor * (ratio[:, None] if axis == 0 else ratio[None, :])
        if np.all(factor == 1.0):
            factor = None
    cropped = any(before) or any(after)
    if cropped:
        net.note("pooling: Caffe's ceil rounding gives extra outputs -> Slice crop")
    params = {"pool": method}
    if kernel[0] == kernel[1]:
        params["kernel_size"] = kernel[0]
    else:
        params["kernel_h"], params["kernel_w"] = kernel
    if win.strides[0] == win.strides[1]:
        params["stride"] = win.strides[0]
    else:
        params["stride_h"], params["stride_w"] = win.strides
    if pads[0] == pads[1]:
        if pads[0]:
            params["pad"] = pads[0]
    else:
        params["pad_h"], params["pad_w"] = pads
    pool_shape = list(out_shape[:2]) + counts
    last = not cropped and factor is None
    top = net.layer("Pooling", [blob], pool_shape, kind=None if last else "pool",
                    pooling_param=params)
    top = crop(net, top, [0, 0, *before], [0, 0, *after])
    if factor is not None:
        net.note("average pooling: Caffe divides by its own window size -> Scale by the "
                 "divisor ratio per output position")
        top = net.layer("Scale", [top], out_shape, kind="divisor",
                        blobs=[factor.astype(np.float32)],
                        scale_param={"axis": 2, "num_axes": 2, "bias_term": False})
    net.bind(node.outputs[0], top)


def _dilated_max_pool(net, node, win):
    """Caffe's Pooling has no dilation: the max of the kernel's taps, each a shifted
    crop of the (-FLT_MAX padded) input subsampled by a 1x1 max pooling of the stride."""
    kh, kw = win.kernel
    if kh * kw > MAX_DILATED_TAPS:
        raise ConversionError(f"dilated max pooling with a {kh}x{kw} window is too large to "
                              f"unroll for Caffe (at most {MAX_DILATED_TAPS} taps)")
    net.note("dilated MaxPool -> Slice taps + stride pooling + Eltwise MAX (Caffe pooling "
             "has no dilation)")
    x = node.inputs[0]
    out_shape = net.value_shape(node.outputs[0])
    n, c, h, w = net.value_shape(x)
    spans = [(o - 1) * s + 1 for o, s in zip(out_shape[2:], win.strides, strict=True)]
    need = [sp + (k - 1) * d for sp, k, d in zip(spans, win.kernel, win.dilations, strict=True)]
    ends = [max(nd - size - b, 0) for nd, size, b in zip(need, (h, w), win.begins,
                                                          strict=True)]
    blob = net.blob(x)
    if any(win.begins) or any(ends):
        blob = pad_constant(net, blob, [0, 0, *win.begins], [0, 0, *ends], value=-FLT_MAX)
    taps = []
    for i in range(kh):
        rows = slice_axis(net, blob, 2, i * win.dilations[0], i * win.dilations[0] + spans[0],
                          kind="tap")
        for j in range(kw):
            tap = slice_axis(net, rows, 3, j * win.dilations[1],
                             j * win.dilations[1] + spans[1], kind="tap")
            if win.strides != [1, 1]:
                tap = net.layer("Pooling", [tap], out_shape, kind="tap_stride", pooling_param={
                    "pool": "MAX", "kernel_size": 1, "stride_h": win.strides[0],
                    "stride_w": win.strides[1]})
            taps.append(tap)
    if len(taps) == 1:
        net.bind(node.outputs[0], taps[0])
        return
    net.output("Eltwise", taps, kind="max", eltwise_param={"operation": "MAX"})


@op_converter("MaxPool")
def max_pool(net, node):
    _pool(net, node, "MAX")


@op_converter("AveragePool")
def average_pool(net, node):
    _pool(net, node, "AVE")


def _global(net, node, method):
    if len(net.value_shape(node.inputs[0])) != 4:
        raise ConversionError("Caffe pools 2-D (NCHW) only")
    net.output("Pooling", [net.blob(node.inputs[0])],
               pooling_param={"pool": method, "global_pooling": True})


@op_converter("GlobalAveragePool")
def global_average_pool(net, node):
    _global(net, node, "AVE")


@op_converter("GlobalMaxPool")
def global_max_pool(net, node):
    _global(net, node, "MAX")
