"""Conv -> Convolution, ConvTranspose -> Deconvolution.

Caffe pads symmetrically. Asymmetric pads (SAME padding, ONNX exports) become a larger
symmetric pad chosen so that Caffe's windows include the wanted ones, and a crop of the
extra outputs; a transposed convolution's output_padding becomes a crop, or an explicit
zero extension and a separate Bias when the output grows beyond the full result.
"""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import conv_window, crop, zero_pad_spatial
from migrate.writers.caffe.registry import op_converter
from migrate.writers.caffe.windows import window


def _conv_pads(sizes, outs, win) -> tuple[list[int], list[int], list[int]]:
    """Per axis: a symmetric pad P = begin + m * stride whose windows contain the wanted
    ones, and how many outputs to crop before / after them."""
    pads, before, after = [], [], []
    for n, out, s, extent, b, e in zip(sizes, outs, win.strides, win.extents, win.begins,
                                       win.ends, strict=True):
        m = 0
        while True:
            p = b + m * s
            count = (n + 2 * p - extent) // s + 1
            if count >= m + out:
                break
            m += 1
            if m > 64 + out:  # cannot happen for a consistent node
                raise ConversionError("cannot align Caffe's symmetric padding with the pads "
                                      f"{b}/{e}")
        pads.append(p)
        before.append(m)
        after.append(count - m - out)
    return pads, before, after


@op_converter("Conv")
def conv(net, node):
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    weight = net.const(w)
    bias = net.const(b) if b is not None else None
    in_shape = net.value_shape(x)
    out_shape = net.value_shape(node.outputs[0])
    rank = weight.ndim - 2
    if rank < 1 or len(in_shape) != rank + 2:
        raise ConversionError(f"Conv over a {len(in_shape)}-D input")
    win = window(node, in_shape[2:], weight.shape[2:])
    group = node.attributes.get_int("group", 1)
    pads, before, after = _conv_pads(in_shape[2:], out_shape[2:], win)
    params = {"num_output": int(weight.shape[0])}
    if bias is None:
        params["bias_term"] = False
    if group != 1:
        params["group"] = group
    blobs = [weight] + ([bias.reshape(-1)] if bias is not None else [])
    cropped = any(before) or any(after)
    if cropped:
        net.note("Conv with asymmetric padding -> Convolution with symmetric padding + "
                 "Slice crop of the extra outputs")
    conv_shape = list(out_shape[:2]) + [o + m + a for o, m, a in
                                        zip(out_shape[2:], before, after, strict=True)]
    top = net.layer("Convolution", [net.blob(x)], conv_shape, kind="conv" if cropped else None,
                    blobs=blobs, convolution_param=conv_window(params, win.kernel, win.strides,
                                                               pads, win.dilations))
    top = crop(net, top, [0, 0, *before], [0, 0, *after])
    net.bind(node.outputs[0], top)


@op_converter("ConvTranspose")
def conv_transpose(net, node):
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    weight = net.const(w)  # (C_in, C_out / group, k...) as Caffe's Deconvolution has it
    bias = net.const(b).reshape(-1) if b is not None else None
    in_shape = net.value_shape(x)
    out_shape = net.value_shape(node.outputs[0])
    rank = weight.ndim - 2
    if len(in_shape) != rank + 2:
        raise ConversionError(f"ConvTranspose over a {len(in_shape)}-D input")
    attrs = node.attributes
    if attrs.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID") and \
            "output_shape" not in attrs:
        raise ConversionError("ConvTranspose with auto_pad SAME has no Caffe form here")
    strides = list(attrs.get_ints("strides", [1] * rank))
    dilations = list(attrs.get_ints("dilations", [1] * rank))
    group = attrs.get_int("group", 1)
    extents = [(k - 1) * d + 1 for k, d in zip(weight.shape[2:], dilations, strict=True)]
    full = [(n - 1) * s + e for n, s, e in zip(in_shape[2:], strides, extents, strict=True)]
    # where the wanted output sits in the full (unpadded) result: its first index, and
    # how far its end is before (> 0) or beyond (< 0) the full result's end
    pads = list(attrs.get_ints("pads", [0] * 2 * rank))
    begins = pads[:rank]
    ends = [f - b_ - o for f, b_, o in zip(full, begins, out_shape[2:], strict=True)]
    if "output_shape" in attrs or attrs.get_string("auto_pad", "NOTSET") != "NOTSET":
        # pads follow from the output size: ONNX puts the odd one at the start unless
        # SAME_UPPER
        upper = attrs.get_string("auto_pad", "NOTSET") == "SAME_UPPER"
        totals = [f - o for f, o in zip(full, out_shape[2:], strict=True)]
        begins = [t // 2 if upper else t - t // 2 for t in totals]
        ends = [f - b_ - o for f, b_, o in zip(full, begins, out_shape[2:], strict=True)]
    if any(v < 0 for v in begins):
        raise ConversionError("ConvTranspose with negative pads")
    params = {"num_output": int(weight.shape[1]) * group}
    if group != 1:
        params["group"] = group
    grows = any(e < 0 for e in ends)
    pad = [0 if grows else min(b_, e) for b_, e in zip(begins, ends, strict=True)]
    with_bias = bias is not None and not grows
    if not with_bias:
        params["bias_term"] = False
    blobs = [weight] + ([bias] if with_bias else [])
    deconv_shape = list(out_shape[:2]) + [f - 2 * p for f, p in zip(full, pad, strict=True)]
    trims = ([b_ - p for b_, p in zip(begins, pad, strict=True)],
             [max(e - p, 0) for e, p in zip(ends, pad, strict=True)])
    direct = not grows and not any(trims[0]) and not any(trims[1])
    top = net.layer("Deconvolution", [net.blob(x)], deconv_shape,
                    kind=None if direct else "deconv", blobs=blobs,
                    convolution_param=conv_window(params, weight.shape[2:], strides, pad,
                                                  dilations))
    if not direct:
        net.note("ConvTranspose with asymmetric padding or output_padding -> Deconvolution "
                 "+ Slice crop" + (" + zero extension + Bias" if grows else ""))
    top = crop(net, top, [0, 0, *trims[0]], [0, 0, *trims[1]])
    if grows:
        if rank != 2:
            raise ConversionError("ConvTranspose whose output_padding extends the output "
                                  "is supported for 2-D only")
        extra = [max(-e, 0) for e in ends]
        top = zero_pad_spatial(net, top, [0, 0], extra, kind="extend")
        if bias is not None:
            top = net.layer("Bias", [top], out_shape, kind="bias",
                            blobs=[np.ascontiguousarray(bias, np.float32)],
                            bias_param={"axis": 1, "num_axes": 1})
    net.bind(node.outputs[0], top)
