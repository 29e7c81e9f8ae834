"""Pooling."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.converters.conv import window_args
from migrate.writers.caffe2.converters.pool_nd import (
    max_pool_with_indices,
    pads_reach_window,
    pool_nd,
    subsampled_max_pool,
)
from migrate.writers.caffe2.registry import op_converter

# Caffe2's LegacyPadding::CAFFE_LEGACY_POOLING: output size rounded up, and the
# last window must start inside the image (or its head padding): exactly the
# ceil_mode rule of Torch7, Caffe and PyTorch.
CAFFE_LEGACY_POOLING = 3


def _pool(w, node, op_type, kind, **extra):
    kernel = node.attributes.get_ints("kernel_shape")
    if len(kernel) != 2:
        pool_nd(w, node, op_type, kind, **extra)
        return
    args = window_args(node, kernel)
    if node.attributes.get_int("ceil_mode", 0):
        if (args["pad_t"], args["pad_l"]) != (args["pad_b"], args["pad_r"]):
            raise ConversionError("ceil-mode pooling with asymmetric padding")
        args["legacy_pad"] = CAFFE_LEGACY_POOLING
        w.note("ceil-mode pooling -> Caffe2 legacy (Caffe) pooling padding")
    w.simple(op_type, kind, node, **args, **extra)


@op_converter("MaxPool")
def max_pool(w, node):
    if len(node.outputs) > 1 and node.outputs[1].uses():
        max_pool_with_indices(w, node)
    elif len(node.attributes.get_ints("kernel_shape")) != 2 or pads_reach_window(node):
        pool_nd(w, node, "MaxPool", "pool")
    elif list(node.attributes.get_ints("dilations", [1, 1])) != [1, 1]:
        if not subsampled_max_pool(w, node):
            _dilated_max_pool(w, node)
    else:
        _pool(w, node, "MaxPool", "pool")


# Each tap is three ops; a damaged kernel size must not unroll into millions.
MAX_DILATED_TAPS = 1024


def _dilated_max_pool(w, node):
    """Caffe2's pooling has no dilation: take the max of the kernel's shifted,
    strided views of the (-inf padded) input instead."""
    w.note("dilated MaxPool -> strided Slice/MaxPool taps + Max (Caffe2 pooling has no dilation)")
    x = node.inputs[0]
    n, c, h, w_in = w.shape(x)
    out_h, out_w = w.shape(node.outputs[0])[2:]
    kh, kw = node.attributes.get_ints("kernel_shape")
    if kh * kw > MAX_DILATED_TAPS:
        raise ConversionError(f"dilated max pooling with a {kh}x{kw} window is too large to "
                              f"unroll for Caffe2 (at most {MAX_DILATED_TAPS} taps)")
    sh, sw = node.attributes.get_ints("strides", [1, 1])
    dh, dw = node.attributes.get_ints("dilations")
    pt, pl = node.attributes.get_ints("pads", [0, 0, 0, 0])[:2]
    span_h, span_w = (out_h - 1) * sh + 1, (out_w - 1) * sw + 1
    need_h, need_w = span_h + (kh - 1) * dh, span_w + (kw - 1) * dw
    name = w.prefix("pool")
    blob = w.blob(x)
    pb, pr = max(need_h - h - pt, 0), max(need_w - w_in - pl, 0)
    if pt or pl or pb or pr:
        w.emit("PadImage", [blob], [f"{name}_padded"], pad_t=pt, pad_l=pl, pad_b=pb, pad_r=pr,
               mode="constant", value=float(np.finfo(np.float32).min), order="NCHW")
        blob = f"{name}_padded"
    taps = []
    for i in range(kh):
        for j in range(kw):
            tap = f"{name}_tap{i}_{j}"
            w.emit("Slice", [blob], [f"{tap}_rows"], starts=[0, 0, i * dh, 0],
                   ends=[-1, -1, i * dh + span_h, -1])
            w.emit("Slice", [f"{tap}_rows"], [f"{tap}_win"], starts=[0, 0, 0, j * dw],
                   ends=[-1, -1, -1, j * dw + span_w])
            # a 1x1 max pool with the layer's stride picks every stride-th element
            w.emit("MaxPool", [f"{tap}_win"], [tap], kernel_h=1, kernel_w=1,
                   stride_h=sh, stride_w=sw, order="NCHW")
            taps.append(tap)
    w.emit("Max", taps, [name])
    w.bind(node.outputs[0], name)


@op_converter("AveragePool")
def average_pool(w, node):
    include = node.attributes.get_int("count_include_pad", 0)
    _pool(w, node, "AveragePool", "avgpool", count_include_pad=include)
