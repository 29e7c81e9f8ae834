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
        error = ConversionError(f"input of shape {list(shape)} cannot be viewed as {size}")
        error.elements = (ine, num_elements)  # tells a guessed input size how far off it is
        raise error
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


def _batch_offset(module, rank, field="numInputDims"):
    """1 when the input carries a batch dimension in front of the declared sample dims."""
    declared = module.get(field)
    return 1 if declared is not None and rank == int(declared) + 1 else 0


@converter("nn.Select")
def select(ctx, module, x):
    shape = ctx.shape(x)
    dim = module.int("dimension")
    dim = len(shape) + dim + 1 if dim < 0 else dim
    if not 1 <= dim <= len(shape):
        raise ConversionError(f"dimension {module.int('dimension')} is outside the "
                              f"{len(shape)}-D input")
    index = module.int("index")
    index = shape[dim - 1] + index + 1 if index < 0 else index
    if not 1 <= index <= shape[dim - 1]:
        raise ConversionError(f"index {module.int('index')} is outside dimension {dim} of "
                              f"size {shape[dim - 1]}")
    axes = ctx.int64s([dim - 1], "axes")
    picked = ctx.op("Slice", [x, ctx.int64s([index - 1], "starts"), ctx.int64s([index], "ends"),
                              axes], hint="select")
    return ctx.op("Squeeze", [picked, axes], hint="select")


@converter("nn.Squeeze")
def squeeze(ctx, module, x):
    """Drop dimension `dim` if it is 1, or every dimension of 1; with numInputDims a
    batch of one keeps its batch dimension."""
    shape = ctx.shape(x)
    dim = module.get("dim")
    batched = _batch_offset(module, len(shape))
    if dim is not None:
        axis = int(dim) - 1 + batched
        if not 0 <= axis < len(shape):
            raise ConversionError(f"dim {dim} is outside the {len(shape)}-D input")
        axes = [axis] if shape[axis] == 1 else []
    else:
        axes = [a for a, n in enumerate(shape) if n == 1 and not (batched and a == 0)]
    if not axes:
        return x
    return ctx.op("Squeeze", [x, ctx.int64s(axes, "axes")], hint="squeeze")


@converter("nn.Unsqueeze")
def unsqueeze(ctx, module, x):
    rank = len(ctx.shape(x))
    n_input_dims = module.get("numInputDims")
    offset = rank - int(n_input_dims) if n_input_dims is not None else 0
    position = module.int("pos") + offset  # 1-based, as nn's addSingletonDimension
    if offset < 0 or not 1 <= position <= rank + 1:
        raise ConversionError(f"position {module.int('pos')} is outside the {rank}-D input")
    return ctx.op("Unsqueeze", [x, ctx.int64s([position - 1], "axes")], hint="unsqueeze")


@converter("nn.Replicate")
def replicate(ctx, module, x):
    """nfeatures copies of the input along a new dimension `dim` (shifted past a batch
    dimension when the input has more than `ndim` dimensions)."""
    shape = list(ctx.shape(x))
    ndim = module.get("ndim")
    offset = 1 if ndim is not None and len(shape) > int(ndim) else 0
    axis = module.int("dim", 1) - 1 + offset
    if not 0 <= axis <= len(shape):
        raise ConversionError(f"dim {module.int('dim', 1)} is outside the {len(shape)}-D input")
    count = module.int("nfeatures")
    expanded = ctx.op("Unsqueeze", [x, ctx.int64s([axis], "axes")], hint="replicate")
    target = shape[:axis] + [count] + shape[axis:]
    return ctx.op("Expand", [expanded, ctx.int64s(target)], hint="replicate")


@converter("nn.Collapse")
def collapse(ctx, module, x):
    """Flatten all dims (or all but the first when the input has more than nInputDim)."""
    shape = ctx.shape(x)
    target = [shape[0], -1] if len(shape) > module.int("nInputDim") else [-1]
    return ctx.op("Reshape", [x, ctx.int64s(target)], hint="collapse")


@converter("nn.PixelShuffle")
def pixel_shuffle(ctx, module, x):
    """(C*r*r) x H x W -> C x H*r x W*r: nn's view/permute is DepthToSpace's CRD order."""
    r = module.int("upscaleFactor")
    shape = ctx.shape(x)
    if len(shape) not in (3, 4) or r < 1 or shape[-3] % (r * r):
        raise ConversionError(f"PixelShuffle({r}) needs a 3-D or 4-D input whose channels "
                              f"divide by {r * r}, got shape {list(shape)}")
    return ctx.batched(x, 4, lambda x4: ctx.op("DepthToSpace", [x4], hint="pixel_shuffle",
                                               blocksize=r, mode="CRD"))


@converter("nn.Convert")
def convert(ctx, module, x):
    """Convert(inputShape, outputShape), e.g. "bchw" -> "bf": the converter module nn built
    on its first forward, with a batch dimension added and removed around it when the
    input has none."""
    rank = len(ctx.shape(x))
    n_input_dim = module.int("nInputDim", -1)
    children = module.children()
    inner = children[0] if children else None
    if inner is None and module.fields.get("converter") is not None:
        inner = module.child(module.fields["converter"], f"{module.path}.converter")
    in_shape, out_shape = module.get("inputShape", ""), module.get("outputShape", "")
    if inner is None:
        if in_shape != out_shape:
            raise ConversionError(f"Convert({in_shape!r}, {out_shape!r}) was saved before its "
                                  "first forward built the conversion")
        return x
    if rank >= n_input_dim:
        return ctx.convert(inner, x)
    batch_at = module.int("inputBatchDim", 1) - 1
    batched = ctx.op("Unsqueeze", [x, ctx.int64s([batch_at], "axes")], hint="batch")
    y = ctx.convert(inner, batched)
    drop = module.int("outputBatchDim", 1) - 1
    return ctx.op("Squeeze", [y, ctx.int64s([drop], "axes")], hint="unbatch")
