"""Activations: one LiteRT builtin where one computes exactly the ONNX formula,
else a short sequence of builtins that does."""

from __future__ import annotations

import math

import numpy as np

from migrate.writers.tensorflow.converters.elementwise import unary
from migrate.writers.tensorflow.registry import op_lowering


def _scalar(ctx, value: float, hint: str):
    return ctx.const(np.asarray(value, np.float32), hint)


def _finish(ctx, node, tensor, layout) -> None:
    ctx.bind(node.outputs[0], tensor, layout)


@op_lowering("LeakyRelu")
def leaky_relu(ctx, node):
    unary(ctx, node, "LEAKY_RELU", alpha=node.attributes.get_float("alpha", 0.01))


@op_lowering("Elu", "Selu")
def elu(ctx, node):
    """ELU computes exp(x) - 1 below zero; other alphas (and SELU) scale that part."""
    selu = node.op_type == "Selu"
    alpha = node.attributes.get_float("alpha", 1.67326319217681884765625 if selu else 1.0)
    gamma = node.attributes.get_float("gamma", 1.05070102214813232421875) if selu else 1.0
    found = ctx.get(node.inputs[0])
    x, shape = found.tensor, found.tensor.shape
    y = ctx.emit("ELU", [x], shape, hint="elu")
    if alpha != 1.0:
        positive = ctx.emit("GREATER", [x, _scalar(ctx, 0.0, "zero")], shape, "bool",
                            hint="positive")
        scaled = ctx.emit("MUL", [y, _scalar(ctx, alpha, "alpha")], shape, hint="scaled")
        y = ctx.emit("SELECT_V2", [positive, x, scaled], shape, hint="elu")
    if gamma != 1.0:
        y = ctx.emit("MUL", [y, _scalar(ctx, gamma, "gamma")], shape, hint="selu")
    _finish(ctx, node, y, found.layout)


def _bound(ctx, node, index: int, attr: str, default: float) -> float:
    if len(node.inputs) > index and node.inputs[index] is not None:
        return float(ctx.require_const(node.inputs[index], f"Clip's {attr}").reshape(()))
    return node.attributes.get_float(attr, default)


@op_lowering("Clip")
def clip(ctx, node):
    low = _bound(ctx, node, 1, "min", -math.inf)
    high = _bound(ctx, node, 2, "max", math.inf)
    named = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, math.inf): "RELU"}
    kind = named.get((low, high))
    if kind is not None:
        unary(ctx, node, kind)
        return
    found = ctx.get(node.inputs[0])
    y, shape = found.tensor, found.tensor.shape
    if low > -math.inf:
        y = ctx.emit("MAXIMUM", [y, _scalar(ctx, low, "min")], shape, hint="clip_min")
    if high < math.inf:
        y = ctx.emit("MINIMUM", [y, _scalar(ctx, high, "max")], shape, hint="clip_max")
    if y is found.tensor:
        ctx.alias(node.outputs[0], node.inputs[0])
        return
    _finish(ctx, node, y, found.layout)


@op_lowering("Softplus")
def softplus(ctx, node):
    """log(1 + exp(x)) as max(x, 0) + log(1 + exp(-|x|)): no overflow for large x."""
    found = ctx.get(node.inputs[0])
    x, shape = found.tensor, found.tensor.shape
    tail = ctx.emit("NEG", [ctx.emit("ABS", [x], shape, hint="abs")], shape, hint="neg_abs")
    tail = ctx.emit("ADD", [ctx.emit("EXP", [tail], shape, hint="exp"),
                            _scalar(ctx, 1.0, "one")], shape, hint="one_plus")
    tail = ctx.emit("LOG", [tail], shape, hint="log")
    y = ctx.emit("ADD", [ctx.emit("RELU", [x], shape, hint="relu"), tail], shape,
                 hint="softplus")
    _finish(ctx, node, y, found.layout)


@op_lowering("Softsign")
def softsign(ctx, node):
    found = ctx.get(node.inputs[0])
    x, shape = found.tensor, found.tensor.shape
    denominator = ctx.emit("ADD", [ctx.emit("ABS", [x], shape, hint="abs"),
                                   _scalar(ctx, 1.0, "one")], shape, hint="one_plus")
    _finish(ctx, node, ctx.emit("DIV", [x, denominator], shape, hint="softsign"), found.layout)


@op_lowering("HardSigmoid")
def hard_sigmoid(ctx, node):
    found = ctx.get(node.inputs[0])
    x, shape = found.tensor, found.tensor.shape
    alpha = node.attributes.get_float("alpha", 0.2)
    beta = node.attributes.get_float("beta", 0.5)
    y = ctx.emit("MUL", [x, _scalar(ctx, alpha, "alpha")], shape, hint="scale")
    y = ctx.emit("ADD", [y, _scalar(ctx, beta, "beta")], shape, hint="shift")
    y = ctx.emit("MAXIMUM", [y, _scalar(ctx, 0.0, "zero")], shape, hint="low")
    y = ctx.emit("MINIMUM", [y, _scalar(ctx, 1.0, "one")], shape, hint="hard_sigmoid")
    _finish(ctx, node, y, found.layout)


@op_lowering("HardSwish")
def hard_swish(ctx, node):
    unary(ctx, node, "HARD_SWISH")


@op_lowering("ThresholdedRelu")
def thresholded_relu(ctx, node):
    found = ctx.get(node.inputs[0])
    x, shape = found.tensor, found.tensor.shape
    alpha = node.attributes.get_float("alpha", 1.0)
    keep = ctx.emit("GREATER", [x, _scalar(ctx, alpha, "alpha")], shape, "bool", hint="above")
    y = ctx.emit("SELECT_V2", [keep, x, _scalar(ctx, 0.0, "zero")], shape, hint="threshold")
    _finish(ctx, node, y, found.layout)


@op_lowering("Erf")
def erf(ctx, node):
    # TensorFlow has erf; LiteRT has no builtin for it (its builder reports the layer)
    unary(ctx, node, "ERF")


@op_lowering("Shrink")
def shrink(ctx, node):
    """x - bias above lambd, x + bias below -lambd, 0 between (Hard/SoftShrink): two
    comparisons and two selects."""
    found = ctx.get(node.inputs[0])
    x, shape = found.tensor, found.tensor.shape
    lambd = node.attributes.get_float("lambd", 0.5)
    bias = node.attributes.get_float("bias", 0.0)
    above = ctx.emit("GREATER", [x, _scalar(ctx, lambd, "lambd")], shape, "bool", hint="above")
    below = ctx.emit("LESS", [x, _scalar(ctx, -lambd, "minus_lambd")], shape, "bool",
                     hint="below")
    high, low = x, x
    if bias:
        high = ctx.emit("SUB", [x, _scalar(ctx, bias, "bias")], shape, hint="high")
        low = ctx.emit("ADD", [x, _scalar(ctx, bias, "bias")], shape, hint="low")
    y = ctx.emit("SELECT_V2", [below, low, _scalar(ctx, 0.0, "zero")], shape, hint="low")
    y = ctx.emit("SELECT_V2", [above, high, y], shape, hint="shrink")
    _finish(ctx, node, y, found.layout)
