"""Element-wise activations, Softmax, and ops that are a Caffe Power."""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import operand_block, power, reshape
from migrate.writers.caffe.registry import op_converter

FLT_MAX = float(np.finfo(np.float32).max)


def _simple(caffe_type: str, **params):
    def convert(net, node):
        net.output(caffe_type, [net.blob(node.inputs[0])], **params)

    return convert


for _onnx, _caffe in (("Relu", "ReLU"), ("Sigmoid", "Sigmoid"), ("Tanh", "TanH"),
                      ("Abs", "AbsVal"), ("Exp", "Exp"), ("Log", "Log"),
                      ("Softplus", "BNLL")):  # BNLL is log(1 + e^x), computed stably
    op_converter(_onnx)(_simple(_caffe))


@op_converter("LeakyRelu")
def leaky_relu(net, node):
    net.output("ReLU", [net.blob(node.inputs[0])],
               relu_param={"negative_slope": node.attributes.get_float("alpha", 0.01)})


@op_converter("Elu")
def elu(net, node):
    net.output("ELU", [net.blob(node.inputs[0])],
               elu_param={"alpha": node.attributes.get_float("alpha", 1.0)})


@op_converter("Selu")
def selu(net, node):
    alpha = node.attributes.get_float("alpha", 1.67326319217681884765625)
    gamma = node.attributes.get_float("gamma", 1.05070102214813232421875)
    top = net.layer("ELU", [net.blob(node.inputs[0])], net.value_shape(node.outputs[0]),
                    kind="elu", elu_param={"alpha": alpha})
    net.bind(node.outputs[0], power(net, top, scale=gamma, kind="scale"))


@op_converter("PRelu")
def prelu(net, node):
    x, slope = node.inputs
    values = net.const(slope)
    out_shape = net.value_shape(node.outputs[0])
    if values.size == 1:
        blobs, params = [values.reshape(())], {"prelu_param": {"channel_shared": True}}
    else:
        axis, block, expand = operand_block(out_shape, values.shape)
        if axis != 1 or len(block) != 1 or expand:
            raise ConversionError(f"PRelu with a slope of shape {list(values.shape)}: Caffe's "
                                  "PReLU has one slope per channel (axis 1) or one in all")
        blobs, params = [values.reshape(-1)], {}
    blob = net.blob(x)
    if len(out_shape) < 2:
        raise ConversionError("PRelu over a 1-D tensor: Caffe's PReLU needs (N, C, ...)")
    if len(out_shape) > 4:  # Caffe's PReLU reads legacy (at most 4-D) shapes
        blob = reshape(net, blob, (*out_shape[:2], math.prod(out_shape[2:])), kind="flat")
        top = net.layer("PReLU", [blob], net.shape(blob), kind="prelu", blobs=blobs, **params)
        net.bind(node.outputs[0], reshape(net, top, out_shape, kind=None))
        return
    net.output("PReLU", [blob], blobs=blobs, **params)


def _bound(net, value, default):
    if value is None:
        return default
    array = net.const(value)
    if array.size != 1:
        raise ConversionError("Clip with a tensor bound has no Caffe layer")
    return float(array.reshape(-1)[0])


@op_converter("Clip")
def clip(net, node):
    low = _bound(net, node.inputs[1] if len(node.inputs) > 1 else None, -FLT_MAX)
    high = _bound(net, node.inputs[2] if len(node.inputs) > 2 else None, FLT_MAX)
    x = net.blob(node.inputs[0])
    if low == 0.0 and high == FLT_MAX:
        net.output("ReLU", [x])
        return
    net.output("Clip", [x], clip_param={"min": low, "max": high})


@op_converter("HardSigmoid")
def hard_sigmoid(net, node):
    alpha = node.attributes.get_float("alpha", 0.2)
    beta = node.attributes.get_float("beta", 0.5)
    top = power(net, net.blob(node.inputs[0]), scale=alpha, shift=beta, kind="affine")
    net.output("Clip", [top], clip_param={"min": 0.0, "max": 1.0})


def _axis(net, node):
    rank = len(net.value_shape(node.outputs[0]))
    axis = node.attributes.get_int("axis", -1)
    return axis + rank if axis < 0 else axis


@op_converter("Softmax")
def softmax(net, node):
    net.output("Softmax", [net.blob(node.inputs[0])], softmax_param={"axis": _axis(net, node)})


@op_converter("LogSoftmax")
def log_softmax(net, node):
    net.note("LogSoftmax -> Softmax + Log (Caffe has no LogSoftmax; the same numbers unless "
             "a probability is below float32's range, ~1e-38)")
    top = net.layer("Softmax", [net.blob(node.inputs[0])], net.value_shape(node.outputs[0]),
                    kind="softmax", softmax_param={"axis": _axis(net, node)})
    net.output("Log", [top])


def _power(**params):
    def convert(net, node):
        net.bind(node.outputs[0], power(net, net.blob(node.inputs[0]), kind=None, **params))

    return convert


op_converter("Sqrt")(_power(power=0.5))
op_converter("Reciprocal")(_power(power=-1.0))
op_converter("Neg")(_power(scale=-1.0))


def _alias(net, node):
    for extra in node.outputs[1:]:
        if extra.uses() or extra.is_graph_output():
            raise ConversionError(f"{node.op_type}'s mask output has no Caffe equivalent")
    net.bind(node.outputs[0], net.blob(node.inputs[0]))


op_converter("Identity", "Dropout")(_alias)


@op_converter("Cast")
def cast(net, node):
    to = node.attributes.get_int("to")
    if to not in (1, 10, 11, 16):  # float, float16, double, bfloat16: Caffe computes in float
        raise ConversionError("Cast to a non-float type has no Caffe layer")
    _alias(net, node)


@op_converter("Softsign")
def softsign(net, node):
    """x / (1 + |x|) = x * (1 + |x|) ^ -1."""
    x = net.blob(node.inputs[0])
    shape = net.shape(x)
    size = net.layer("AbsVal", [x], shape, kind="abs")
    inverse = power(net, size, power=-1.0, shift=1.0, kind="inverse")
    net.output("Eltwise", [x, inverse], eltwise_param={"operation": "PROD"})


@op_converter("Shrink")
def shrink(net, node):
    """(x - bias) * [x > lambd] + (x + bias) * [-x > lambd]: at most one term is not 0."""
    lambd = node.attributes.get_float("lambd", 0.5)
    bias = node.attributes.get_float("bias", 0.0)
    x = net.blob(node.inputs[0])
    shape = net.shape(x)
    above = net.layer("Threshold", [x], shape, kind="above", threshold_param={"threshold": lambd})
    negated = power(net, x, scale=-1.0, kind="neg")
    below = net.layer("Threshold", [negated], shape, kind="below",
                      threshold_param={"threshold": lambd})
    high = power(net, x, shift=-bias, kind="high") if bias else x
    low = power(net, x, shift=bias, kind="low") if bias else x
    terms = [net.layer("Eltwise", [value, gate], shape, kind="term",
                       eltwise_param={"operation": "PROD"})
             for value, gate in ((high, above), (low, below))]
    net.output("Eltwise", terms, eltwise_param={"operation": "SUM"})
