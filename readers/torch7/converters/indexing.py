"""Modules that take integer indices: LookupTable, Index, OneHot, MaskedSelect.

Torch7 fed these a LongTensor (ByteTensor for a mask). Where such an index comes
straight from a model input that nothing else reads, that input becomes an integer
input of the converted model (`indices_of`); an index computed inside the model,
or given as a FloatTensor, is cast inside (Torch7's copy into a LongTensor
truncates the same way).
"""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import VALUE_RANGE, converter


def _claim_input(x, dtype, low, high):
    """Make an unread float model input an integer input holding values low..high."""
    if not (x.is_graph_input() and not x.uses() and x.dtype == ir.DataType.FLOAT):
        return False
    x.type = ir.TensorType(dtype)
    x.meta[VALUE_RANGE] = (int(low), int(high))
    return True


def indices_of(ctx, x, low, high):
    """x as int64 indices whose valid values are low..high (1-based as in Lua)."""
    if not isinstance(x, ir.Value):
        raise ConversionError("expects a tensor of indices, got a table")
    if _claim_input(x, ir.DataType.INT64, low, high) or x.dtype == ir.DataType.INT64:
        if x.is_graph_input() and VALUE_RANGE in x.meta:
            # two modules read the same input: random test values must suit both
            old_low, old_high = x.meta[VALUE_RANGE]
            x.meta[VALUE_RANGE] = (max(old_low, int(low)), min(old_high, int(high)))
        return x
    return ctx.op("Cast", [x], hint="indices", to=ir.DataType.INT64)


def mask_of(ctx, x):
    """x as a boolean mask (Torch7: a ByteTensor of 0 and 1)."""
    if not isinstance(x, ir.Value):
        raise ConversionError("expects a mask tensor, got a table")
    _claim_input(x, ir.DataType.UINT8, 0, 1)
    return ctx.op("Cast", [x], hint="mask", to=ir.DataType.BOOL)


def zero_based(ctx, indices):
    """Lua's 1-based int64 indices -> 0-based."""
    return ctx.op("Sub", [indices, ctx.const(np.asarray(1, np.int64), "one")], hint="index")


@converter("nn.LookupTable")
def lookup_table(ctx, module, x):
    """Rows of the weight (nIndex x nOutput) picked by a 1-D or 2-D index tensor."""
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 2:
        raise ConversionError("LookupTable has no 2-D weight")
    rank = len(ctx.shape(x)) if isinstance(x, ir.Value) else 0
    if rank not in (1, 2):
        raise ConversionError(f"LookupTable takes a 1-D or 2-D index tensor, got {rank}-D")
    max_norm = module.get("maxNorm")
    if max_norm is not None:
        weight = _renormed(weight, float(max_norm), module.float("normType", 2.0))
    indices = zero_based(ctx, indices_of(ctx, x, 1, weight.shape[0]))
    return ctx.op("Gather", [ctx.const(weight, "weight"), indices], hint="lookup", axis=0)


def _renormed(weight, max_norm, norm_type):
    """THNN's LookupTable_renorm on every row at once.

    Torch7 renormalises, in place, each row a forward pass reads whose norm exceeds
    maxNorm; a row read once stays below it. Doing it now to every row gives the
    same output for any input (rows never read do not matter)."""
    rows = weight.astype(np.float64)
    norms = (np.abs(rows) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    over = norms > max_norm
    if not over.any():
        return weight
    scale = np.where(over, max_norm / (norms + 1e-7), 1.0)
    return (rows * scale[:, None]).astype(np.float32)


@converter("nn.Index")
def index(ctx, module, x):
    """{t, indices} -> t:index(dimension, indices)."""
    if isinstance(x, ir.Value) or len(x) < 2:
        raise ConversionError("Index takes a table {tensor, indices}")
    tensor, idx = x[0], x[1]
    shape = ctx.shape(tensor)
    axis = module.int("dimension") - 1
    if not 0 <= axis < len(shape):
        raise ConversionError(f"dimension {axis + 1} is outside the {len(shape)}-D input")
    if len(ctx.shape(idx)) != 1:
        raise ConversionError("Index takes a 1-D index tensor")
    indices = zero_based(ctx, indices_of(ctx, idx, 1, shape[axis]))
    return ctx.op("Gather", [tensor, indices], hint="index", axis=axis)


@converter("nn.OneHot")
def one_hot(ctx, module, x):
    """Indices (any shape) -> one more dimension of outputSize with a 1 at each index."""
    depth = module.int("outputSize")
    indices = zero_based(ctx, indices_of(ctx, x, 1, depth))
    values = ctx.const(np.asarray([0.0, 1.0], np.float32), "off_on")
    return ctx.op("OneHot", [indices, ctx.int64s([depth], "depth"), values], hint="onehot",
                  axis=-1)


@converter("nn.MaskedSelect")
def masked_select(ctx, module, x):
    """{t, mask} -> the elements of t where mask is 1, in row-major order (1-D)."""
    if isinstance(x, ir.Value) or len(x) < 2:
        raise ConversionError("MaskedSelect takes a table {tensor, mask}")
    tensor, mask = x[0], x[1]
    if ctx.shape(tensor) != ctx.shape(mask):
        raise ConversionError("MaskedSelect's mask must have the tensor's shape")
    flat = ctx.int64s([-1], "flat")
    keep = ctx.op("Reshape", [mask_of(ctx, mask), flat], hint="mask")
    values = ctx.op("Reshape", [tensor, flat], hint="flat")
    return ctx.op("Compress", [values, keep], hint="masked_select", axis=0)
