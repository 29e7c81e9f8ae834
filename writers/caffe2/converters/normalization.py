"""Batch normalization."""

from migrate.writers.caffe2.registry import op_converter


@op_converter("BatchNormalization")
def batch_normalization(w, node):
    x, scale, bias, mean, var = node.inputs
    name = w.prefix("spatbn")
    params = [
        w.param_value(scale, f"{name}_s"),
        w.param_value(bias, f"{name}_b"),
        w.param_value(mean, f"{name}_rm"),
        w.param_value(var, f"{name}_riv"),
    ]
    eps = node.attributes.get_float("epsilon", 1e-5)
    w.emit("SpatialBN", [w.blob(x), *params], [name], is_test=1, epsilon=eps, order="NCHW")
    w.bind(node.outputs[0], name)


@op_converter("LRN")
def lrn(w, node):
    attrs = node.attributes
    name = w.prefix("lrn")
    # Caffe2's LRN uses alpha / size like ONNX's
    w.emit("LRN", [w.blob(node.inputs[0])], [name, f"{name}_scale"], size=attrs.get_int("size"),
           alpha=attrs.get_float("alpha", 1e-4), beta=attrs.get_float("beta", 0.75),
           bias=attrs.get_float("bias", 1.0), order="NCHW")
    w.bind(node.outputs[0], name)
