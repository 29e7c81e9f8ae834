"""Activations and softmax, each in PyTorch's exact formula."""

import math

import numpy as np

from migrate.core.errors import UnsupportedError
from migrate.readers.pytorch.context import axis
from migrate.readers.pytorch.registry import converter


def _unary(onnx_type: str, hint: str):
    def convert(ctx, x):
        return ctx.op(onnx_type, [x], hint=hint)

    return convert


for _names, _onnx, _hint in (
    (("aten.relu",), "Relu", "relu"), (("aten.sigmoid",), "Sigmoid", "sigmoid"),
    (("aten.tanh",), "Tanh", "tanh"),
):
    converter(*_names)(_unary(_onnx, _hint))


def _clip(ctx, x, low, high):
    if low == 0 and high is None:
        return ctx.op("Relu", [x], hint="relu")
    bounds = [None if b is None else ctx.scalar(float(b), x, "bound") for b in (low, high)]
    return ctx.op("Clip", [x, *bounds], hint="clip")


@converter("aten.hardtanh")
def hardtanh(ctx, x, min_val=-1.0, max_val=1.0):
    return _clip(ctx, x, min_val, max_val)  # ReLU6 is hardtanh(0, 6)


@converter("aten.clamp")
def clamp(ctx, x, min=None, max=None):  # noqa: A002 (PyTorch's argument names)
    return _clip(ctx, x, min, max)


@converter("aten.clamp_min")
def clamp_min(ctx, x, low):
    return _clip(ctx, x, low, None)


@converter("aten.clamp_max")
def clamp_max(ctx, x, high):
    return _clip(ctx, x, None, high)


@converter("aten.gelu")
def gelu(ctx, x, approximate="none"):
    """PyTorch's GELU: x/2 (1 + erf(x/sqrt 2)), or with approximate='tanh'
    x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (ONNX's Gelu op is opset 20)."""
    if approximate == "tanh":
        cube = ctx.op("Mul", [ctx.op("Mul", [x, x]), x])
        inner = ctx.op("Add", [x, ctx.op("Mul", [cube, ctx.scalar(0.044715, x)])])
        scaled = ctx.op("Mul", [inner, ctx.scalar(math.sqrt(2.0 / math.pi), x)])
        curve = ctx.op("Tanh", [scaled])
    elif approximate == "none":
        curve = ctx.op("Erf", [ctx.op("Mul", [x, ctx.scalar(math.sqrt(0.5), x)])])
    else:
        raise UnsupportedError(f"GELU approximate={approximate!r}")
    half_x = ctx.op("Mul", [x, ctx.scalar(0.5, x)])
    return ctx.op("Mul", [half_x, ctx.op("Add", [curve, ctx.scalar(1.0, x)])], hint="gelu")


@converter("aten.leaky_relu")
def leaky_relu(ctx, x, negative_slope=0.01):
    return ctx.op("LeakyRelu", [x], hint="leakyrelu", alpha=float(negative_slope))


@converter("aten.elu")
def elu(ctx, x, alpha=1.0, scale=1.0, input_scale=1.0):
    if float(input_scale) != 1.0:
        raise UnsupportedError("ELU with input_scale != 1")
    out = ctx.op("Elu", [x], hint="elu", alpha=float(alpha))
    if float(scale) != 1.0:  # SELU is ELU scaled
        out = ctx.op("Mul", [out, ctx.scalar(float(scale), x)], hint="selu")
    return out


@converter("aten.hardsigmoid")
def hardsigmoid(ctx, x):
    return ctx.op("HardSigmoid", [x], hint="hardsigmoid", alpha=1.0 / 6.0, beta=0.5)


@converter("aten.hardswish")
def hardswish(ctx, x):
    return ctx.op("Mul", [x, hardsigmoid(ctx, x)], hint="hardswish")


@converter("aten.silu")
def silu(ctx, x):
    return ctx.op("Mul", [x, ctx.op("Sigmoid", [x])], hint="silu")


@converter("aten.mish")
def mish(ctx, x):
    return ctx.op("Mul", [x, ctx.op("Tanh", [ctx.op("Softplus", [x])])], hint="mish")


@converter("aten.softplus")
def softplus(ctx, x, beta=1.0, threshold=20.0):
    if float(beta) != 1.0:
        scaled = ctx.op("Mul", [x, ctx.scalar(float(beta), x)])
        return ctx.op("Div", [ctx.op("Softplus", [scaled]), ctx.scalar(float(beta), x)])
    return ctx.op("Softplus", [x], hint="softplus")


@converter("aten._prelu_kernel", "aten.prelu")
def prelu(ctx, x, weight):
    rank = ctx.rank(x)
    slope = weight
    count = int(np.prod(ctx.shape(weight)))
    if count > 1 and rank > 2:  # one slope per channel (dim 1), broadcast over the rest
        slope = ctx.op("Reshape", [weight, ctx.int64s([count] + [1] * (rank - 2))])
    return ctx.op("PRelu", [x, slope], hint="prelu")


@converter("aten._softmax", "aten.softmax")
def softmax(ctx, x, dim, half_to_float=False):
    return ctx.op("Softmax", [x], hint="softmax", axis=axis(int(dim), ctx.rank(x)))


@converter("aten._log_softmax", "aten.log_softmax")
def log_softmax(ctx, x, dim, half_to_float=False):
    return ctx.op("LogSoftmax", [x], hint="logsoftmax", axis=axis(int(dim), ctx.rank(x)))
