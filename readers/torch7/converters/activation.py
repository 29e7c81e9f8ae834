"""Element-wise activations and softmax."""

from migrate.readers.torch7.registry import converter


@converter("nn.ReLU", "nn.Threshold")
def threshold(ctx, module, x):
    # nn.ReLU is nn.Threshold(0, 0): y = x > th ? x : val
    th, val = module.float("threshold", 0.0), module.float("val", 0.0)
    if th == 0.0 and val == 0.0:
        return ctx.op("Relu", [x], hint="relu")
    above = ctx.op("Greater", [x, ctx.scalar(th, "threshold")], hint="above")
    return ctx.op("Where", [above, x, ctx.scalar(val, "value")], hint="threshold")


def _elementwise(onnx_op):
    def convert(ctx, module, x):
        return ctx.op(onnx_op, [x], hint=onnx_op.lower())

    return convert


# modules that are one element-wise ONNX op with no parameters
for _cls, _op in (("nn.Tanh", "Tanh"), ("nn.Sigmoid", "Sigmoid"), ("nn.Abs", "Abs"),
                  ("nn.Exp", "Exp"), ("nn.Log", "Log"), ("nn.Sqrt", "Sqrt")):
    converter(_cls)(_elementwise(_op))


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


@converter("nn.ReLU6")
def relu6(ctx, module, x):
    return ctx.op("Clip", [x, ctx.scalar(0.0, "min"), ctx.scalar(6.0, "max")], hint="relu6")


@converter("nn.LeakyReLU")
def leaky_relu(ctx, module, x):
    return ctx.op("LeakyRelu", [x], hint="leakyrelu", alpha=module.float("negval", 0.01))


@converter("nn.ELU")
def elu(ctx, module, x):
    return ctx.op("Elu", [x], hint="elu", alpha=module.float("alpha", 1.0))


@converter("nn.PReLU")
def prelu(ctx, module, x):
    weight = module.tensor("weight")
    n = module.int("nOutputPlane", 0)
    rank = len(ctx.shape(x))
    if n == 0:  # one slope shared by every channel
        slope = weight.reshape(1)
    else:
        # the channel dimension: 2nd of a batch, 1st of a single sample
        channel_dim = 0 if rank in (1, 3) else 1
        slope = weight.reshape([n] + [1] * (rank - channel_dim - 1))
    return ctx.op("PRelu", [x, ctx.const(slope, "slope")], hint="prelu")


@converter("nn.SoftPlus")
def softplus(ctx, module, x):
    # y = log(1 + exp(beta x)) / beta. nn switches to y = x above beta*x > 20,
    # where the two differ by less than exp(-20): below float32 resolution.
    beta = module.float("beta", 1.0)
    if beta == 1.0:
        return ctx.op("Softplus", [x], hint="softplus")
    scaled = ctx.op("Mul", [x, ctx.scalar(beta, "beta")], hint="scale")
    y = ctx.op("Softplus", [scaled], hint="softplus")
    return ctx.op("Mul", [y, ctx.scalar(1.0 / beta, "inv_beta")], hint="scale")


@converter("nn.Square")
def square(ctx, module, x):
    return ctx.op("Mul", [x, x], hint="square")


@converter("nn.Power")
def power(ctx, module, x):
    p = module.float("pow", 1.0)
    if p == 2.0:
        return ctx.op("Mul", [x, x], hint="square")
    return ctx.op("Pow", [x, ctx.scalar(p, "exponent")], hint="pow")


@converter("nn.SoftMin")
def softmin(ctx, module, x):
    negated = ctx.op("Neg", [x], hint="neg")
    return ctx.op("Softmax", [negated], hint="softmin", axis=_feature_axis(ctx, negated))


@converter("nn.SpatialSoftMax")
def spatial_softmax(ctx, module, x):
    # softmax over the feature maps at every pixel
    return ctx.op("Softmax", [x], hint="softmax", axis=_feature_axis(ctx, x))
