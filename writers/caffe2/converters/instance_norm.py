"""InstanceNormalization -> Caffe2 InstanceNorm (NCHW; per sample and channel, biased
variance over the spatial positions, as ONNX defines it)."""

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("InstanceNormalization")
def instance_normalization(w, node):
    x, scale, bias = node.inputs
    if len(w.shape(x)) != 4:
        raise ConversionError("Caffe2 InstanceNorm takes N x C x H x W input")
    w.simple("InstanceNorm", "instancenorm", node,
             inputs=[w.blob(x), w.param_value(scale, w.prefix("instancenorm_scale")),
                     w.param_value(bias, w.prefix("instancenorm_bias"))],
             epsilon=node.attributes.get_float("epsilon", 1e-5), order="NCHW")
