"""Fully connected layers."""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


@converter("nn.Linear")
def linear(ctx, module, x):
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 2:
        raise ConversionError("Linear has no 2-D weight")
    inputs = [ctx.const(weight, "weight")]
    bias = module.tensor("bias")  # nn.Linear(in, out, false) has none
    if bias is not None:
        inputs.append(ctx.const(bias.reshape(weight.shape[0]), "bias"))
    return ctx.batched(x, 2, lambda x2: ctx.op("Gemm", [x2, *inputs], hint="fc", transB=1))


def _with_weight(module, weight):
    """The same module seen with another weight (the one its forward would use)."""
    view = module.child(module.obj, module.path)
    view.fields["weight"] = weight
    return view


def _row_norms(v):
    return np.sqrt((v.astype(np.float64) ** 2).sum(axis=1, keepdims=True))


@converter("nn.LinearWeightNorm")
def linear_weight_norm(ctx, module, x):
    """A Linear whose weight is g * v / ||v|| per output row.

    Its evaluate-mode forward uses the stored `weight`; clearState() empties it and
    nn rebuilds it (updateWeightMatrix) when the module is put back in evaluate
    mode, so an empty weight is rebuilt the same way here."""
    if module.tensor("weight") is not None:
        return linear(ctx, module, x)
    v, g = module.tensor("v"), module.tensor("g")
    if v is None or g is None or v.ndim != 2 or g.size != v.shape[0]:
        raise ConversionError("LinearWeightNorm has neither a weight nor matching v and g")
    eps = module.float("eps", 1e-16)
    scale = g.reshape(-1, 1).astype(np.float64) / np.maximum(_row_norms(v), eps)
    return linear(ctx, _with_weight(module, (v * scale).astype(np.float32)), x)


@converter("nn.WeightNorm")
def weight_norm(ctx, module, x):
    """Decorator: the wrapped module with weight = g * v / sqrt(||v||^2 + 1e-4), v and g
    taken over the `outputDim` dimension of the wrapped module's weight.

    WeightNorm:write drops the wrapped weight from the file and WeightNorm:read
    rebuilds it (updateWeight), which is what is done here."""
    children = module.children()
    if len(children) != 1:
        raise ConversionError("WeightNorm wraps exactly one module")
    inner = children[0]
    if inner.tensor("weight") is not None:
        return ctx.convert(inner, x)
    v, g = module.tensor("v"), module.tensor("g")
    if v is None or g is None or v.ndim != 2 or g.size != v.shape[0]:
        raise ConversionError("WeightNorm has neither a wrapped weight nor matching v and g")
    out_dim = module.int("outputDim", 1)
    size = module.fields.get("weightSize")
    if not isinstance(size, np.ndarray) or int(np.prod(size)) != v.size:
        raise ConversionError("WeightNorm's weightSize does not match v")
    size = [int(s) for s in size]
    if not 1 <= out_dim <= len(size):
        raise ConversionError(f"outputDim {out_dim} is outside the {len(size)}-D weight")
    norms = np.sqrt((v.astype(np.float64) ** 2).sum(axis=1, keepdims=True) + 1e-4)
    weight = v * (g.reshape(-1, 1).astype(np.float64) / norms)
    # v holds the weight with its output dimension moved first: move it back
    moved = [size[out_dim - 1]] + size[:out_dim - 1] + size[out_dim:]
    weight = np.moveaxis(weight.reshape(moved), 0, out_dim - 1)
    inner.fields["weight"] = np.ascontiguousarray(weight, dtype=np.float32)
    return ctx.convert(inner, x)


@converter("nn.PartialLinear")
def partial_linear(ctx, module, x):
    """A Linear restricted to the output columns listed in `partition` (1-based).

    nn keeps the full weight in its inner network's LookupTable and picks the
    partition's rows on every forward; the picked rows are taken once here."""
    network = module.fields.get("network")
    lookup = None
    if network is not None:
        seq = module.child(network, f"{module.path}.network")
        parallel = seq.children()[0] if seq.children() else None
        branches = parallel.children() if parallel is not None else []
        lookup = branches[1] if len(branches) > 1 else None
    weight = lookup.tensor("weight") if lookup is not None else None
    partition = module.fields.get("partition")
    if weight is None or not isinstance(partition, np.ndarray):
        raise ConversionError("PartialLinear has no inner LookupTable weight or no partition")
    rows = partition.reshape(-1).astype(np.int64) - 1
    if rows.size == 0 or rows.min() < 0 or rows.max() >= weight.shape[0]:
        raise ConversionError(f"partition indices outside 1..{weight.shape[0]}")
    inputs = [ctx.const(np.ascontiguousarray(weight[rows]), "weight")]
    bias = module.tensor("bias")
    if bias is not None:
        inputs.append(ctx.const(np.ascontiguousarray(bias.reshape(-1)[rows]), "bias"))
    return ctx.batched(x, 2, lambda x2: ctx.op("Gemm", [x2, *inputs], hint="fc", transB=1))


