"""Modules that add or multiply by constants or learned tensors."""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


@converter("nn.MulConstant")
def mul_constant(ctx, module, x):
    k = module.float("constant_scalar")
    return ctx.op("Mul", [x, ctx.scalar(k, "factor")], hint="mulconst")


@converter("nn.AddConstant")
def add_constant(ctx, module, x):
    k = module.float("constant_scalar")
    return ctx.op("Add", [x, ctx.scalar(k, "addend")], hint="addconst")


@converter("nn.Mul")
def mul(ctx, module, x):
    w = module.tensor("weight").reshape(-1)[0]
    return ctx.op("Mul", [x, ctx.scalar(float(w), "factor")], hint="mul")


def _sample_shaped(ctx, x, values, size):
    """Reshape per-sample parameters to broadcast over a batched or single input."""
    shape = ctx.shape(x)
    if size is not None and len(size) in (len(shape), len(shape) - 1):
        return values.reshape(size)
    # stored flat (nn.Add) or by element count: one value per element of a sample
    return values.reshape(shape[1:] if values.size != np.prod(shape) else shape)


@converter("nn.CMul")
def cmul(ctx, module, x):
    size = module.fields.get("size")
    size = [int(s) for s in size] if isinstance(size, np.ndarray) else None
    weight = _sample_shaped(ctx, x, module.tensor("weight"), size)
    return ctx.op("Mul", [x, ctx.const(weight, "weight")], hint="cmul")


@converter("nn.Add")
def add(ctx, module, x):
    bias = module.tensor("bias")
    if module.bool("scalar") or bias.size == 1:
        return ctx.op("Add", [x, ctx.scalar(float(bias.reshape(-1)[0]), "bias")], hint="add")
    shape = ctx.shape(x)
    same = bias.size == int(np.prod(shape))
    bias = bias.reshape(shape if same else shape[1:])
    return ctx.op("Add", [x, ctx.const(bias, "bias")], hint="add")


@converter("nn.CAdd")
def cadd(ctx, module, x):
    """input + bias (a learned tensor of `size`): element by element when they have as
    many elements, broadcast when the bias has the input's rank, else one bias per
    sample (nn views the input as batch x rest)."""
    bias = module.tensor("bias")
    if bias is None:
        raise ConversionError("CAdd has no bias")
    shape = ctx.shape(x)
    stored = module.fields.get("bias")
    dims = list(stored.shape) if isinstance(stored, np.ndarray) else list(bias.shape)
    if bias.size == int(np.prod(shape)):
        bias = bias.reshape(shape)
    elif len(dims) == len(shape):
        bias = bias.reshape(dims)
        if any(b not in (1, s) for b, s in zip(dims, shape, strict=True)):
            raise ConversionError(f"bias of size {dims} does not expand to {list(shape)}")
    elif bias.size == int(np.prod(shape[1:])):
        bias = bias.reshape(shape[1:])
    else:
        raise ConversionError(f"bias of size {dims} does not fit an input of {list(shape)}")
    return ctx.op("Add", [x, ctx.const(bias, "bias")], hint="cadd")


@converter("nn.Constant")
def constant(ctx, module, x):
    """Its `value` whatever the input, repeated over the batch when the input has more
    than nInputDim dimensions."""
    value = module.tensor("value")
    if value is None:
        raise ConversionError("Constant has no value")
    stored = module.fields.get("value")
    value = value.reshape(stored.shape)
    n_input_dim = module.get("nInputDim")
    first = x
    while not isinstance(first, ir.Value):  # a table input: its first tensor tells the batch
        if not first:
            raise ConversionError("Constant got an empty table")
        first = first[0]
    shape = ctx.shape(first)
    if n_input_dim is not None and len(shape) > int(n_input_dim):
        batched = ctx.const(value.reshape(1, *value.shape), "value")
        return ctx.op("Expand", [batched, ctx.int64s([shape[0], *value.shape])],
                      hint="constant")
    return ctx.op("Identity", [ctx.const(value, "value")], hint="constant")
