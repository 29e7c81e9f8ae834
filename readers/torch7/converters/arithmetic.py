"""Modules that add or multiply by constants or learned tensors."""

import numpy as np

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
