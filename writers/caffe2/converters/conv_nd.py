"""Convolutions over 1 or 3 spatial dims (Conv and ConvTranspose on 3-D and 5-D tensors).

- 1-D: the 2-D operators on a map of height 1 (the ones Caffe2's mobile engines run; its
  ConvTranspose is 2-D only).
- 3-D Conv: Caffe2's Conv with list arguments (`kernels`, `strides`, `pads` = begins then
  ends, `dilations`).
- 3-D (and dilated 1-D) ConvTranspose: written as the convolution it is: the input spread
  out with stride-1 zeros between its values, padded by the kernel span minus the
  padding, correlated with the kernel flipped and its two plane axes swapped.
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
        raise ConversionError("convolution with auto_pad SAME has no Caffe2 equivalent here")
    if "output_shape" in attrs:
        raise ConversionError("ConvTranspose with output_shape: give pads instead")
    return strides, pads, dilations


def _inputs(w, node, name, kernel):
    """Input, weight (as `kernel`) and bias blobs."""
    x, weight, bias = (list(node.inputs) + [None])[:3]
    inputs = [w.blob(x), w.param(kernel, f"{name}_w") if kernel is not None
              else w.param_value(weight, f"{name}_w")]
    if bias is not None:
        inputs.append(w.param_value(bias, f"{name}_b"))
    return inputs


def _as_height_one(w, node, op_type, name, **args):
    """A 1-D Conv / ConvTranspose as the 2-D one on N x C x 1 x L."""
    kernel = w.const(node.inputs[1])
    strides, pads, dilations = _spatial_attrs(node, 1)
    inputs = _inputs(w, node, name, kernel.reshape(*kernel.shape[:2], 1, kernel.shape[2]))
    w.emit("ExpandDims", [inputs[0]], [f"{name}_2d_in"], dims=[2])
    inputs[0] = f"{name}_2d_in"
    group = node.attributes.get_int("group", 1)
    w.emit(op_type, inputs, [f"{name}_2d"], kernel_h=1, kernel_w=kernel.shape[2], stride_h=1,
           stride_w=strides[0], pad_t=0, pad_b=0, pad_l=pads[0], pad_r=pads[1],
           # Caffe2 reads dilation_w / adj_w only together with their _h partner
           dilation_h=1 if dilations[0] != 1 else None,
           dilation_w=dilations[0] if dilations[0] != 1 else None,
           group=group if group != 1 else None, order="NCHW", **args)
    w.emit("Squeeze", [f"{name}_2d"], [name], dims=[2])
    w.bind(node.outputs[0], name)


def conv_nd(w, node):
    """Conv on 1 or 3 spatial dims."""
    kernel = w.const(node.inputs[1])
    n = kernel.ndim - 2
    name = w.prefix("conv")
    if n == 1:
        _as_height_one(w, node, "Conv", name)
        return
    strides, pads, dilations = _spatial_attrs(node, n)
    group = node.attributes.get_int("group", 1)
    w.emit("Conv", _inputs(w, node, name, None), [name], kernels=list(kernel.shape[2:]),
           strides=strides, pads=pads,
           dilations=dilations if any(d != 1 for d in dilations) else None,
           group=group if group != 1 else None, order="NCHW")
    w.bind(node.outputs[0], name)


def conv_transpose_nd(w, node):
    kernel = w.const(node.inputs[1])  # in x out/group x k...
    n = kernel.ndim - 2
    group = node.attributes.get_int("group", 1)
    strides, pads, dilations = _spatial_attrs(node, n)
    adjust = list(node.attributes.get_ints("output_padding", [0] * n))
    name = w.prefix("conv_transpose")
    if n == 1 and group == 1 and dilations == [1]:
        _as_height_one(w, node, "ConvTranspose", name, adj_h=0 if adjust[0] else None,
                       adj_w=adjust[0] or None)
        return
    if group != 1:
        raise ConversionError("grouped transposed convolution over 1 or 3 dims has no Caffe2 "
                              "equivalent here")
    _spread_and_correlate(w, node, name, kernel, strides, pads, dilations, adjust)


def _reshape(w, blob, shape, out):
    w.emit("Reshape", [blob], [out, f"{out}_old_shape"], shape=list(shape))
    return out


def _spread(w, blob, shape, axis, stride, name):
    """Insert stride-1 zeros between the values along one axis (static shapes)."""
    size = shape[axis]
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    rows = _reshape(w, blob, [outer, size, 1, inner], f"{name}_rows")
    w.emit("ConstantFill", [], [f"{name}_zeros"], shape=[outer, size, stride - 1, inner],
           value=0.0)
    w.emit("Concat", [rows, f"{name}_zeros"], [f"{name}_cat", f"{name}_cat_info"], axis=2)
    wide = list(shape)
    wide[axis] = size * stride
    _reshape(w, f"{name}_cat", wide, f"{name}_wide")
    # the zeros after the last value are not part of the spread input
    out = list(shape)
    out[axis] = (size - 1) * stride + 1
    _slice(w, f"{name}_wide", len(shape), axis, 0, out[axis], name)
    return name, out


def _slice(w, blob, rank, axis, start, end, out):
    starts, ends = [0] * rank, [-1] * rank
    starts[axis], ends[axis] = start, end
    w.emit("Slice", [blob], [out], starts=starts, ends=ends)
    return out


def _spread_and_correlate(w, node, name, kernel, strides, pads, dilations, adjust):
    w.note("ConvTranspose over 1 or 3 dims -> zeros spread between the input values + Conv "
           "with the flipped kernel (Caffe2's ConvTranspose is 2-D only)")
    x = node.inputs[0]
    n = kernel.ndim - 2
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
    inputs = _inputs(w, node, name, flipped)
    inputs[0] = blob
    conv = f"{name}_full" if min(begin + end) < 0 else name
    w.emit("Conv", inputs, [conv], kernels=list(kernel.shape[2:]), strides=[1] * n,
           pads=[max(p, 0) for p in begin + end],
           dilations=dilations if any(d != 1 for d in dilations) else None, order="NCHW")
    if conv != name:  # padding beyond the kernel span crops the output
        out = list(w.shape(node.outputs[0]))
        blob = conv
        cut = [a for a in range(n) if begin[a] < 0 or end[a] < 0]
        for k, a in enumerate(cut):
            start = max(-begin[a], 0)
            blob = _slice(w, blob, n + 2, a + 2, start, start + out[a + 2],
                          name if k == len(cut) - 1 else f"{name}_crop{a}")
    w.bind(node.outputs[0], name)
