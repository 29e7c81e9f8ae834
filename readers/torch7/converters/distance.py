"""Similarities and distances: between two inputs (PairwiseDistance, CosineDistance,
DotProduct) and between the input and learned templates (Cosine, Euclidean,
WeightedEuclidean). Each follows its nn module's updateOutput step by step."""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def pair(ctx, x, what):
    """The two tensors of a {x1, x2} input, as rows (nn views a 1-D pair as 1 x n)."""
    if isinstance(x, ir.Value) or len(x) < 2 or not all(isinstance(v, ir.Value) for v in x[:2]):
        raise ConversionError(f"{what} takes a table of two tensors")
    a, b = x[0], x[1]
    if ctx.shape(a) != ctx.shape(b):
        raise ConversionError(f"{what}'s two inputs differ in shape: {ctx.shape(a)} and "
                              f"{ctx.shape(b)}")
    if len(ctx.shape(a)) not in (1, 2):
        raise ConversionError(f"{what} takes vectors or matrices, got {len(ctx.shape(a))}-D")
    return a, b


def row_sum(ctx, x, keep=0, hint="sum"):
    """Sum over the last dimension (nn's sum(2) of a matrix, or of a vector)."""
    axis = len(ctx.shape(x)) - 1
    return ctx.op("ReduceSum", [x, ctx.int64s([axis], "axes")], hint=hint, keepdims=keep)


def _as_batch_of_one(ctx, y, x):
    """nn returns a 1-element vector (not a scalar) for 1-D inputs."""
    if len(ctx.shape(x)) == 1:
        return ctx.op("Reshape", [y, ctx.int64s([1])], hint="reshape")
    return y


@converter("nn.PairwiseDistance")
def pairwise_distance(ctx, module, x):
    """||x1 - x2||_p per row: (sum |x1 - x2|^p)^(1/p)."""
    a, b = pair(ctx, x, "PairwiseDistance")
    p = module.float("norm", 2.0)
    if p <= 0:
        raise ConversionError(f"norm {p} is not a p-norm")
    diff = ctx.op("Sub", [a, b], hint="diff")
    if p == 2.0:
        total = row_sum(ctx, ctx.op("Mul", [diff, diff], hint="square"))
        dist = ctx.op("Sqrt", [total], hint="distance")
    else:
        magnitude = ctx.op("Abs", [diff], hint="abs")
        if p == 1.0:
            dist = row_sum(ctx, magnitude, hint="distance")
        else:
            powered = ctx.op("Pow", [magnitude, ctx.scalar(p, "p")], hint="pow")
            dist = ctx.op("Pow", [row_sum(ctx, powered), ctx.scalar(1.0 / p, "inv_p")],
                          hint="distance")
    return _as_batch_of_one(ctx, dist, a)


@converter("nn.DotProduct")
def dot_product(ctx, module, x):
    a, b = pair(ctx, x, "DotProduct")
    dot = row_sum(ctx, ctx.op("Mul", [a, b], hint="product"), hint="dot")
    return _as_batch_of_one(ctx, dot, a)


# nn's CosineDistance and Cosine add this to the squared norms / norms they divide by
_EPSILON = 1e-12


@converter("nn.CosineDistance")
def cosine_distance(ctx, module, x):
    """<x1, x2> / sqrt((|x1|^2 + eps) (|x2|^2 + eps)) per row."""
    a, b = pair(ctx, x, "CosineDistance")
    eps = ctx.scalar(_EPSILON, "eps")
    dot = row_sum(ctx, ctx.op("Mul", [a, b], hint="product"), hint="dot")
    sq_a = ctx.op("Add", [row_sum(ctx, ctx.op("Mul", [a, a], hint="square")), eps], hint="sq")
    sq_b = ctx.op("Add", [row_sum(ctx, ctx.op("Mul", [b, b], hint="square")), eps], hint="sq")
    norms = ctx.op("Sqrt", [ctx.op("Mul", [sq_a, sq_b], hint="norms")], hint="norms")
    return _as_batch_of_one(ctx, ctx.op("Div", [dot, norms], hint="cosine"), a)


def _input_rows(ctx, x, n_in, what):
    shape = ctx.shape(x)
    if len(shape) not in (1, 2) or shape[-1] != n_in:
        raise ConversionError(f"{what} takes vectors or rows of {n_in}, got shape {list(shape)}")
    return len(shape) == 1


@converter("nn.Cosine")
def cosine(ctx, module, x):
    """y_j = <w_j, x> / ((|w_j| + eps) (|x| + eps)), weight outputSize x inputSize."""
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 2:
        raise ConversionError("Cosine has no 2-D weight")
    single = _input_rows(ctx, x, weight.shape[1], "Cosine")
    rows = ctx.op("Unsqueeze", [x, ctx.int64s([0], "axes")], hint="rows") if single else x
    products = ctx.op("Gemm", [rows, ctx.const(weight, "weight")], hint="products", transB=1)
    weight_norms = (np.sqrt((weight.astype(np.float64) ** 2).sum(axis=1)) + _EPSILON)
    y = ctx.op("Div", [products, ctx.const(weight_norms.astype(np.float32), "weight_norms")],
               hint="cosine")
    squares = row_sum(ctx, ctx.op("Mul", [rows, rows], hint="square"), keep=1)
    input_norms = ctx.op("Add", [ctx.op("Sqrt", [squares], hint="norm"),
                                 ctx.scalar(_EPSILON, "eps")], hint="norm")
    y = ctx.op("Div", [y, input_norms], hint="cosine")
    return ctx.op("Squeeze", [y, ctx.int64s([0], "axes")], hint="cosine") if single else y


@converter("nn.Euclidean", "nn.WeightedEuclidean")
def euclidean(ctx, module, x):
    """y_j = || x - w_j || (times diagCov_j element-wise for WeightedEuclidean), with the
    templates as the columns of weight (inputSize x outputSize)."""
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 2:
        raise ConversionError(f"{module.cls} has no 2-D weight")
    n_in = weight.shape[0]
    single = _input_rows(ctx, x, n_in, module.cls)
    # x: (batch, in, 1) against weight (in, out): the same difference tensor nn builds
    column = ctx.op("Unsqueeze", [x, ctx.int64s([len(ctx.shape(x))], "axes")], hint="column")
    diff = ctx.op("Sub", [column, ctx.const(weight, "templates")], hint="diff")
    if module.cls.endswith("WeightedEuclidean"):
        cov = module.tensor("diagCov")
        if cov is None or cov.shape != weight.shape:
            raise ConversionError("WeightedEuclidean's diagCov does not match its weight")
        diff = ctx.op("Mul", [diff, ctx.const(cov, "diag_cov")], hint="weighted")
    axis = 0 if single else 1
    total = ctx.op("ReduceSum", [ctx.op("Mul", [diff, diff], hint="square"),
                                 ctx.int64s([axis], "axes")], hint="sum", keepdims=0)
    return ctx.op("Sqrt", [total], hint="distance")
