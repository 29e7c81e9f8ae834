"""Element-wise activations and unary math, and softmax."""

from __future__ import annotations

import numpy as np

from migrate.readers.caffe2.registry import caffe2_op

_UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Abs": "Abs", "Exp": "Exp",
          "Log": "Log", "Sqrt": "Sqrt", "Negative": "Neg", "Sign": "Sign", "Floor": "Floor",
          "Ceil": "Ceil", "Erf": "Erf", "Sin": "Sin", "Cos": "Cos", "Not": "Not",
          "Softsign": "Softsign", "Softplus": "Softplus", "Reciprocal": "Reciprocal"}


def _unary(onnx_type: str):
    def convert(ctx, op, inputs):
        return [ctx.op(onnx_type, inputs[:1], hint=onnx_type.lower())]
    return convert


for _caffe2, _onnx in _UNARY.items():
    caffe2_op(_caffe2)(_unary(_onnx))


@caffe2_op("Sqr")
def sqr(ctx, op, inputs):
    return [ctx.op("Mul", [inputs[0], inputs[0]], hint="sqr")]


@caffe2_op("LeakyRelu")
def leaky_relu(ctx, op, inputs):
    return [ctx.op("LeakyRelu", inputs[:1], hint="leakyrelu",
                   alpha=ctx.args.float("alpha", 0.01))]


@caffe2_op("Elu")
def elu(ctx, op, inputs):
    return [ctx.op("Elu", inputs[:1], hint="elu", alpha=ctx.args.float("alpha", 1.0))]


@caffe2_op("Selu")
def selu(ctx, op, inputs):
    return [ctx.op("Selu", inputs[:1], hint="selu", alpha=ctx.args.float("alpha", 1.6732632),
                   gamma=ctx.args.float("scale", 1.050701))]


@caffe2_op("PRelu")
def prelu(ctx, op, inputs):
    """The slope is one value or one per channel (axis 1 in NCHW, the last in NHWC)."""
    x, slope = inputs[:2]
    rank = len(ctx.shape(x))
    size = int(np.prod(ctx.shape(slope)))
    if size > 1 and ctx.order() == "NCHW" and rank > 2:
        shape = [size] + [1] * (rank - 2)
        array = ctx.constant_of(slope)
        slope = ctx.const(array.reshape(shape), "slope") if array is not None else ctx.op(
            "Reshape", [slope, ctx.int64s(shape)])
    return [ctx.op("PRelu", [x, slope], hint="prelu")]


@caffe2_op("Clip")
def clip(ctx, op, inputs):
    low = ctx.const(np.float32(ctx.args.float("min", float(np.finfo(np.float32).min))), "min")
    high = ctx.const(np.float32(ctx.args.float("max", float(np.finfo(np.float32).max))), "max")
    return [ctx.op("Clip", [inputs[0], low, high], hint="clip")]


def _softmax(ctx, x, axis: int, onnx_type: str):
    """Caffe2 flattens the input to 2-D at `axis` (dims before x dims from axis on)."""
    shape = ctx.shape(x)
    axis = axis % len(shape)
    if axis == len(shape) - 1:
        return ctx.op(onnx_type, [x], hint="softmax", axis=-1)
    flat = ctx.op("Flatten", [x], axis=axis)
    y = ctx.op(onnx_type, [flat], hint="softmax", axis=-1)
    return ctx.op("Reshape", [y, ctx.int64s(list(shape))], hint="softmax")


@caffe2_op("Softmax")
def softmax(ctx, op, inputs):
    default = 1 if ctx.order() == "NCHW" else len(ctx.shape(inputs[0])) - 1
    return [_softmax(ctx, inputs[0], ctx.args.int("axis", default), "Softmax")]


@caffe2_op("LogSoftmax")
def log_softmax(ctx, op, inputs):
    return [_softmax(ctx, inputs[0], ctx.args.int("axis", 1), "LogSoftmax")]
