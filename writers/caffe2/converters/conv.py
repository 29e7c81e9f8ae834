"""Convolutions."""

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.converters.conv_nd import conv_nd, conv_transpose_nd
from migrate.writers.caffe2.registry import op_converter


def window_args(node, kernel_shape):
    """Caffe2's 2-D window arguments from ONNX attributes (NCHW)."""
    kh, kw = kernel_shape
    sh, sw = node.attributes.get_ints("strides", [1, 1])
    pt, pl, pb, pr = node.attributes.get_ints("pads", [0, 0, 0, 0])
    return dict(kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                pad_t=pt, pad_l=pl, pad_b=pb, pad_r=pr, order="NCHW")


def nnpack_choice(kernel, strides, out_hw) -> tuple[str, str | None]:
    """NNPACK's FFT convolutions: 2-6x faster than Caffe2's default im2col on these CPUs
    for feature maps of 16x16 and more, and as exact (measured ~2e-6 max error at unit
    scale); on smaller maps the FFT tiles cost more than they save. NNPACK's Winograd
    path (its own choice for 3x3) is off by up to 1e-4, so the algorithm is set.
    Strided and 1x1 convolutions stay on the default engine (no gain there)."""
    kh, kw = kernel
    if (tuple(strides) != (1, 1) or max(kh, kw) == 1 or max(kh, kw) > 16
            or min(out_hw) < 16):
        return "", None
    return "NNPACK", ("FT8" if max(kh, kw) <= 4 else "FT16")


@op_converter("Conv")
def conv(w, node):
    x, weight, bias = (list(node.inputs) + [None])[:3]
    kernel = w.const(weight)
    if kernel.ndim in (3, 5):
        conv_nd(w, node)
        return
    if kernel.ndim != 4:
        raise ConversionError(f"{kernel.ndim - 2}-D convolution has no Caffe2 equivalent here")
    name = w.prefix("conv")
    inputs = [w.blob(x), w.param_value(weight, f"{name}_w")]
    if bias is not None:
        inputs.append(w.param_value(bias, f"{name}_b"))
    dh, dw = node.attributes.get_ints("dilations", [1, 1])
    group = node.attributes.get_int("group", 1)
    args = window_args(node, kernel.shape[2:])
    engine, algo = "", None
    if w.optimize and group == 1 and (dh, dw) == (1, 1):
        engine, algo = nnpack_choice(kernel.shape[2:], (args["stride_h"], args["stride_w"]),
                                     w.shape(node.outputs[0])[-2:])
        if engine:
            w.note("stride-1 convolutions on maps of 16x16 or more on the NNPACK engine "
                   "(FFT: exact to ~1e-6)")
    w.emit("Conv", inputs, [name], engine=engine, algo=algo, **args,
           # Caffe2 reads dilation_h / adj_h only together with their _w partner
           dilation_h=dh if (dh, dw) != (1, 1) else None,
           dilation_w=dw if (dh, dw) != (1, 1) else None,
           group=group if group != 1 else None)
    w.bind(node.outputs[0], name)


@op_converter("ConvTranspose")
def conv_transpose(w, node):
    x, weight, bias = (list(node.inputs) + [None])[:3]
    kernel = w.const(weight)
    if kernel.ndim in (3, 5):
        conv_transpose_nd(w, node)
        return
    if kernel.ndim != 4 or node.attributes.get_int("group", 1) != 1:
        raise ConversionError("only 2-D, ungrouped transposed convolutions are supported")
    if list(node.attributes.get_ints("dilations", [1, 1])) != [1, 1]:
        raise ConversionError("dilated transposed convolution has no Caffe2 equivalent")
    name = w.prefix("conv_transpose")
    inputs = [w.blob(x), w.param_value(weight, f"{name}_w")]
    if bias is not None:
        inputs.append(w.param_value(bias, f"{name}_b"))
    adj_h, adj_w = node.attributes.get_ints("output_padding", [0, 0])
    w.emit("ConvTranspose", inputs, [name], **window_args(node, kernel.shape[2:]),
           adj_h=adj_h if adj_h or adj_w else None, adj_w=adj_w if adj_h or adj_w else None)
    w.bind(node.outputs[0], name)
