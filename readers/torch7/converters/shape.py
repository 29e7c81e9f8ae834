"""Reshaping modules, following nn's exact batch-size rules."""

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.module import lua_list
from migrate.readers.torch7.registry import converter


def _sizes(module, name):
    value = module.fields.get(name)
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.reshape(-1)]
    raise ConversionError(f"field '{name}' is not a size")


@converter("nn.View")
def view(ctx, module, x):
    size = _sizes(module, "size")
    shape = ctx.shape(x)
    num_input_dims = module.get("numInputDims")
    num_elements = math.prod(s for s in size if s >= 0)
    # nn.View's batchsize(): the leading dims not covered by numInputDims, or the
    # remainder of the element count, form a batch dimension.
    ind = len(shape)
    maxdim = int(num_input_dims) if num_input_dims is not None else ind
    ine = math.prod(shape[ind - maxdim:])
    if num_elements == 0 or ine % num_elements:
        raise ConversionError(f"input of shape {list(shape)} cannot be viewed as {size}")
    bsz = ine // num_elements
    if -1 in size:
        bsz = 1
    bsz *= math.prod(shape[: ind - maxdim])
    if bsz == 1 and (num_input_dims is None or ind <= int(num_input_dims)):
        target = size
    elif -1 in size:
        target = [bsz, *size]
    else:
        target = [-1, *size]
    return ctx.op("Reshape", [x, ctx.int64s(target)], hint="reshape")


@converter("nn.Reshape")
def reshape(ctx, module, x):
    size = _sizes(module, "size")
    shape = ctx.shape(x)
    batch_mode = module.fields.get("batchMode")
    nelement = math.prod(size)
    if batch_mode is False or (
        batch_mode is None and math.prod(shape) == nelement and shape[0] != 1
    ):
        target = size
    else:
        target = [-1, *size]
    return ctx.op("Reshape", [x, ctx.int64s(target)], hint="reshape")


@converter("nn.Identity")
def identity(ctx, module, x):
    return x


@converter("nn.Narrow")
def narrow(ctx, module, x):
    shape = ctx.shape(x)
    dim = module.int("dimension")
    dim = len(shape) + dim + 1 if dim < 0 else dim
    size = shape[dim - 1]
    index, length = module.int("index"), module.int("length", 1)
    # nn.Narrow's rules for negative length (counted from the end) and index
    if length < 0:
        length = size - index + length + 2
    if index < 0:
        index, length = 1, size - length
    if index < 1 or length < 1 or index - 1 + length > size:
        raise ConversionError(f"narrow({dim}, {index}, {length}) is outside a dim of {size}")
    return ctx.op("Slice", [x, ctx.int64s([index - 1], "starts"),
                            ctx.int64s([index - 1 + length], "ends"),
                            ctx.int64s([dim - 1], "axes")], hint="narrow")


@converter("nn.Transpose")
def transpose(ctx, module, x):
    rank = len(ctx.shape(x))
    n_input_dims = module.get("numInputDims")
    offset = rank - int(n_input_dims) if n_input_dims is not None else 0
    perm = list(range(rank))
    for pair in lua_list(module.fields.get("permutations")):
        a, b = (int(v) + offset - 1 for v in lua_list(pair))
        perm[a], perm[b] = perm[b], perm[a]
    return ctx.op("Transpose", [x], hint="transpose", perm=perm)
