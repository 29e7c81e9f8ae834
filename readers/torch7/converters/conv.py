"""Spatial convolutions (plain, MM, dilated, full = transposed, depthwise, connection maps)
and SpatialSubSampling."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.limits import check_computed_constant
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


@converter("nn.SpatialSubSampling")
def spatial_sub_sampling(ctx, module, x):
    """Per plane: weight * (sum over a kH x kW window) + bias: a depthwise convolution
    whose kernel is the plane's weight everywhere."""
    n = module.int("nInputPlane")
    kw, kh = module.int("kW"), module.int("kH")
    weight = module.tensor("weight")
    if weight is None or weight.size != n:
        raise ConversionError("weight does not hold one value per plane")
    shape = ctx.shape(x)
    if len(shape) < 3 or shape[-3] != n or not (1 <= kh <= shape[-2] and 1 <= kw <= shape[-1]):
        raise ConversionError(f"a {kh}x{kw} window over {n} planes does not fit the input "
                              f"{list(shape)}")
    kernel = np.broadcast_to(weight.reshape(n, 1, 1, 1), (n, 1, kh, kw))
    inputs = [ctx.const(np.ascontiguousarray(kernel), "weight"), *_bias(ctx, module, n)]
    return ctx.batched(x, 4, lambda x4: ctx.op(
        "Conv", [x4, *inputs], hint="subsample", kernel_shape=[kh, kw], group=n,
        strides=[module.int("dH", 1), module.int("dW", 1)]))


@converter("nn.SpatialDepthWiseConvolution")
def spatial_depthwise_convolution(ctx, module, x):
    """nOutputPlane filters per input plane; output plane i*nOutputPlane + o is input
    plane i convolved with weight[o][i] (THNN's layout: weight nOut x nIn x kH x kW,
    bias nOut x nIn)."""
    n_in, per_plane = module.int("nInputPlane"), module.int("nOutputPlane")
    kh, kw, attrs = _geometry(module)
    weight = module.tensor("weight")
    if weight is None or weight.size != per_plane * n_in * kh * kw:
        raise ConversionError("weight does not match nOutputPlane x nInputPlane x kH x kW")
    kernel = weight.reshape(per_plane, n_in, kh, kw).transpose(1, 0, 2, 3)
    inputs = [ctx.const(np.ascontiguousarray(kernel).reshape(n_in * per_plane, 1, kh, kw),
                        "weight")]
    bias = module.tensor("bias")
    if bias is not None:
        inputs.append(ctx.const(np.ascontiguousarray(bias.reshape(per_plane, n_in).T)
                                .reshape(-1), "bias"))

    def convolve(x4):
        n, c, h, w = ctx.shape(x4)
        if h != w:
            # THNN hands the plane to its unfold as width = size(3), height = size(4):
            # it reads the H x W plane's memory as a W x H one.
            ctx.notes.append(f"{module.path} (nn.SpatialDepthWiseConvolution): non-square "
                             "input read as nn's kernel does (as a W x H plane)")
            x4 = ctx.op("Reshape", [x4, ctx.int64s([n, c, w, h])], hint="as_nn_reads")
        return ctx.op("Conv", [x4, *inputs], hint="depthwise", kernel_shape=[kh, kw],
                      group=n_in, **attrs)

    return ctx.batched(x, 4, convolve)


def _connections(module, n_in, n_out):
    """nn.SpatialConvolutionMap's connTable (1-based input, output plane per kernel)."""
    table = module.fields.get("connTable")
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[1] != 2:
        raise ConversionError("connTable is not an n x 2 table")
    pairs = table.astype(np.int64) - 1
    if ((pairs[:, 0] < 0) | (pairs[:, 0] >= n_in) | (pairs[:, 1] < 0)
            | (pairs[:, 1] >= n_out)).any():
        raise ConversionError(f"connTable names planes outside {n_in} inputs, {n_out} outputs")
    return pairs


def mapped_kernels(module, n_in, n_out, what):
    """The per-connection kernels as one dense weight (output, input, kH, kW); planes that
    are not connected get zero kernels (adding 0 x input is exact)."""
    kh, kw = module.int("kH"), module.int("kW")
    pairs = _connections(module, n_in, n_out)
    weight = module.tensor("weight")
    if weight is None or weight.size != len(pairs) * kh * kw:
        raise ConversionError(f"{what} weight does not hold one kH x kW kernel per connection")
    check_computed_constant(n_out * n_in * kh * kw, 4, f"a dense {n_out}x{n_in} kernel table")
    dense = np.zeros((n_out, n_in, kh, kw), np.float32)
    np.add.at(dense, (pairs[:, 1], pairs[:, 0]), weight.reshape(-1, kh, kw))
    return dense, pairs, kh, kw


@converter("nn.SpatialConvolutionMap")
def spatial_convolution_map(ctx, module, x):
    """Output plane o = bias[o] + sum over connections (i, o) of input plane i
    cross-correlated with that connection's kernel."""
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    dense, pairs, kh, kw = mapped_kernels(module, n_in, n_out, "SpatialConvolutionMap")
    strides = [module.int("dH", 1), module.int("dW", 1)]
    one_to_one = n_in == n_out == len(pairs) and (pairs[:, 0] == pairs[:, 1]).all() \
        and len(set(pairs[:, 0].tolist())) == n_in
    if one_to_one:  # nn.tables.oneToOne: each plane alone (a depthwise convolution)
        kernel = ctx.const(np.ascontiguousarray(dense[np.arange(n_in), np.arange(n_in)])
                           .reshape(n_in, 1, kh, kw), "weight")
    else:
        kernel = ctx.const(dense, "weight")
    inputs = [kernel, *_bias(ctx, module, n_out)]

    def convolve(x4):
        if ctx.shape(x4)[1] != n_in:
            raise ConversionError(f"input has {ctx.shape(x4)[1]} planes, the table {n_in}")
        return ctx.op("Conv", [x4, *inputs], hint="conv_map", kernel_shape=[kh, kw],
                      strides=strides, group=n_in if one_to_one else 1)

    return ctx.batched(x, 4, convolve)


@converter("nn.SpatialFullConvolutionMap")
def spatial_full_convolution_map(ctx, module, x):
    """The transposed (full) convolution of SpatialConvolutionMap: every input pixel adds
    its value times the connection's kernel at stride dH, dW (output (H-1)*dH + kH)."""
    n_in, n_out = module.int("nInputPlane"), module.int("nOutputPlane")
    dense, _, kh, kw = mapped_kernels(module, n_in, n_out, "SpatialFullConvolutionMap")
    # ConvTranspose wants input plane first
    inputs = [ctx.const(np.ascontiguousarray(dense.transpose(1, 0, 2, 3)), "weight"),
              *_bias(ctx, module, n_out)]
    return ctx.batched(x, 4, lambda x4: ctx.op(
        "ConvTranspose", [x4, *inputs], hint="full_conv_map", kernel_shape=[kh, kw],
        strides=[module.int("dH", 1), module.int("dW", 1)]))
