"""Convolution, Deconvolution and the forks' depthwise convolution."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.readers.caffe.registry import caffe_layer


def _per_axis(param, name: str, spatial: int, default: int | None) -> list[int]:
    """BaseConvolutionLayer: `name_h`/`name_w` (2-D only) or the repeated `name` with one
    value for every spatial axis or one per axis."""
    h, w = f"{name}_h", f"{name}_w"
    repeated = {"kernel": "kernel_size"}.get(name, name)
    if param.HasField(h) or param.HasField(w):
        if spatial != 2:
            raise ConversionError(f"{h}/{w} are for 2-D convolutions only")
        if not (param.HasField(h) and param.HasField(w)):
            raise ConversionError(f"give both {h} and {w}")
        if len(getattr(param, repeated)):
            raise ConversionError(f"give {repeated} or {h}/{w}, not both")
        return [getattr(param, h), getattr(param, w)]
    values = list(getattr(param, repeated))
    if not values:
        if default is None:
            raise ConversionError(f"{repeated} is required")
        return [default] * spatial
    if len(values) == 1:
        return values * spatial
    if len(values) != spatial:
        raise ConversionError(f"{repeated} has {len(values)} values for {spatial} spatial axes")
    return values


def geometry(ctx, x) -> dict:
    param = ctx.layer.convolution_param
    shape = ctx.shape(x)
    if param.axis not in (1, 1 - len(shape)):
        raise ConversionError(f"convolution over axis {param.axis} (only the channel axis 1 "
                              "is supported)")
    spatial = len(shape) - 2
    if spatial < 1:
        raise ConversionError(f"needs a blob with spatial axes, got shape {list(shape)}")
    kernel = _per_axis(param, "kernel", spatial, None)
    stride = _per_axis(param, "stride", spatial, 1)
    pad = _per_axis(param, "pad", spatial, 0)
    dilation = list(param.dilation) or [1]
    if len(dilation) == 1:
        dilation = dilation * spatial
    if len(dilation) != spatial:
        raise ConversionError(f"dilation has {len(dilation)} values for {spatial} axes")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ConversionError(f"kernel {kernel}, stride {stride}, dilation {dilation}: each "
                              "must be at least 1")
    return dict(kernel=kernel, stride=stride, pad=pad, dilation=dilation,
                channels=shape[1], group=param.group or 1)


def _attrs(g: dict) -> dict:
    return dict(kernel_shape=g["kernel"], strides=g["stride"], pads=g["pad"] * 2,
                dilations=g["dilation"], group=g["group"])


@caffe_layer("Convolution", "DepthwiseConvolution")
def convolution(ctx, layer, bottoms):
    if len(bottoms) != len(layer.top) or not bottoms:
        raise ConversionError("needs one top per bottom")
    param = layer.convolution_param
    g = geometry(ctx, bottoms[0])
    out = param.num_output
    if g["channels"] % g["group"] or out % g["group"]:
        raise ConversionError(f"{g['channels']} input channels and num_output {out} must "
                              f"both divide into group {g['group']}")
    shapes = [[out, g["channels"] // g["group"], *g["kernel"]]]
    if param.bias_term:
        shapes.append([out])
    blobs = ctx.blobs(*shapes)
    weight = ctx.const(blobs[0], "weight")
    bias = ctx.const(blobs[1], "bias") if param.bias_term else None
    # Caffe applies the same layer (same weights) to every bottom
    return [ctx.op("Conv", [x, weight] + ([bias] if bias is not None else []), **_attrs(g))
            for x in bottoms]


@caffe_layer("Deconvolution")
def deconvolution(ctx, layer, bottoms):
    if len(bottoms) != len(layer.top) or not bottoms:
        raise ConversionError("needs one top per bottom")
    param = layer.convolution_param
    g = geometry(ctx, bottoms[0])
    out = param.num_output
    if g["channels"] % g["group"] or out % g["group"]:
        raise ConversionError(f"{g['channels']} input channels and num_output {out} must "
                              f"both divide into group {g['group']}")
    shapes = [[g["channels"], out // g["group"], *g["kernel"]]]
    if param.bias_term:
        shapes.append([out])
    blobs = ctx.blobs(*shapes)
    weight = ctx.const(blobs[0], "weight")
    bias = ctx.const(blobs[1], "bias") if param.bias_term else None
    return [ctx.op("ConvTranspose", [x, weight] + ([bias] if bias is not None else []),
                   **_attrs(g)) for x in bottoms]


@caffe_layer("ConvolutionDepthwise")
def convolution_depthwise(ctx, layer, bottoms):
    """farmingyard/ShuffleNet's layer: one filter per input channel (num_output and group
    are ignored), 2-D; kernel/stride/pad from *_h/*_w or the first two values given."""
    ctx.needs_bottoms(bottoms, 1)
    param = layer.convolution_param
    x = bottoms[0]
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ConversionError(f"needs a 4-D blob, got shape {list(shape)}")

    def pair(name: str, repeated: str, default: int | None) -> list[int]:
        if param.HasField(f"{name}_h") and param.HasField(f"{name}_w"):
            return [getattr(param, f"{name}_h"), getattr(param, f"{name}_w")]
        values = list(getattr(param, repeated))
        if not values:
            if default is None:
                raise ConversionError(f"{repeated} is required")
            return [default, default]
        return [values[0], values[1] if len(values) > 1 else values[0]]

    kernel = pair("kernel", "kernel_size", None)
    stride = pair("stride", "stride", 1)
    pad = pair("pad", "pad", 0)
    dilation = list(param.dilation)[:2] or [1]
    dilation = [dilation[0], dilation[-1]]
    channels = shape[1]
    shapes = [[channels, 1, *kernel]] + ([[channels]] if param.bias_term else [])
    blobs = ctx.blobs(*shapes)
    inputs = [x, ctx.const(blobs[0], "weight")]
    if param.bias_term:
        inputs.append(ctx.const(blobs[1], "bias"))
    return ctx.op("Conv", inputs, kernel_shape=kernel, strides=stride, pads=pad * 2,
                  dilations=dilation, group=channels)
