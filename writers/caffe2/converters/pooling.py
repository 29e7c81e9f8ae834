"""Pooling."""

from migrate.errors import ConversionError
from writers.caffe2.converters.conv import window_args
from writers.caffe2.registry import op_converter

# Caffe2's LegacyPadding::CAFFE_LEGACY_POOLING: output size rounded up, and the
# last window must start inside the image (or its head padding): exactly the
# ceil_mode rule of Torch7, Caffe and PyTorch.
CAFFE_LEGACY_POOLING = 3


def _pool(w, node, op_type, kind, **extra):
    kernel = node.attributes.get_ints("kernel_shape")
    if len(kernel) != 2:
        raise ConversionError("only 2-D pooling is supported by this writer")
    if node.attributes.get_ints("dilations", [1, 1]) != [1, 1]:
        raise ConversionError("dilated pooling has no Caffe2 equivalent")
    args = window_args(node, kernel)
    if node.attributes.get_int("ceil_mode", 0):
        if (args["pad_t"], args["pad_l"]) != (args["pad_b"], args["pad_r"]):
            raise ConversionError("ceil-mode pooling with asymmetric padding")
        args["legacy_pad"] = CAFFE_LEGACY_POOLING
    w.simple(op_type, kind, node, **args, **extra)


@op_converter("MaxPool")
def max_pool(w, node):
    _pool(w, node, "MaxPool", "pool")


@op_converter("AveragePool")
def average_pool(w, node):
    include = node.attributes.get_int("count_include_pad", 0)
    _pool(w, node, "AveragePool", "avgpool", count_include_pad=include)
