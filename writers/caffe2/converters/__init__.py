"""One file per family of ONNX ops; importing this package registers them all."""

from writers.caffe2.converters import (  # noqa: F401
    activation,
    conv,
    elementwise,
    linear,
    normalization,
    pooling,
    shape,
)