@converter("nn.Maxout")
def maxout(ctx, module, x):
    # an nn.Sequential subclass: Linear -> View -> (preprocess) -> Max
    for child in module.children():
        x = ctx.convert(child, x)
    return x


def _sparse_rows(ctx, weight, pairs):
    """sum_k W[:, index_k - 1] * value_k over the last-but-one axis of (..., k, 2) pairs
    of (1-based index, value) given as floats; -> (..., outputSize)."""
    n_in = weight.shape[1]
    rank = len(ctx.shape(pairs))
    last = ctx.int64s([rank - 1], "axes")

    def column(k):
        part = ctx.op("Slice", [pairs, ctx.int64s([k], "starts"), ctx.int64s([k + 1], "ends"),
                                last], hint="column")
        return ctx.op("Squeeze", [part, last], hint="column")

    # nn casts the index to a C long (truncation). An index outside 1..inputSize makes
    # nn stop with an error; here it is clamped, so that both runtimes agree on it.
    index = ctx.op("Clip", [column(0), ctx.scalar(1.0, "first"), ctx.scalar(float(n_in), "last")],
                   hint="index")
    index = ctx.op("Cast", [index], hint="index", to=ir.DataType.INT64)
    index = ctx.op("Sub", [index, ctx.const(np.asarray(1, np.int64), "one")], hint="index")
    # weight columns of the indices: (outputSize, ..., k)
    picked = ctx.op("Gather", [ctx.const(weight, "weight"), index], hint="columns", axis=1)
    scaled = ctx.op("Mul", [picked, column(1)], hint="scaled")
    summed = ctx.op("ReduceSum", [scaled, ctx.int64s([rank - 1], "axes")], hint="sum",
                    keepdims=0)
    # (outputSize, ...) -> (..., outputSize)
    order = list(range(1, rank - 1)) + [0]
    return ctx.op("Transpose", [summed], hint="transpose", perm=order) if rank > 2 else summed


@converter("nn.SparseLinear")
def sparse_linear(ctx, module, x):
    """y = W * x + b for sparse x given as (index, value) rows: a k x 2 tensor (one
    sample), a table of them (a batch), or a batch x k x 2 tensor (legacy format)."""
    weight, bias = module.tensor("weight"), module.tensor("bias")
    if weight is None or weight.ndim != 2 or bias is None:
        raise ConversionError("SparseLinear has no 2-D weight and bias")
    bias_value = ctx.const(bias.reshape(weight.shape[0]), "bias")
    if isinstance(x, ir.Value):
        rank = len(ctx.shape(x))
        if rank not in (2, 3) or ctx.shape(x)[-1] != 2:
            raise ConversionError(f"SparseLinear takes k x 2 (index, value) pairs, got "
                                  f"{list(ctx.shape(x))}")
        return ctx.op("Add", [_sparse_rows(ctx, weight, x), bias_value], hint="sparse_linear")
    rows = []
    for item in x:
        if not isinstance(item, ir.Value) or len(ctx.shape(item)) != 2 \
                or ctx.shape(item)[-1] != 2:
            raise ConversionError("SparseLinear takes a table of k x 2 (index, value) tensors")
        row = _sparse_rows(ctx, weight, item)
        rows.append(ctx.op("Unsqueeze", [row, ctx.int64s([0], "axes")], hint="row"))
    if not rows:
        raise ConversionError("SparseLinear got an empty table")
    batch = rows[0] if len(rows) == 1 else ctx.op("Concat", rows, hint="batch", axis=0)
    return ctx.op("Add", [batch, bias_value], hint="sparse_linear")


