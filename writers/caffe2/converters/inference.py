"""Ops that exporters leave in inference graphs: Dropout (a copy at test time),
global pooling, Flatten."""

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("Dropout")
def dropout(w, node):
    # Inference: the identity (ONNX's training_mode input is false unless set).
    mode = node.inputs[2] if len(node.inputs) > 2 else None
    flag = w.const_or_none(mode)
    if mode is not None and (flag is None or bool(flag.reshape(-1)[0])):
        raise ConversionError("Dropout in training mode (random) cannot be exported")
    w.simple("Copy", "dropout", node, inputs=[w.blob(node.inputs[0])])


def _global_pool(w, node, op_type, kind):
    rank = len(w.shape(node.inputs[0]))
    if rank != 4:
        raise ConversionError(f"global pooling of a {rank}-D input (Caffe2 pools 2-D maps)")
    w.simple(op_type, kind, node, inputs=[w.blob(node.inputs[0])], global_pooling=1,
             order="NCHW")


@op_converter("GlobalAveragePool")
def global_average_pool(w, node):
    _global_pool(w, node, "AveragePool", "avgpool")


@op_converter("GlobalMaxPool")
def global_max_pool(w, node):
    _global_pool(w, node, "MaxPool", "pool")


@op_converter("Flatten")
def flatten(w, node):
    """ONNX Flatten(axis) is a 2-D reshape at `axis` (Caffe2's Flatten only knows axis 1)."""
    shape = w.shape(node.inputs[0])
    axis = node.attributes.get_int("axis", 1) % (len(shape) + 1)
    outer = 1
    for d in shape[:axis]:
        outer *= d
    name = w.prefix("flatten")
    w.emit("Reshape", [w.blob(node.inputs[0])], [name, f"{name}_old_shape"], shape=[outer, -1])
    w.bind(node.outputs[0], name)


@op_converter("Selu")
def selu(w, node):
    # Caffe2's Selu has ONNX's parameters and defaults (alpha 1.6733, scale 1.0507)
    w.activation("Selu", "selu", node, alpha=node.attributes.get_float("alpha", 1.67326319),
                 scale=node.attributes.get_float("gamma", 1.05070102))


@op_converter("Sign")
def sign(w, node):
    w.simple("Sign", "sign", node, inputs=[w.blob(node.inputs[0])])


@op_converter("Tile")
def tile(w, node):
    """Caffe2's Tile repeats along one axis: one op per repeated axis."""
    repeats = [int(r) for r in w.const(node.inputs[1]).reshape(-1)]
    blob = w.blob(node.inputs[0])
    name = w.prefix("tile")
    axes = [a for a, r in enumerate(repeats) if r != 1]
    if not axes:
        w.simple("Copy", "tile", node, inputs=[blob])
        return
    for k, axis in enumerate(axes):
        out = name if k == len(axes) - 1 else f"{name}_{axis}"
        w.emit("Tile", [blob], [out], tiles=repeats[axis], axis=axis)
        blob = out
    w.bind(node.outputs[0], blob)
