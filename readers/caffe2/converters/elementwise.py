"""Binary and n-ary element-wise ops, with Caffe2's legacy `broadcast`/`axis` form."""

from __future__ import annotations

import numpy as np

from migrate.readers.caffe2.registry import caffe2_op

_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "EQ": "Equal",
           "GT": "Greater", "GE": "GreaterOrEqual", "LT": "Less", "LE": "LessOrEqual",
           "And": "And", "Or": "Or", "Xor": "Xor"}


def legacy_broadcast(ctx, a, b):
    """With broadcast=1, B's dims line up with A's from `axis` on (NumPy aligns them from
    the end): give B trailing ones. Without it, NumPy rules (Caffe2's default too)."""
    if not ctx.args.int("broadcast", 0):
        return b
    rank_a, rank_b = len(ctx.shape(a)), len(ctx.shape(b))
    axis = ctx.args.int("axis", -1)
    if ctx.args.has("axis_str"):
        axis = ctx.order().index(ctx.args.str("axis_str"))
    if axis < 0:
        axis = rank_a - rank_b
    trailing = rank_a - axis - rank_b
    if trailing > 0:
        shape = list(ctx.shape(b)) + [1] * trailing
        b = ctx.op("Reshape", [b, ctx.int64s(shape)])
    return b


def _binary(onnx_type: str):
    def convert(ctx, op, inputs):
        a, b = inputs[:2]
        return [ctx.op(onnx_type, [a, legacy_broadcast(ctx, a, b)], hint=onnx_type.lower())]
    return convert


for _caffe2, _onnx in _BINARY.items():
    caffe2_op(_caffe2)(_binary(_onnx))


@caffe2_op("Sum", "Max", "Min", "Mean")
def variadic(ctx, op, inputs):
    if len(inputs) == 1:
        return [ctx.op("Identity", inputs, hint=op.type.lower())]
    return [ctx.op(op.type, inputs, hint=op.type.lower())]


@caffe2_op("Scale")
def scale(ctx, op, inputs):
    k = ctx.const(np.float32(ctx.args.float("scale", 1.0)), "scale")
    return [ctx.op("Mul", [inputs[0], k], hint="scale")]


@caffe2_op("Pow")
def power(ctx, op, inputs):
    if ctx.args.has("exponent"):
        exponent = ctx.const(np.float32(ctx.args.float("exponent")), "exponent")
    else:
        exponent = legacy_broadcast(ctx, inputs[0], inputs[1])
    return [ctx.op("Pow", [inputs[0], exponent], hint="pow")]


@caffe2_op("Where")
def where(ctx, op, inputs):
    return [ctx.op("Where", inputs[:3], hint="where")]