@converter("nn.IndexLinear")
def index_linear(ctx, module, x):
    """A sparse Linear over (key, value) pairs: y = bias + sum W[key + offset] * value.

    Inputs as nn takes them: {keys, values, sizes} (flat: the batch's pairs one after
    the other, sizes[b] of them for sample b), {{keys_1, ...}, {values_1, ...}} (a table
    per sample) or {keys, values} (one sample). Keys and sizes are LongTensors in nn:
    integer inputs here."""
    weight, bias = module.tensor("weight"), module.tensor("bias")
    if weight is None or bias is None or weight.ndim != 2:
        raise ConversionError("IndexLinear has no 2-D weight and bias")
    if module.int("normalize", 0) or weight.shape[1] != bias.size:
        raise ConversionError("IndexLinear with normalize=true (its per-key scales change "
                              "while it runs) is not supported")
    bias_value = ctx.const(bias.reshape(-1), "bias")
    if isinstance(x, ir.Value) or len(x) not in (2, 3):
        raise ConversionError("IndexLinear takes {keys, values[, sizes]}")
    if len(x) == 3:
        keys, values, sizes = (_index_linear_vector(ctx, v) for v in x)
        return ctx.op("Add", [_index_linear_flat(ctx, module, weight, keys, values, sizes),
                              bias_value], hint="index_linear")
    keys, values = x
    if isinstance(keys, ir.Value) and isinstance(values, ir.Value):  # one sample
        total = _index_linear_sample(ctx, module, weight, keys, values)
        return ctx.op("Add", [total, bias_value], hint="index_linear")
    if isinstance(keys, ir.Value) or isinstance(values, ir.Value) or len(keys) != len(values) \
            or not keys:
        raise ConversionError("IndexLinear takes a table of keys and a table of values, one "
                              "tensor per sample")
    rows = [ctx.op("Unsqueeze", [_index_linear_sample(ctx, module, weight, k, v),
                                 ctx.int64s([0], "axes")], hint="row")
            for k, v in zip(keys, values, strict=True)]
    batch = rows[0] if len(rows) == 1 else ctx.op("Concat", rows, hint="batch", axis=0)
    return ctx.op("Add", [batch, bias_value], hint="index_linear")


def _index_linear_vector(ctx, v):
    if not isinstance(v, ir.Value) or len(ctx.shape(v)) != 1:
        raise ConversionError("IndexLinear takes 1-D keys, values and sizes")
    return v


def _index_linear_rows(ctx, module, weight, keys, values):
    """(k, outputSize): W[key + offset] * value for each pair."""
    from migrate.readers.torch7.converters.indexing import indices_of

    if ctx.shape(keys) != ctx.shape(values) or len(ctx.shape(keys)) != 1:
        raise ConversionError("IndexLinear's keys and values must be 1-D, of one length")
    offset = module.int("offset", -1)  # keysOffset - 1: nn's keys are 1-based by default
    keys = indices_of(ctx, keys, -offset, weight.shape[0] - 1 - offset)
    rows = ctx.op("Add", [keys, ctx.const(np.asarray(offset, np.int64), "offset")], hint="key")
    picked = ctx.op("Gather", [ctx.const(weight, "weight"), rows], hint="rows", axis=0)
    column = ctx.op("Unsqueeze", [values, ctx.int64s([1], "axes")], hint="values")
    return ctx.op("Mul", [picked, column], hint="scaled")


def _index_linear_sample(ctx, module, weight, keys, values):
    contributions = _index_linear_rows(ctx, module, weight, keys, values)
    return ctx.op("ReduceSum", [contributions, ctx.int64s([0], "axes")], hint="sum",
                  keepdims=0)


def _index_linear_flat(ctx, module, weight, keys, values, sizes):
    from migrate.readers.torch7.converters.indexing import indices_of

    contributions = _index_linear_rows(ctx, module, weight, keys, values)  # (k, outputSize)
    (k,), (batch,) = ctx.shape(keys), ctx.shape(sizes)
    # sample b owns positions [ends[b] - sizes[b], ends[b]), ends = cumulative sizes
    sizes = indices_of(ctx, sizes, 0, max(k // max(batch, 1), 0))
    sizes = ctx.op("Cast", [sizes], hint="sizes", to=ir.DataType.FLOAT)
    upper = np.triu(np.ones((batch, batch), np.float32))  # cumulative sum as a product
    ends = ctx.op("MatMul", [ctx.op("Unsqueeze", [sizes, ctx.int64s([0], "axes")], hint="sizes"),
                             ctx.const(upper, "cumsum")], hint="ends")
    ends = ctx.op("Transpose", [ends], hint="ends", perm=[1, 0])  # (batch, 1)
    starts = ctx.op("Sub", [ends, ctx.op("Unsqueeze", [sizes, ctx.int64s([1], "axes")],
                                         hint="sizes")], hint="starts")
    positions = ctx.const(np.arange(k, dtype=np.float32).reshape(1, k), "positions")
    before_end = ctx.op("Cast", [ctx.op("Less", [positions, ends], hint="lt")], hint="mask",
                        to=ir.DataType.FLOAT)
    before_start = ctx.op("Cast", [ctx.op("Less", [positions, starts], hint="lt")],
                          hint="mask", to=ir.DataType.FLOAT)
    owner = ctx.op("Sub", [before_end, before_start], hint="owner")  # (batch, k) of 0/1
    return ctx.op("MatMul", [owner, contributions], hint="index_linear")
