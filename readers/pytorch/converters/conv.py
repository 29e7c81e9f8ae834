"""Convolutions: plain, grouped/depthwise, dilated, transposed (aten.convolution
covers Conv1d/2d/3d and ConvTranspose*d)."""

from migrate.core.errors import ConversionError
from migrate.readers.pytorch.registry import converter


def _ints(values, n: int) -> list[int]:
    values = [int(v) for v in values]
    return values * n if len(values) == 1 else values


@converter("aten.convolution")
def convolution(ctx, x, weight, bias, stride, padding, dilation, transposed, output_padding,
                groups):
    spatial = ctx.rank(weight) - 2
    if spatial < 1:
        raise ConversionError(f"convolution weight of shape {list(ctx.shape(weight))}")
    pads = _ints(padding, spatial)
    attrs = dict(kernel_shape=list(ctx.shape(weight)[2:]), strides=_ints(stride, spatial),
                 pads=pads + pads, dilations=_ints(dilation, spatial), group=int(groups))
    inputs = [x, weight] + ([bias] if bias is not None else [])
    if transposed:
        # PyTorch and ONNX agree on the transposed weight layout
        # (in, out / groups, k...) and on how padding and output_padding trim and grow
        return ctx.op("ConvTranspose", inputs, hint="deconv",
                      output_padding=_ints(output_padding, spatial), **attrs)
    return ctx.op("Conv", inputs, hint="conv", **attrs)
