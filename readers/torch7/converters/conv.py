"""Spatial convolutions (plain, MM, dilated, full = transposed)."""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def _geometry(module):
    kw, kh = module.int("kW"), module.int("kH")
    dw, dh = module.int("dW", 1), module.int("dH", 1)
    # Models saved before padW/padH existed have a single `padding`.
    pw = module.int("padW", module.get("padding", 0))
    ph = module.int("padH", module.get("padding", pw))
    return kh, kw, dict(strides=[dh, dw], pads=[ph, pw, ph, pw])


def _bias(ctx, module, n):
    bias = module.tensor("bias")
    return [] if bias is None else [ctx.const(bias.reshape(n), "bias")]


@converter(
    "nn.SpatialConvolution", "nn.SpatialConvolutionMM", "nn.SpatialDilatedConvolution",
    "cudnn.SpatialConvolution",
)
def spatial_convolution(ctx, module, x):
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    kh, kw, attrs = _geometry(module)
    groups = module.int("groups", 1)
    weight = module.tensor("weight")
    if weight is None:
        raise ConversionError("convolution has no weight")
    # SpatialConvolutionMM stores the weight as a matrix (nOutputPlane x nIn*kH*kW).
    expected = n_out * (n_in // groups) * kh * kw
    if weight.size != expected:
        raise ConversionError(f"weight has {weight.size} values, expected {expected}")
    inputs = [ctx.const(weight.reshape(n_out, n_in // groups, kh, kw), "weight")]
    inputs += _bias(ctx, module, n_out)
    attrs["dilations"] = [module.int("dilationH", 1), module.int("dilationW", 1)]
    return ctx.batched(x, 4, lambda x4: ctx.op(
        "Conv", [x4, *inputs], hint="conv", kernel_shape=[kh, kw], group=groups, **attrs))


@converter("nn.SpatialFullConvolution", "cudnn.SpatialFullConvolution")
def spatial_full_convolution(ctx, module, x):
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    kh, kw, attrs = _geometry(module)
    weight = module.tensor("weight")
    if weight is None or weight.size != n_in * n_out * kh * kw:
        raise ConversionError("full convolution weight does not match its planes and kernel")
    # Torch7 and ONNX agree on the layout: nInputPlane x nOutputPlane x kH x kW.
    inputs = [ctx.const(weight.reshape(n_in, n_out, kh, kw), "weight")]
    inputs += _bias(ctx, module, n_out)
    attrs["output_padding"] = [module.int("adjH", 0), module.int("adjW", 0)]
    return ctx.batched(x, 4, lambda x4: ctx.op(
        "ConvTranspose", [x4, *inputs], hint="deconv", kernel_shape=[kh, kw], **attrs))
