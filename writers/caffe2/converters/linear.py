"""Fully connected layers."""

import numpy as np

from migrate.errors import ConversionError
from writers.caffe2.registry import op_converter


@op_converter("Gemm")
def gemm(w, node):
    x, weight, bias = (list(node.inputs) + [None])[:3]
    attrs = node.attributes
    if attrs.get_int("transA", 0) or attrs.get_float("alpha", 1.0) != 1.0 \
            or attrs.get_float("beta", 1.0) != 1.0:
        raise ConversionError("only Gemm in the form of a fully connected layer is supported")
    matrix = w.const(weight)
    if not attrs.get_int("transB", 0):
        matrix = matrix.T  # FC wants (out, in)
    name = w.prefix("fc")
    b = w.const_or_none(bias)
    if b is None:  # FC always takes a bias
        b = np.zeros(matrix.shape[0], np.float32)
    inputs = [w.blob(x), w.param(matrix, f"{name}_w"), w.param(b.reshape(-1), f"{name}_b")]
    w.emit("FC", inputs, [name])
    w.bind(node.outputs[0], name)
