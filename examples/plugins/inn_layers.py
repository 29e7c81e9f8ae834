"""Plugin for the `inn` package's cross-response normalization (used by Torch7 ports
of Caffe models such as AlexNet): the same math as nn.SpatialCrossMapLRN."""

from migrate.plugins import torch7_converter


@torch7_converter("inn.SpatialCrossResponseNormalization")
def cross_response_normalization(ctx, module, x):
    return ctx.op(
        "LRN", [x], hint="lrn",
        size=module.int("size"), alpha=module.float("alpha"),
        beta=module.float("beta"), bias=module.float("k", 1.0),
    )
