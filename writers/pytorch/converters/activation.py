"""Activations and softmax as torch.nn layers named after the source layer:
nn.ReLU(inplace=True) where nothing else needs the input any more, nn.PReLU with its
per-channel weights, nn.ReLU6/Hardtanh for clipping, nn.Softmax(dim=...)."""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, literal
from migrate.writers.pytorch.registry import op_converter

_SELU_ALPHA = 1.6732632423543772
_SELU_GAMMA = 1.0507009873554805


def _layer(g: CodeGen, node, kind: str, constructor: str) -> None:
    layer = g.module(kind, constructor)
    g.emit(f"{layer}({g.ref(node.inputs[0])})")


def _f32(value: float) -> str:
    return literal(value, np.float32)


def _same(a: float, b: float) -> bool:
    return np.float32(a) == np.float32(b)


@op_converter("Relu")
def relu(g: CodeGen, node) -> None:
    inplace = "inplace=True" if g.can_modify(node.inputs[0]) else ""
    layer = g.module("relu", f"nn.ReLU({inplace})")
    x = g.ref(node.inputs[0])
    if inplace:
        g.emit(f"{layer}({x})", view_of=node.inputs[0])
    else:
        g.emit(f"{layer}({x})")


_SIMPLE = {"Sigmoid": ("sigmoid", "nn.Sigmoid()"), "Tanh": ("tanh", "nn.Tanh()"),
           "Softsign": ("softsign", "nn.Softsign()"), "HardSwish": ("hardswish", "nn.Hardswish()"),
           "Mish": ("mish", "nn.Mish()")}


@op_converter(*_SIMPLE)
def simple(g: CodeGen, node) -> None:
    kind, constructor = _SIMPLE[node.op_type]
    _layer(g, node, kind, constructor)


@op_converter("LeakyRelu")
def leaky_relu(g: CodeGen, node) -> None:
    alpha = node.attributes.get_float("alpha", 0.01)
    arg = "" if _same(alpha, 0.01) else _f32(alpha)
    _layer(g, node, "relu", f"nn.LeakyReLU({arg})")


@op_converter("Elu")
def elu(g: CodeGen, node) -> None:
    alpha = node.attributes.get_float("alpha", 1.0)
    _layer(g, node, "elu", "nn.ELU()" if alpha == 1.0 else f"nn.ELU(alpha={_f32(alpha)})")


@op_converter("Celu")
def celu(g: CodeGen, node) -> None:
    alpha = node.attributes.get_float("alpha", 1.0)
    _layer(g, node, "celu", "nn.CELU()" if alpha == 1.0 else f"nn.CELU(alpha={_f32(alpha)})")


@op_converter("Selu")
def selu(g: CodeGen, node) -> None:
    alpha = node.attributes.get_float("alpha", _SELU_ALPHA)
    gamma = node.attributes.get_float("gamma", _SELU_GAMMA)
    if _same(alpha, _SELU_ALPHA) and _same(gamma, _SELU_GAMMA):
        _layer(g, node, "selu", "nn.SELU()")
        return
    x = g.ref(node.inputs[0])
    g.emit(f"{_f32(gamma)} * F.elu({x}, alpha={_f32(alpha)})", comment=True)


@op_converter("Softplus")
def softplus(g: CodeGen, node) -> None:
    _layer(g, node, "softplus", "nn.Softplus()")


@op_converter("ThresholdedRelu")
def thresholded_relu(g: CodeGen, node) -> None:
    alpha = node.attributes.get_float("alpha", 1.0)
    _layer(g, node, "threshold", f"nn.Threshold({_f32(alpha)}, 0.0)")


