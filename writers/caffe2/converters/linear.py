"""Fully connected layers."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("Gemm")
def gemm(w, node):
    x, weight, bias = (list(node.inputs) + [None])[:3]
    attrs = node.attributes
    if attrs.get_int("transA", 0) or attrs.get_float("alpha", 1.0) != 1.0 \
            or attrs.get_float("beta", 1.0) != 1.0:
        raise ConversionError("only Gemm in the form of a fully connected layer is supported")
    name = w.prefix("fc")
    if attrs.get_int("transB", 0):
        weight_blob = w.param_value(weight, f"{name}_w")
        n_out = w.shape(weight)[0]
    else:
        matrix = np.ascontiguousarray(w.const(weight).T)  # FC wants (out, in)
        weight_blob, n_out = w.param(matrix, f"{name}_w"), matrix.shape[0]
    if bias is None:  # FC always takes a bias
        bias_blob = w.param(np.zeros(n_out, np.float32), f"{name}_b")
    else:
        bias_blob = w.param_value(bias, f"{name}_b")
    inputs = [w.blob(x), weight_blob, bias_blob]
    w.emit("FC", inputs, [name])
    w.bind(node.outputs[0], name)
