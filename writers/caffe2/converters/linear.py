"""Fully connected layers."""

import numpy as np

from migrate.writers.caffe2.registry import op_converter


def _fully_connected(w, node) -> bool:
    """FC's form: Y = X W^T + b with constant W and a bias of one value per output."""
    x, weight, bias = (list(node.inputs) + [None])[:3]
    attrs = node.attributes
    if attrs.get_int("transA", 0) or attrs.get_float("alpha", 1.0) != 1.0 \
            or attrs.get_float("beta", 1.0) != 1.0 or w.const_or_none(weight) is None:
        return False
    n_out = w.shape(weight)[0 if attrs.get_int("transB", 0) else 1]
    return bias is None or (w.const_or_none(bias) is not None
                            and w.const(bias).reshape(-1).size == n_out
                            and len(w.shape(bias)) == 1)


def _general_gemm(w, node):
    """alpha * op(A) op(B) + beta * C with MatMul, Scale and a broadcasting Add."""
    a, b, c = (list(node.inputs) + [None])[:3]
    attrs = node.attributes
    name = w.prefix("gemm")
    w.emit("MatMul", [w.blob(a), w.blob(b)], [f"{name}_ab"],
           trans_a=attrs.get_int("transA", 0) or None, trans_b=attrs.get_int("transB", 0) or None)
    blob = f"{name}_ab"
    alpha, beta = attrs.get_float("alpha", 1.0), attrs.get_float("beta", 1.0)
    if alpha != 1.0:
        w.emit("Scale", [blob], [f"{name}_scaled"], scale=alpha)
        blob = f"{name}_scaled"
    if c is not None and beta != 0.0:
        c_blob = w.blob(c)
        if beta != 1.0:
            w.emit("Scale", [c_blob], [f"{name}_c"], scale=beta)
            c_blob = f"{name}_c"
        w.emit("Add", [blob, c_blob], [name])
    else:
        w.emit("Copy", [blob], [name])
    w.bind(node.outputs[0], name)


@op_converter("Gemm")
def gemm(w, node):
    if not _fully_connected(w, node):
        _general_gemm(w, node)
        return
    x, weight, bias = (list(node.inputs) + [None])[:3]
    attrs = node.attributes
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
