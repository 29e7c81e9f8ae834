"""Spatial convolutions."""

from migrate.errors import ConversionError
from readers.torch7.registry import converter


@converter("nn.SpatialConvolution", "nn.SpatialConvolutionMM", "cudnn.SpatialConvolution")
def spatial_convolution(ctx, module, x):
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    kw, kh = module.int("kW"), module.int("kH")
    dw, dh = module.int("dW", 1), module.int("dH", 1)
    # Models saved before padW/padH existed have a single `padding`.
    pw = module.int("padW", module.get("padding", 0))
    ph = module.int("padH", module.get("padding", pw))
    groups = module.int("groups", 1)
    weight = module.tensor("weight")
    if weight is None:
        raise ConversionError("convolution has no weight")
    # SpatialConvolutionMM stores the weight as a matrix (nOutputPlane x nIn*kH*kW).
    expected = n_out * (n_in // groups) * kh * kw
    if weight.size != expected:
        raise ConversionError(f"weight has {weight.size} values, expected {expected}")
    weight = weight.reshape(n_out, n_in // groups, kh, kw)
    inputs = [ctx.const(weight, "weight")]
    bias = module.tensor("bias")
    if bias is not None:
        inputs.append(ctx.const(bias.reshape(n_out), "bias"))

    def conv(x4):
        return ctx.op(
            "Conv", [x4, *inputs], hint="conv", kernel_shape=[kh, kw], strides=[dh, dw],
            pads=[ph, pw, ph, pw], group=groups,
        )

    return ctx.batched(x, 4, conv)
