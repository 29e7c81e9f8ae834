"""Element-wise activations and softmax."""

from migrate.core.errors import ConversionError
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


# nn.Clamp is an nn.HardTanh with min_val/max_val; SpatialLogSoftMax is THNN's
# LogSoftMax (over dim 1 of a 4-D batch, dim 0 of a 3-D sample)
converter("nn.Clamp")(hard_tanh)
converter("nn.SpatialLogSoftMax")(log_softmax)


@converter("nn.LogSigmoid")
def log_sigmoid(ctx, module, x):
    # log(1 / (1 + exp(-x))) = -softplus(-x), without overflow for large |x|
    negated = ctx.op("Neg", [x], hint="neg")
    return ctx.op("Neg", [ctx.op("Softplus", [negated], hint="softplus")], hint="logsigmoid")


@converter("nn.HardShrink")
def hard_shrink(ctx, module, x):
    # x where |x| > lambda, else 0
    return ctx.op("Shrink", [x], hint="hardshrink", lambd=module.float("lambda", 0.5), bias=0.0)


@converter("nn.SoftShrink")
def soft_shrink(ctx, module, x):
    # x - lambda above lambda, x + lambda below -lambda, else 0
    lam = module.float("lambda", 0.5)
    return ctx.op("Shrink", [x], hint="softshrink", lambd=lam, bias=lam)


@converter("nn.SoftSign")
def soft_sign(ctx, module, x):
    return ctx.op("Softsign", [x], hint="softsign")


@converter("nn.TanhShrink")
def tanh_shrink(ctx, module, x):
    return ctx.op("Sub", [x, ctx.op("Tanh", [x], hint="tanh")], hint="tanhshrink")


@converter("nn.RReLU")
def rrelu(ctx, module, x):
    """Randomized leaky ReLU. In evaluate mode the slope of negative inputs is fixed
    at (lower + upper) / 2; in training mode it is random per element."""
    lower, upper = module.float("lower", 1 / 8), module.float("upper", 1 / 3)
    return ctx.op("LeakyRelu", [x], hint="rrelu", alpha=(lower + upper) / 2)


@converter("nn.GatedLinearUnit")
def gated_linear_unit(ctx, module, x):
    """first half * sigmoid(second half) along `dim` (default: the last)."""
    shape = ctx.shape(x)
    axis = module.int("dim", len(shape)) - 1
    if not 0 <= axis < len(shape) or shape[axis] % 2:
        raise ConversionError(f"dim {axis + 1} of shape {list(shape)} cannot be halved")
    half = shape[axis] // 2
    split = ctx.builder.op("Split", [x, ctx.int64s([half, half], "split")], {"axis": axis},
                           num_outputs=2, hint="halves")
    first, second = split.producer().outputs
    return ctx.op("Mul", [first, ctx.op("Sigmoid", [second], hint="gate")], hint="glu")


@converter("nn.CReLU")
def crelu(ctx, module, x):
    """relu(x) and relu(-x) side by side. nn views each sample as a row, joins the two
    rows and views the result back with dimension 1 of the sample doubled: the same
    as joining along that dimension."""
    shape = ctx.shape(x)
    batched = len(shape) == module.int("nInputDims") + 1
    axis = 1 if batched else 0
    if len(shape) <= axis:
        raise ConversionError(f"CReLU got a {len(shape)}-D input")
    negated = ctx.op("Neg", [x], hint="neg")
    joined = ctx.op("Concat", [x, negated], hint="crelu", axis=axis)
    return ctx.op("Relu", [joined], hint="crelu")
