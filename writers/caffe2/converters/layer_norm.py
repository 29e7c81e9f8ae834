"""Layer normalization and the error function (what PyTorch's LayerNorm and exact GELU
become in the common graph)."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("LayerNormalization")
def layer_normalization(w, node):
    x, scale, bias = (list(node.inputs) + [None])[:3]
    rank = len(w.shape(x))
    axis = node.attributes.get_int("axis", -1) % rank
    if len(node.outputs) > 1 and any(out.uses() for out in node.outputs[1:]):
        raise ConversionError("LayerNormalization's mean and inverse deviation outputs are "
                              "not computed by Caffe2's LayerNorm")
    name = w.prefix("layernorm")
    normalized = list(w.shape(x)[axis:])
    # Caffe2 normalizes over the dims from `axis` on, as ONNX, with sqrt(var + eps)
    gamma = w.param(np.asarray(w.const(scale), np.float32).reshape(normalized), f"{name}_g")
    beta_values = np.zeros(normalized, np.float32) if bias is None else \
        np.asarray(w.const(bias), np.float32).reshape(normalized)
    beta = w.param(beta_values, f"{name}_b")
    w.emit("LayerNorm", [w.blob(x), gamma, beta], [name, f"{name}_mean", f"{name}_std"],
           axis=axis, epsilon=node.attributes.get_float("epsilon", 1e-5), elementwise_affine=1)
    w.bind(node.outputs[0], name)


@op_converter("Erf")
def erf(w, node):
    w.simple("Erf", "erf", node, inputs=[w.blob(node.inputs[0])])
