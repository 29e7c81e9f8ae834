"""Convolutions: plain, grouped, depthwise, transposed; 1-D as 2-D with a height of 1.

Padding is exact: SAME only where LiteRT's SAME computes exactly the ONNX pads and
output size, else an explicit PAD and a VALID convolution.
"""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.converters import volumetric
from migrate.writers.tensorflow.registry import op_lowering
from migrate.writers.tensorflow.window import effective_end, is_same, onnx_pads


def spatial_input(ctx, value, why: str):
    """The input channels last, as 4-D (N, H, W, C): a 1-D input gets a height of 1."""
    shape = ctx.shape(value)
    rank = len(shape)
    if rank not in (3, 4):
        raise ctx.error(f"{rank - 2}-D windows are not supported for TensorFlow/LiteRT "
                        "here (1-D, 2-D and 3-D convolutions and pooling are)")
    x = ctx.channels_last(value, why)
    if rank == 3:
        n, w, c = x.shape
        x = ctx.emit("RESHAPE", [x, ctx.int32s((n, 1, w, c))], (n, 1, w, c), hint="as_2d",
                     new_shape=(n, 1, w, c))
    return x, rank


def finish_spatial(ctx, node, y, rank: int, perm=None) -> None:
    """Bind a 4-D NHWC result (back to 3-D NWC for 1-D ops)."""
    if rank == 3:
        n, _, w, c = y.shape
        y = ctx.emit("RESHAPE", [y, ctx.int32s((n, w, c))], (n, w, c), hint="as_1d",
                     new_shape=(n, w, c))
    ctx.bind_permuted(node.outputs[0], y, perm or lay.channels_last(rank))


def window_attrs(ctx, node, rank: int, kernel_default=None):
    spatial = rank - 2
    kernel = list(node.attributes.get_ints("kernel_shape", kernel_default or []))
    strides = list(node.attributes.get_ints("strides", [1] * spatial))
    dilations = list(node.attributes.get_ints("dilations", [1] * spatial))
    if rank == 3:  # 1-D: height 1
        kernel, strides, dilations = [1, *kernel], [1, *strides], [1, *dilations]
    return kernel, strides, dilations


def pads_2d(ctx, node, rank, in_sizes, kernel, strides, dilations):
    spatial = rank - 2
    sizes = in_sizes[-spatial:]
    begin, end = onnx_pads(node, spatial, sizes, kernel[-spatial:], strides[-spatial:],
                           dilations[-spatial:])
    if rank == 3:
        begin, end = [0, *begin], [0, *end]
    return begin, end


def pad_spatial(ctx, x, begin, end, value: float = 0.0):
    """Explicit zero (or `value`) padding of H and W of an NHWC tensor."""
    if not any(begin) and not any(end):
        return x
    pads = [[0, 0], [begin[0], end[0]], [begin[1], end[1]], [0, 0]]
    shape = (x.shape[0], x.shape[1] + begin[0] + end[0], x.shape[2] + begin[1] + end[1],
             x.shape[3])
    paddings = ctx.const(np.asarray(pads, np.int32), "paddings")
    if value == 0.0:
        return ctx.emit("PAD", [x, paddings], shape, hint="pad")
    return ctx.emit("PADV2", [x, paddings, ctx.const(np.asarray(value, np.float32), "value")],
                    shape, hint="pad")


def choose_padding(ctx, x, begin, end, kernel, strides, dilations, out_hw, pad_value=0.0):
    """('SAME' | 'VALID', input): SAME when exactly equivalent, else explicit pads."""
    h, w = x.shape[1], x.shape[2]
    # the end padding actually read (ceil mode reads past the declared pads; declared
    # pads past the last window are never read)
    ends = [effective_end(size, k, s, d, b, o) for size, k, s, d, b, o in zip(
        (h, w), kernel, strides, dilations, begin, out_hw, strict=True)]
    if (any(begin) or any(ends)) and all(is_same(size, k, s, d, b, e, o) for size, k, s, d, b,
                                         e, o in zip((h, w), kernel, strides, dilations,
                                                     begin, ends, out_hw, strict=True)):
        return "SAME", x
    return "VALID", pad_spatial(ctx, x, begin, ends, pad_value)


