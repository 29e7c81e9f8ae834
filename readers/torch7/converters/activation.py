"""Element-wise activations and softmax."""

from readers.torch7.registry import converter


@converter("nn.ReLU", "nn.Threshold")
def threshold(ctx, module, x):
    # nn.ReLU is nn.Threshold(0, 0): y = x > th ? x : val
    th, val = module.float("threshold", 0.0), module.float("val", 0.0)
    if th == 0.0 and val == 0.0:
        return ctx.op("Relu", [x], hint="relu")
    above = ctx.op("Greater", [x, ctx.scalar(th, "threshold")], hint="above")
    return ctx.op("Where", [above, x, ctx.scalar(val, "value")], hint="threshold")


@converter("nn.Tanh")
def tanh(ctx, module, x):
    return ctx.op("Tanh", [x], hint="tanh")


@converter("nn.Sigmoid")
def sigmoid(ctx, module, x):
    return ctx.op("Sigmoid", [x], hint="sigmoid")


def _feature_axis(ctx, x):
    # Torch7 normalizes over the feature dimension: dim 1 of a batch (2D/4D),
    # dim 0 of a single sample (1D/3D).
    return 1 if len(ctx.shape(x)) in (2, 4) else 0


@converter("nn.SoftMax")
def softmax(ctx, module, x):
    return ctx.op("Softmax", [x], hint="softmax", axis=_feature_axis(ctx, x))


@converter("nn.LogSoftMax")
def log_softmax(ctx, module, x):
    return ctx.op("LogSoftmax", [x], hint="logsoftmax", axis=_feature_axis(ctx, x))


@converter("nn.HardTanh")
def hard_tanh(ctx, module, x):
    lo, hi = module.float("min_val", -1.0), module.float("max_val", 1.0)
    return ctx.op("Clip", [x, ctx.scalar(lo, "min"), ctx.scalar(hi, "max")], hint="hardtanh")
