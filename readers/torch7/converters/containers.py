"""Containers: modules that only wire their children together (tensor in, tensor out;
the table containers are in tables.py)."""

import math

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_tensor, describe, is_tensor


@converter("nn.Sequential")
def sequential(ctx, module, x):
    for child in module.children():
        x = ctx.convert(child, x)
    return x


@converter("nn.Parallel")
def parallel(ctx, module, x):
    """Child i gets input:select(inputDimension, i); their outputs are joined along
    outputDimension (both 1-based, counted in each tensor's own dimensions)."""
    x = as_tensor(x, "Parallel")
    shape = ctx.shape(x)
    in_axis = module.int("inputDimension") - 1
    if not 0 <= in_axis < len(shape):
        raise ConversionError(f"inputDimension {in_axis + 1} is outside a {len(shape)}-D input")
    children = module.children()
    n = shape[in_axis]
    if n > len(children):
        raise ConversionError(f"{n} slices along dimension {in_axis + 1} but "
                              f"{len(children)} modules")
    axes = ctx.int64s([in_axis], "axes")
    if n == 1:
        slices = [x]
    else:
        split = ctx.builder.op("Split", [x, ctx.int64s([1] * n, "split")], {"axis": in_axis},
                               num_outputs=n, hint="slice")
        slices = list(split.producer().outputs)
    outs = []
    for k, (child, part) in enumerate(zip(children, slices, strict=False), start=1):
        out = ctx.convert(child, ctx.op("Squeeze", [part, axes], hint="select"))
        if not is_tensor(out):
            raise ConversionError(f"Parallel joins tensors, but module {k} outputs "
                                  f"{describe(out)}")
        outs.append(out)
    out_axis = module.int("outputDimension") - 1
    rank = len(ctx.shape(outs[0]))
    if not 0 <= out_axis < rank:
        raise ConversionError(f"outputDimension {out_axis + 1} is outside a {rank}-D output")
    return ctx.op("Concat", outs, hint="concat", axis=out_axis) if len(outs) > 1 else outs[0]


@converter("nn.Bottle")
def bottle(ctx, module, x):
    """Folds the leading dimensions into one batch dimension for a module that takes
    nInputDim dimensions, then unfolds its nOutputDim-D output (nn.Bottle)."""
    x = as_tensor(x, "Bottle")
    children = module.children()
    if not children:
        raise ConversionError("Bottle has no module")
    shape = list(ctx.shape(x))
    n_in = module.int("nInputDim", 2)
    n_out = module.int("nOutputDim", n_in)
    batch_dims = len(shape) - n_in + 1
    if batch_dims <= 1:
        return ctx.convert(children[0], x)
    squeezed = math.prod(shape[:batch_dims - 1])
    folded = [squeezed * shape[batch_dims - 1], *shape[batch_dims:]]
    y = ctx.convert(children[0], ctx.op("Reshape", [x, ctx.int64s(folded)], hint="bottle"))
    y = as_tensor(y, "Bottle's module output: Bottle")
    out_shape = list(ctx.shape(y))
    if len(out_shape) != n_out:
        raise ConversionError(f"the module outputs {len(out_shape)} dimensions, Bottle expects "
                              f"{n_out}")
    if out_shape[0] % squeezed:
        raise ConversionError(f"cannot unfold an output of {out_shape[0]} rows into "
                              f"{shape[:batch_dims - 1]}")
    unfolded = [*shape[:batch_dims - 1], out_shape[0] // squeezed, *out_shape[1:]]
    return ctx.op("Reshape", [y, ctx.int64s(unfolded)], hint="unbottle")
