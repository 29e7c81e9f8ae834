"""Batch normalization."""

from writers.caffe2.registry import op_converter


@op_converter("BatchNormalization")
def batch_normalization(w, node):
    x, scale, bias, mean, var = node.inputs
    name = w.prefix("spatbn")
    params = [
        w.param(w.const(scale), f"{name}_s"),
        w.param(w.const(bias), f"{name}_b"),
        w.param(w.const(mean), f"{name}_rm"),
        w.param(w.const(var), f"{name}_riv"),
    ]
    eps = node.attributes.get_float("epsilon", 1e-5)
    w.emit("SpatialBN", [w.blob(x), *params], [name], is_test=1, epsilon=eps, order="NCHW")
    w.bind(node.outputs[0], name)