@op_converter("Shrink")
def shrink(g: CodeGen, node) -> None:
    lambd = node.attributes.get_float("lambd", 0.5)
    bias = node.attributes.get_float("bias", 0.0)
    if bias == lambd:
        _layer(g, node, "shrink", f"nn.Softshrink({_f32(lambd)})")
    elif bias == 0.0:
        _layer(g, node, "shrink", f"nn.Hardshrink({_f32(lambd)})")
    else:
        x = g.ref(node.inputs[0])
        lam, b = _f32(lambd), _f32(bias)
        g.emit(f"torch.where({x} < -{lam}, {x} + {b}, torch.where({x} > {lam}, {x} - {b}, "
               f"torch.zeros_like({x})))", comment=True)


@op_converter("HardSigmoid")
def hard_sigmoid(g: CodeGen, node) -> None:
    alpha = node.attributes.get_float("alpha", 0.2)
    beta = node.attributes.get_float("beta", 0.5)
    if _same(alpha, 1 / 6) and _same(beta, 0.5):
        _layer(g, node, "hardsigmoid", "nn.Hardsigmoid()")
        return
    x = g.ref(node.inputs[0])
    g.emit(f"torch.clamp({x} * {_f32(alpha)} + {_f32(beta)}, 0.0, 1.0)", comment=True)


@op_converter("Clip")
def clip(g: CodeGen, node) -> None:
    x = node.inputs[0]
    bounds = []
    for value in node.inputs[1:3]:
        if value is None:
            bounds.append(None)
            continue
        array = g.need_const(value, "bound")
        bounds.append(float(array.reshape(-1)[0]))
    while len(bounds) < 2:
        bounds.append(None)
    low, high = bounds
    if low == 0.0 and high == 6.0:
        _layer(g, node, "relu", "nn.ReLU6()")
    elif low == 0.0 and high is None:
        _layer(g, node, "relu", "nn.ReLU()")
    elif low == -1.0 and high == 1.0:
        _layer(g, node, "hardtanh", "nn.Hardtanh()")
    elif low is not None and high is not None:
        _layer(g, node, "hardtanh", f"nn.Hardtanh({_f32(low)}, {_f32(high)})")
    else:
        given = [f"min={_f32(low)}"] if low is not None else []
        given += [f"max={_f32(high)}"] if high is not None else []
        g.emit(f"torch.clamp({g.ref(x)}{''.join(', ' + a for a in given)})", comment=True)


@op_converter("PRelu")
def prelu(g: CodeGen, node) -> None:
    x, slope_value = node.inputs
    slope = g.need_const(slope_value, "slope")
    shape = g.shape(x)
    channels = shape[1] if len(shape) >= 2 else 1
    padded = (1,) * (len(shape) - slope.ndim) + slope.shape
    per_channel = (len(shape) >= 2 and slope.size == channels and padded[1] == channels
                   and math.prod(padded) == channels)
    if slope.size == 1 or per_channel:
        n = slope.size
        layer = g.module("prelu", "nn.PReLU()" if n == 1 else f"nn.PReLU({n})",
                         {"weight": slope.reshape(n)})
        g.emit(f"{layer}({g.ref(x)})")
        return
    if slope.size > 1 and slope.ndim > len(shape):
        raise ConversionError(f"a slope of shape {list(slope.shape)} for an input of shape "
                              f"{list(shape)}")
    weight = g.tensor(slope_value, "prelu")
    xs = g.ref(x)
    g.emit(f"torch.where({xs} >= 0, {xs}, {xs} * {weight})", comment=True)


def _softmax(g: CodeGen, node, layer_class: str, kind: str) -> None:
    axis = node.attributes.get_int("axis", -1)
    rank = len(g.shape(node.inputs[0]))
    if axis < 0:
        axis += rank
    _layer(g, node, kind, f"nn.{layer_class}(dim={axis})")


@op_converter("Softmax")
def softmax(g: CodeGen, node) -> None:
    _softmax(g, node, "Softmax", "softmax")


@op_converter("LogSoftmax")
def log_softmax(g: CodeGen, node) -> None:
    _softmax(g, node, "LogSoftmax", "logsoftmax")
