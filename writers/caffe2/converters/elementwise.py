"""Element-wise arithmetic and selection (Caffe2 broadcasts NumPy-style by default)."""

import numpy as np

from migrate.writers.caffe2.registry import op_converter


def _scalar(w, value):
    array = w.const_or_none(value)
    return float(array.reshape(-1)[0]) if array is not None and array.size == 1 else None


@op_converter("Mul")
def mul(w, node):
    a, b = node.inputs
    for x, k in ((a, _scalar(w, b)), (b, _scalar(w, a))):
        if k is not None:
            w.simple("Scale", "scale", node, inputs=[w.blob(x)], scale=k)
            return
    w.simple("Mul", "mul", node)


def _binary(caffe2_type, kind):
    def convert(w, node):
        w.simple(caffe2_type, kind, node)

    return convert


for _onnx, _caffe2, _kind in (
    ("Add", "Add", "add"), ("Sub", "Sub", "sub"), ("Div", "Div", "div"),
    ("Greater", "GT", "gt"),
):
    op_converter(_onnx)(_binary(_caffe2, _kind))


def _variadic(caffe2_type, kind):
    def convert(w, node):
        if len(node.inputs) == 1:
            w.simple("Copy", "copy", node)
        else:
            w.simple(caffe2_type, kind, node)

    return convert


for _onnx, _caffe2, _kind in (("Sum", "Sum", "sum"), ("Max", "Max", "max"), ("Min", "Min", "min")):
    op_converter(_onnx)(_variadic(_caffe2, _kind))


@op_converter("Pow")
def power(w, node):
    x, exponent = node.inputs
    k = _scalar(w, exponent)
    if k is None:
        w.simple("Pow", "pow", node)
    else:
        w.simple("Pow", "pow", node, inputs=[w.blob(x)], exponent=k)


@op_converter("Where")
def where(w, node):
    cond, x, y = node.inputs
    blobs = []
    for v, like in ((x, y), (y, x)):
        k = _scalar(w, v)
        if k is None:
            blobs.append(w.blob(v))
        else:
            # Caffe2's Where wants full-size operands: a scalar becomes a filled blob
            # shaped like the other operand.
            w.note("Where with a scalar operand -> ConstantFill + Where")
            filled = w.prefix("fill")
            w.emit("ConstantFill", [w.blob(like)], [filled], value=np.float32(k).item())
            blobs.append(filled)
    w.simple("Where", "where", node, inputs=[w.blob(cond), *blobs])
