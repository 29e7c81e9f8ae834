"""3-D convolutions: LiteRT's CONV_3D and CONV_3D_TRANSPOSE (TensorFlow's conv3d and
conv3d_transpose) on NDHWC, with the same exact padding as the 2-D ones: SAME only
where it computes exactly the ONNX pads, else an explicit PAD and VALID. Groups (which
neither builtin has) become one block-diagonal kernel: the other groups' channels meet
exact zeros."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.converters.shape import strided_slice
from migrate.writers.tensorflow.window import effective_end, is_same, onnx_pads


def pad_channels_last(ctx, x, begin, end, value: float = 0.0):
    """Explicit padding of the spatial axes of an (N, *spatial, C) tensor."""
    if not any(begin) and not any(end):
        return x
    pads = [[0, 0], *([b, e] for b, e in zip(begin, end, strict=True)), [0, 0]]
    shape = (x.shape[0], *(d + b + e for d, b, e in zip(x.shape[1:-1], begin, end,
                                                       strict=True)), x.shape[-1])
    paddings = ctx.const(np.asarray(pads, np.int32), "paddings")
    if value == 0.0:
        return ctx.emit("PAD", [x, paddings], shape, x.dtype, hint="pad")
    return ctx.emit("PADV2", [x, paddings, ctx.const(np.asarray(value, np.float32), "value")],
                    shape, x.dtype, hint="pad")


def window_geometry(ctx, node, kernel):
    """(strides, dilations, begin pads, end pads actually read, output sizes) of a window
    op over the spatial axes of its input."""
    in_sizes = ctx.shape(node.inputs[0])[2:]
    out_sizes = ctx.shape(node.outputs[0])[2:]
    n = len(in_sizes)
    strides = list(node.attributes.get_ints("strides", [1] * n))
    dilations = list(node.attributes.get_ints("dilations", [1] * n))
    begin, _ = onnx_pads(node, n, in_sizes, kernel, strides, dilations)
    ends = [effective_end(size, k, s, d, b, o) for size, k, s, d, b, o in zip(
        in_sizes, kernel, strides, dilations, begin, out_sizes, strict=True)]
    return strides, dilations, list(begin), ends, list(out_sizes)


def _block_diagonal(weight: np.ndarray, group: int) -> np.ndarray:
    """A grouped kernel as one dense kernel with zeros between the groups. The same for
    both layouts: (C_out, C_in / g, ...) and, transposed, (C_in, C_out / g, ...): the
    first axis is split into the groups, the second widened to all of them."""
    if group == 1:
        return weight
    rows, per_group = weight.shape[:2]
    dense = np.zeros((rows, per_group * group, *weight.shape[2:]), np.float32)
    step = rows // group
    for g in range(group):
        dense[g * step:(g + 1) * step, g * per_group:(g + 1) * per_group] = \
            weight[g * step:(g + 1) * step]
    return dense


def _weights(ctx, node):
    weight = np.asarray(ctx.require_const(node.inputs[1], "the convolution weight"), np.float32)
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    bias = None if bias_value is None else np.asarray(
        ctx.require_const(bias_value, "the bias"), np.float32).reshape(-1)
    return weight, bias


def conv_3d(ctx, node) -> None:
    weight, bias = _weights(ctx, node)
    weight = _block_diagonal(weight, node.attributes.get_int("group", 1))
    kernel = list(weight.shape[2:])
    strides, dilations, begin, ends, out_sizes = window_geometry(ctx, node, kernel)
    x = ctx.channels_last(node.inputs[0], "3-D convolution needs channels last")
    sizes = x.shape[1:4]
    if (any(begin) or any(ends)) and all(is_same(*args) for args in zip(
            sizes, kernel, strides, dilations, begin, ends, out_sizes, strict=True)):
        padding = "SAME"
    else:
        padding, x = "VALID", pad_channels_last(ctx, x, begin, ends)
    n_out = weight.shape[0]
    # (O, I, kd, kh, kw) -> (kd, kh, kw, I, O): LiteRT's and Keras's layout alike
    filt = ctx.const(np.ascontiguousarray(weight.transpose(2, 3, 4, 1, 0)), "kernel", "kernel")
    bias_t = None if bias is None else ctx.const(bias, "bias", "bias")
    y = ctx.emit("CONV_3D", [x, filt, bias_t], (x.shape[0], *out_sizes, n_out), hint="conv",
                 padding=padding, stride=tuple(strides), dilation=tuple(dilations),
                 activation="NONE")
    ctx.bind_permuted(node.outputs[0], y, lay.channels_last(5))


def conv_transpose_3d(ctx, node) -> None:
    """The full transposed result (VALID), cropped by the ONNX pads and extended with
    zeros past them (output_padding), then the bias over the whole output."""
    weight, bias = _weights(ctx, node)
    group = node.attributes.get_int("group", 1)
    weight = _block_diagonal(weight, group)
    spatial = 3
    strides = list(node.attributes.get_ints("strides", [1] * spatial))
    dilations = list(node.attributes.get_ints("dilations", [1] * spatial))
    if any(d > 1 for d in dilations):  # a dilated kernel: zeros between its taps
        c_in, n_out = weight.shape[:2]
        grown = np.zeros((c_in, n_out, *((k - 1) * d + 1 for k, d in zip(
            weight.shape[2:], dilations, strict=True))), np.float32)
        grown[:, :, ::dilations[0], ::dilations[1], ::dilations[2]] = weight
        weight = grown
    kernel = list(weight.shape[2:])
    n_out = weight.shape[1]
    x = ctx.channels_last(node.inputs[0], "3-D transposed convolution needs channels last")
    n = x.shape[0]
    full = [(size - 1) * s + k for size, s, k in zip(x.shape[1:4], strides, kernel,
                                                      strict=True)]
    out_sizes = list(ctx.shape(node.outputs[0])[2:])
    begin = _transpose_begin(node, full, out_sizes)
    # (C_in, C_out, kd, kh, kw) -> (kd, kh, kw, C_out, C_in)
    filt = ctx.const(np.ascontiguousarray(weight.transpose(2, 3, 4, 1, 0)), "kernel", "kernel")
    stored = (n, *full, n_out)
    y = ctx.emit("CONV_3D_TRANSPOSE", [x, filt, None], stored, hint="deconv", padding="VALID",
                 stride=tuple(strides), dilation=(1, 1, 1), output_shape=stored,
                 activation="NONE")
    keep = [min(o, f - b) for o, f, b in zip(out_sizes, full, begin, strict=True)]
    if keep != full:
        y = strided_slice(ctx, y, [0, *begin, 0], [n, *(b + k for b, k in zip(
            begin, keep, strict=True)), n_out], [1] * 5, hint="crop")
    extra = [o - k for o, k in zip(out_sizes, keep, strict=True)]
    y = pad_channels_last(ctx, y, [0] * spatial, extra)
    if bias is not None:
        y = ctx.emit("ADD", [y, ctx.const(bias, "bias", "bias")], y.shape, hint="bias")
    ctx.bind_permuted(node.outputs[0], y, lay.channels_last(5))


def _transpose_begin(node, full, out_sizes) -> list[int]:
    """Cells cropped at the start of each spatial axis of the full transposed result."""
    spatial = len(full)
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        totals = [f - o for f, o in zip(full, out_sizes, strict=True)]
        return [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in totals]
    if node.attributes.get("output_shape") is not None:
        extra = list(node.attributes.get_ints("output_padding", [0] * spatial))
        totals = [f + e - o for f, e, o in zip(full, extra, out_sizes, strict=True)]
        return [t - t // 2 for t in totals]
    return list(node.attributes.get_ints("pads", [0] * (2 * spatial)))[:spatial]
