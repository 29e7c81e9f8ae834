"""Activations and softmax."""

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("Relu")
def relu(w, node):
    w.activation("Relu", "relu", node)


@op_converter("Tanh")
def tanh(w, node):
    w.activation("Tanh", "tanh", node)


@op_converter("Sigmoid")
def sigmoid(w, node):
    w.activation("Sigmoid", "sigmoid", node)


def _softmax_blob(w, node, kind):
    """Softmax over one axis. Caffe2's Softmax flattens everything from `axis` on,
    which is one axis only when it is the last: move other axes last and back."""
    x = node.inputs[0]
    rank = len(w.shape(x))
    axis = node.attributes.get_int("axis", -1) % rank
    name = w.prefix(kind)
    if axis == rank - 1:
        w.emit("Softmax", [w.blob(x)], [name], axis=axis)
        return name
    w.note("softmax over a non-last axis -> Transpose + Softmax + Transpose")
    perm = [d for d in range(rank) if d != axis] + [axis]
    inverse = [perm.index(d) for d in range(rank)]
    moved = f"{name}_in"
    w.emit("Transpose", [w.blob(x)], [moved], axes=perm)
    w.emit("Softmax", [moved], [f"{name}_t"], axis=rank - 1)
    w.emit("Transpose", [f"{name}_t"], [name], axes=inverse)
    return name


@op_converter("Softmax")
def softmax(w, node):
    w.bind(node.outputs[0], _softmax_blob(w, node, "softmax"))


@op_converter("LogSoftmax")
def log_softmax(w, node):
    # Caffe2 has no LogSoftmax operator: Softmax then Log.
    w.note("LogSoftmax -> Softmax + Log (Caffe2 has no LogSoftmax)")
    probabilities = _softmax_blob(w, node, "softmax")
    name = w.prefix("log")
    w.emit("Log", [probabilities], [name])
    w.bind(node.outputs[0], name)


@op_converter("Clip")
def clip(w, node):
    x, lo, hi = (list(node.inputs) + [None, None])[:3]
    bounds = {}
    for key, value in (("min", lo), ("max", hi)):
        array = w.const_or_none(value)
        if value is not None and array is None:
            raise ConversionError("Clip bounds must be constants")
        if array is not None:
            bounds[key] = float(array.reshape(-1)[0])
    w.simple("Clip", "clip", node, inputs=[w.blob(x)], **bounds)


def _unary(caffe2_type, kind, **fixed):
    def convert(w, node):
        w.simple(caffe2_type, kind, node, inputs=[w.blob(node.inputs[0])], **fixed)

    return convert


for _onnx, _caffe2, _kind in (
    ("Abs", "Abs", "abs"), ("Exp", "Exp", "exp"), ("Log", "Log", "log"),
    ("Sqrt", "Sqrt", "sqrt"), ("Neg", "Negative", "neg"), ("Softplus", "Softplus", "softplus"),
):
    op_converter(_onnx)(_unary(_caffe2, _kind))


@op_converter("Elu")
def elu(w, node):
    w.simple("Elu", "elu", node, alpha=node.attributes.get_float("alpha", 1.0))


@op_converter("LeakyRelu")
def leaky_relu(w, node):
    w.activation("LeakyRelu", "leakyrelu", node, alpha=node.attributes.get_float("alpha", 0.01))


@op_converter("PRelu")
def prelu(w, node):
    x, slope = node.inputs
    name = w.prefix("prelu")
    # Caffe2's PRelu takes one slope per channel (or a single shared one)
    w.emit("PRelu", [w.blob(x), w.param(w.const(slope).reshape(-1), f"{name}_slope")], [name],
           order="NCHW")
    w.bind(node.outputs[0], name)