@op_lowering("Conv")
def conv(ctx, node):
    if len(ctx.shape(node.inputs[0])) == 5:
        volumetric.conv_3d(ctx, node)
        return
    x_value, w_value = node.inputs[0], node.inputs[1]
    weight = np.asarray(ctx.require_const(w_value, "the convolution weight"), np.float32)
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    bias = None if bias_value is None else ctx.require_const(bias_value, "the bias")
    x, rank = spatial_input(ctx, x_value, "convolution needs channels last")
    if rank == 3:
        weight = weight[:, :, None, :]
    group = node.attributes.get_int("group", 1)
    kernel, strides, dilations = window_attrs(ctx, node, rank, list(weight.shape[2:]))
    begin, end = pads_2d(ctx, node, rank, ctx.shape(x_value), kernel, strides, dilations)
    out_shape = ctx.shape(node.outputs[0])
    n_out = weight.shape[0]
    out_hw = (1, out_shape[2]) if rank == 3 else tuple(out_shape[2:])
    padding, x = choose_padding(ctx, x, begin, end, kernel, strides, dilations, out_hw)
    stored = (x.shape[0], *out_hw, n_out)
    c_in = x.shape[3]
    attrs = dict(padding=padding, stride=tuple(strides), dilation=tuple(dilations),
                 activation="NONE")
    bias_t = None if bias is None else ctx.const(np.asarray(bias, np.float32).reshape(n_out),
                                                 "bias", "bias")
    if group > 1 and group == c_in and n_out % c_in == 0:
        # depthwise: LiteRT's filter is (1, kh, kw, C * multiplier), output channel
        # c * multiplier + m reading input channel c, as ONNX's groups do
        filt = weight.reshape(n_out, kernel[0], kernel[1]).transpose(1, 2, 0)[None]
        y = ctx.emit("DEPTHWISE_CONV_2D",
                     [x, ctx.const(np.ascontiguousarray(filt), "depthwise_kernel",
                                   "depthwise_kernel"), bias_t],
                     stored, hint="conv", multiplier=n_out // c_in, **attrs)
    else:
        # (O, kh, kw, I / groups); LiteRT and TensorFlow take grouped filters as they are
        filt = np.ascontiguousarray(weight.transpose(0, 2, 3, 1))
        y = ctx.emit("CONV_2D", [x, ctx.const(filt, "kernel", "kernel"), bias_t], stored,
                     hint="conv", groups=group, **attrs)
    finish_spatial(ctx, node, y, rank)


@op_lowering("ConvTranspose")
def conv_transpose(ctx, node):
    if len(ctx.shape(node.inputs[0])) == 5:
        volumetric.conv_transpose_3d(ctx, node)
        return
    x_value, w_value = node.inputs[0], node.inputs[1]
    weight = np.asarray(ctx.require_const(w_value, "the convolution weight"), np.float32)
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    bias = None if bias_value is None else ctx.require_const(bias_value, "the bias")
    x, rank = spatial_input(ctx, x_value, "transposed convolution needs channels last")
    if rank == 3:
        weight = weight[:, :, None, :]
    group = node.attributes.get_int("group", 1)
    kernel, strides, dilations = window_attrs(ctx, node, rank, list(weight.shape[2:]))
    c_in, per_group = weight.shape[0], weight.shape[1]
    n_out = per_group * group
    if group > 1:
        # block-diagonal dense weight: the other groups' inputs meet exact zeros
        dense = np.zeros((c_in, n_out, *weight.shape[2:]), np.float32)
        step = c_in // group
        for g in range(group):
            dense[g * step:(g + 1) * step, g * per_group:(g + 1) * per_group] = \
                weight[g * step:(g + 1) * step]
        weight = dense
    if any(d > 1 for d in dilations):
        # a dilated kernel is the kernel with zeros between its taps
        kh, kw = weight.shape[2:]
        dilated = np.zeros((c_in, n_out, (kh - 1) * dilations[0] + 1,
                            (kw - 1) * dilations[1] + 1), np.float32)
        dilated[:, :, ::dilations[0], ::dilations[1]] = weight
        weight = dilated
    kh, kw = weight.shape[2:]
    out_shape = ctx.shape(node.outputs[0])
    out_hw = (1, out_shape[2]) if rank == 3 else tuple(out_shape[2:])
    n, h, w, _ = x.shape
    full = ((h - 1) * strides[0] + kh, (w - 1) * strides[1] + kw)
    begin = _transpose_begin(node, rank, full, out_hw)
    filt = ctx.const(np.ascontiguousarray(weight.transpose(1, 2, 3, 0)), "kernel", "kernel")
    bias_t = None if bias is None else ctx.const(np.asarray(bias, np.float32).reshape(n_out),
                                                 "bias", "bias")
    same = all(o == size * s and b == max(k - s, 0) // 2 for o, size, s, k, b in zip(
        out_hw, (h, w), strides, (kh, kw), begin, strict=True)) and any(begin)
    if same or tuple(out_hw) == full and not any(begin):
        stored = (n, *out_hw, n_out)
        y = ctx.emit("TRANSPOSE_CONV", [x, filt, bias_t], stored, hint="deconv",
                     padding="SAME" if same else "VALID", stride=tuple(strides),
                     output_shape=stored, activation="NONE")
        finish_spatial(ctx, node, y, rank)
        return
    # the full result, cropped (ONNX pads) and extended with zeros (output_padding
    # past the pads), then the bias over the whole output
    stored = (n, *full, n_out)
    y = ctx.emit("TRANSPOSE_CONV", [x, filt, None], stored, hint="deconv", padding="VALID",
                 stride=tuple(strides), output_shape=stored, activation="NONE")
    keep = [min(o, f - b) for o, f, b in zip(out_hw, full, begin, strict=True)]
    if tuple(keep) != full:
        cropped = (n, *keep, n_out)
        y = ctx.emit("STRIDED_SLICE", [y, ctx.int32s((0, begin[0], begin[1], 0), "begin"),
                                       ctx.int32s((n, begin[0] + keep[0], begin[1] + keep[1],
                                                   n_out), "end"),
                                       ctx.int32s((1, 1, 1, 1), "strides")],
                     cropped, hint="crop", begin_mask=0, end_mask=0)
    extra = [o - k for o, k in zip(out_hw, keep, strict=True)]
    if any(extra):
        y = pad_spatial(ctx, y, [0, 0], extra)
    if bias_t is not None:
        y = ctx.emit("ADD", [y, bias_t], y.shape, hint="bias")
    finish_spatial(ctx, node, y, rank)


def _transpose_begin(node, rank: int, full, out_hw) -> list[int]:
    """Rows cropped at the start of each spatial axis of the full transposed result."""
    spatial = rank - 2
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin = []
        for f, o in zip(full, out_hw, strict=True):
            total = f - o
            begin.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        return begin
    if node.attributes.get("output_shape") is not None:
        # ONNX ignores the pads then: the surplus is cropped, the larger half first
        extra = list(node.attributes.get_ints("output_padding", [0] * spatial))
        begin = [f + e - o for f, e, o in zip(full[-spatial:], extra, out_hw[-spatial:],
                                              strict=True)]
        begin = [t - t // 2 for t in begin]
    else:
        begin = list(node.attributes.get_ints("pads", [0] * (2 * spatial)))[:spatial]
    return [0, *begin] if rank == 3 else begin
