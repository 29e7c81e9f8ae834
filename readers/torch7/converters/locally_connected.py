"""nn.SpatialConvolutionLocal: a convolution whose weights differ at every output pixel.

THNN unfolds the input into columns (one per output pixel, planes x kH x kW values)
and multiplies each column by that pixel's own nOutputPlane x (nInputPlane*kH*kW) matrix.
Here the columns come from a grouped convolution with one-hot kernels (each output plane
copies one input value: exact), and one batched MatMul applies the per-pixel matrices.
"""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.limits import check_computed_constant
from migrate.readers.torch7.registry import converter


@converter("nn.SpatialConvolutionLocal")
def spatial_convolution_local(ctx, module, x):
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    kw, kh = module.int("kW"), module.int("kH")
    dw, dh = module.int("dW", 1), module.int("dH", 1)
    pw = module.int("padW", 0)
    ph = module.int("padH", pw)
    in_h, in_w, out_h, out_w = (module.int(f) for f in ("iH", "iW", "oH", "oW"))
    taps, pixels = n_in * kh * kw, out_h * out_w
    weight, bias = module.tensor("weight"), module.tensor("bias")
    if weight is None or weight.size != pixels * n_out * taps:
        raise ConversionError("weight does not match oH x oW x nOutputPlane x nInputPlane x "
                              "kH x kW")
    if bias is not None and bias.size != n_out * pixels:
        raise ConversionError("bias does not match nOutputPlane x oH x oW")
    if (out_h, out_w) != ((in_h + 2 * ph - kh) // dh + 1, (in_w + 2 * pw - kw) // dw + 1):
        raise ConversionError(f"oH x oW = {out_h} x {out_w} does not follow from the input "
                              f"size {in_h} x {in_w}, kernel, stride and padding")
    matrices = ctx.const(weight.reshape(pixels, n_out, taps), "weight")

    def apply(x4):
        n, c, h, w = ctx.shape(x4)
        if (c, h, w) != (n_in, in_h, in_w):
            raise ConversionError(f"input of {c} x {h} x {w}, the layer was built for "
                                  f"{n_in} x {in_h} x {in_w}")
        # column k = (plane, row, col) of the window, as THNN's unfold orders it
        check_computed_constant(taps * kh * kw, 4, "the unfolding kernels")
        one_hot = np.tile(np.eye(kh * kw, dtype=np.float32), (n_in, 1)).reshape(taps, 1, kh, kw)
        columns_kernel = ctx.const(one_hot, "unfold")
        cols = ctx.op("Conv", [x4, columns_kernel], hint="unfold", kernel_shape=[kh, kw],
                      strides=[dh, dw], pads=[ph, pw, ph, pw], group=n_in)
        cols = ctx.op("Reshape", [cols, ctx.int64s([n, taps, pixels])], hint="columns")
        # pixels x taps x batch, so that each pixel's matrix multiplies its columns
        cols = ctx.op("Transpose", [cols], hint="columns", perm=[2, 1, 0])
        y = ctx.op("MatMul", [matrices, cols], hint="local")  # pixels x nOut x batch
        y = ctx.op("Transpose", [y], hint="local", perm=[2, 1, 0])
        y = ctx.op("Reshape", [y, ctx.int64s([n, n_out, out_h, out_w])], hint="local")
        if bias is not None:
            y = ctx.op("Add", [y, ctx.const(bias.reshape(n_out, out_h, out_w), "bias")],
                       hint="bias")
        return y

    return ctx.batched(x, 4, apply)
