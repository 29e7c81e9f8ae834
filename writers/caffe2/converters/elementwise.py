"""Element-wise arithmetic and selection."""

import numpy as np

from writers.caffe2.registry import op_converter


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


@op_converter("Add")
def add(w, node):
    w.simple("Add", "add", node)


@op_converter("Greater")
def greater(w, node):
    w.simple("GT", "gt", node)


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
            filled = w.prefix("fill")
            w.emit("ConstantFill", [w.blob(like)], [filled], value=np.float32(k).item())
            blobs.append(filled)
    w.simple("Where", "where", node, inputs=[w.blob(cond), *blobs])
