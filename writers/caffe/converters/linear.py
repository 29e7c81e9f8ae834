"""Gemm and MatMul with a constant weight -> InnerProduct.

Caffe's InnerProduct flattens its input from `axis` on and multiplies by its weight,
stored (N, K), or (K, N) with `transpose: true`: so both ONNX layouts are stored as
they are, without copying the weight.
"""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import scale_or_bias_by_blob, scale_or_bias_by_constant
from migrate.writers.caffe.registry import op_converter


@op_converter("Gemm")
def gemm(net, node):
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    attrs = node.attributes
    if attrs.get_int("transA", 0):
        raise ConversionError("Gemm with transA (a transposed activation) has no Caffe layer")
    if b.const_value is None:
        raise ConversionError("Gemm of two computed tensors has no Caffe layer (the second "
                              "operand must be a weight)")
    weight = net.const(b)
    transposed = not attrs.get_int("transB", 0)  # B is (K, N): InnerProduct transpose
    alpha = attrs.get_float("alpha", 1.0)
    beta = attrs.get_float("beta", 1.0)
    if alpha != 1.0:
        weight = weight * np.float32(alpha)
    out_shape = net.value_shape(node.outputs[0])
    n = out_shape[-1]
    bias = None
    if c is not None and c.const_value is not None:
        values = net.const(c) * np.float32(beta)
        if values.size == n and values.shape[-1:] == (n,) or values.size == 1:
            bias = np.broadcast_to(values.reshape(-1), (n,))
            c = None
    params = {"num_output": n}
    if bias is None:
        params["bias_term"] = False
    if transposed:
        params["transpose"] = True
    blobs = [weight] + ([bias] if bias is not None else [])
    top = net.layer("InnerProduct", [net.blob(a)], out_shape,
                    kind=None if c is None else "fc", blobs=blobs,
                    inner_product_param=params)
    if c is not None:  # a bias that is not one value per output, or a computed one
        if c.const_value is not None:
            top = scale_or_bias_by_constant(net, top, net.const(c) * np.float32(beta), "Bias",
                                            "bias")
        else:
            if beta != 1.0:
                raise ConversionError("Gemm with beta != 1 on a computed C")
            other = net.blob(c)
            if net.shape(other) == out_shape:
                top = net.layer("Eltwise", [top, other], out_shape, kind="sum",
                                eltwise_param={"operation": "SUM"})
            else:
                top = scale_or_bias_by_blob(net, top, other, "Bias", "bias")
    net.bind(node.outputs[0], top)


@op_converter("MatMul")
def matmul(net, node):
    a, b = node.inputs
    if b.const_value is None:
        raise ConversionError("MatMul of two computed tensors has no Caffe layer (the second "
                              "operand must be a weight)")
    weight = net.const(b)
    a_shape = net.value_shape(a)
    if weight.ndim != 2 or len(a_shape) < 2:
        raise ConversionError(f"MatMul of {list(a_shape)} by a {list(weight.shape)} weight: "
                              "only (..., K) x (K, N) has a Caffe layer (InnerProduct)")
    net.output("InnerProduct", [net.blob(a)], blobs=[weight], inner_product_param={
        "num_output": int(weight.shape[1]), "bias_term": False, "transpose": True,
        "axis": len(a_shape) - 1})
