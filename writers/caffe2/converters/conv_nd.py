"""Convolutions over 1 or 3 spatial dims (Conv and ConvTranspose on 3-D and 5-D tensors).

Caffe2's Conv runs any number of spatial dims through its list arguments (`kernels`,
`strides`, `pads` = begins then ends, `dilations`). Its ConvTranspose takes 4-D input only,
so other transposed convolutions are written as the convolution they are: the input
spread out with stride-1 zeros between its values, padded by the kernel span minus the
padding, and correlated with the kernel flipped and its two plane axes swapped.
"""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError


def _spatial_attrs(node, n):
    attrs = node.attributes
    strides = list(attrs.get_ints("strides", [1] * n))
    pads = list(attrs.get_ints("pads", [0] * (2 * n)))
    dilations = list(attrs.get_ints("dilations", [1] * n))
    if attrs.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID") and not any(pads):
        raise ConversionError("Conv with auto_pad SAME has no Caffe2 equivalent here")
    return strides, pads, dilations


def conv_nd(w, node):
    """Conv on 1 or 3 spatial dims: Caffe2's Conv with list arguments."""
    x, weight, bias = (list(node.inputs) + [None])[:3]
    kernel = w.const(weight)
    n = kernel.ndim - 2
    strides, pads, dilations = _spatial_attrs(node, n)
    name = w.prefix("conv")
    inputs = [w.blob(x), w.param_value(weight, f"{name}_w")]
    if bias is not None:
        inputs.append(w.param_value(bias, f"{name}_b"))
    group = node.attributes.get_int("group", 1)
    w.emit("Conv", inputs, [name], kernels=list(kernel.shape[2:]), strides=strides, pads=pads,
           dilations=dilations if any(d != 1 for d in dilations) else None,
           group=group if group != 1 else None, order="NCHW")
    w.bind(node.outputs[0], name)


def _spread(w, blob, shape, axis, stride, name):
    """Insert stride-1 zeros between the values along one axis (static shapes)."""
    size = shape[axis]
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    w.emit("Reshape", [blob], [f"{name}_rows", f"{name}_rows_shape"],
           shape=[outer, size, 1, inner])
    w.emit("ConstantFill", [], [f"{name}_zeros"], shape=[outer, size, stride - 1, inner],
           value=0.0)
    w.emit("Concat", [f"{name}_rows", f"{name}_zeros"], [f"{name}_cat", f"{name}_cat_info"],
           axis=2)
    spread = list(shape)
    spread[axis] = size * stride
    w.emit("Reshape", [f"{name}_cat"], [f"{name}_wide", f"{name}_wide_shape"], shape=spread)
    # the zeros after the last value are not part of the spread input
    starts, ends = [0] * len(shape), [-1] * len(shape)
    ends[axis] = (size - 1) * stride + 1
    w.emit("Slice", [f"{name}_wide"], [name], starts=starts, ends=ends)
    out = list(shape)
    out[axis] = (size - 1) * stride + 1
    return name, out


def conv_transpose_nd(w, node):
    x, weight, bias = (list(node.inputs) + [None])[:3]
    kernel = w.const(weight)  # in x out/group x k...
    n = kernel.ndim - 2
    if node.attributes.get_int("group", 1) != 1:
        raise ConversionError("grouped transposed convolution over 1 or 3 dims has no Caffe2 "
                              "equivalent here")
    if "output_shape" in node.attributes:
        raise ConversionError("ConvTranspose with output_shape: give pads instead")
    strides, pads, dilations = _spatial_attrs(node, n)
    adjust = list(node.attributes.get_ints("output_padding", [0] * n))
    w.note("ConvTranspose over 1 or 3 dims -> zeros spread between the input values + Conv "
           "with the flipped kernel (Caffe2's ConvTranspose is 2-D only)")
    name = w.prefix("conv_transpose")
    shape = list(w.shape(x))
    blob = w.blob(x)
    for axis, stride in enumerate(strides, start=2):
        if stride > 1:
            blob, shape = _spread(w, blob, shape, axis, stride, f"{name}_spread{axis}")
    span = [d * (k - 1) for d, k in zip(dilations, kernel.shape[2:], strict=True)]
    begin = [s - p for s, p in zip(span, pads[:n], strict=True)]
    end = [s - p + a for s, p, a in zip(span, pads[n:], adjust, strict=True)]
    flipped = np.ascontiguousarray(
        np.flip(kernel, axis=tuple(range(2, kernel.ndim))).swapaxes(0, 1))
    inputs = [blob, w.param(flipped, f"{name}_w")]
    if bias is not None:
        inputs.append(w.param_value(bias, f"{name}_b"))
    conv = f"{name}_full" if min(begin + end) < 0 else name
    w.emit("Conv", inputs, [conv], kernels=list(kernel.shape[2:]), strides=[1] * n,
           pads=[max(p, 0) for p in begin + end],
           dilations=dilations if any(d != 1 for d in dilations) else None, order="NCHW")
    if conv != name:  # padding beyond the kernel span crops the output
        out = list(w.shape(node.outputs[0]))
        starts = [0, 0] + [max(-p, 0) for p in begin]
        ends = [-1, -1] + [max(-p, 0) + o for p, o in zip(begin, out[2:], strict=True)]
        blob = conv
        for axis in range(2, n + 2):
            cut = name if axis == n + 1 else f"{name}_crop{axis}"
            first, last = [0] * (n + 2), [-1] * (n + 2)
            first[axis], last[axis] = starts[axis], ends[axis]
            w.emit("Slice", [blob], [cut], starts=first, ends=last)
            blob = cut
    w.bind(node.outputs[0], name)
