"""Shape and data movement: view/reshape, permute, (un)squeeze, cat, slice, select,
split, pad, expand, copies that change nothing, and the sizes of dynamic dims."""

from migrate.core.errors import ConversionError, UnsupportedError
from migrate.readers.pytorch.context import Const, axis
from migrate.readers.pytorch.registry import converter

INT64_MAX = (1 << 63) - 1


@converter("aten.view", "aten._unsafe_view", "aten.reshape")
def view(ctx, x, size):
    return ctx.op("Reshape", [x, ctx.int64s([int(s) for s in size])], hint="reshape")


@converter("aten.permute")
def permute(ctx, x, dims):
    rank = ctx.rank(x)
    return ctx.op("Transpose", [x], hint="transpose", perm=[axis(int(d), rank) for d in dims])


@converter("aten.t")
def t(ctx, x):
    return x if ctx.rank(x) < 2 else ctx.op("Transpose", [x], hint="transpose", perm=[1, 0])


@converter("aten.transpose")
def transpose(ctx, x, dim0, dim1):
    rank = ctx.rank(x)
    perm = list(range(rank))
    a, b = axis(int(dim0), rank), axis(int(dim1), rank)
    perm[a], perm[b] = perm[b], perm[a]
    return ctx.op("Transpose", [x], hint="transpose", perm=perm)


@converter("aten.unsqueeze")
def unsqueeze(ctx, x, dim):
    return ctx.op("Unsqueeze", [x, ctx.int64s([axis(int(dim), ctx.rank(x) + 1)])],
                  hint="unsqueeze")


@converter("aten.squeeze")
def squeeze(ctx, x, dims=None):
    """Only dims of size 1 go (PyTorch leaves a larger dim named in `dims` alone)."""
    shape = ctx.shape(x)
    if dims is None:
        wanted = range(len(shape))
    else:
        wanted = [dims] if isinstance(dims, int) else dims
    axes = sorted({axis(int(d), len(shape)) for d in wanted if shape[int(d)] == 1})
    if not axes:
        return x
    return ctx.op("Squeeze", [x, ctx.int64s(axes)], hint="squeeze")


@converter("aten.cat", "aten.concat")
def cat(ctx, tensors, dim=0):
    # legacy PyTorch accepts 1-D empty tensors in a cat of any rank and skips them
    kept = [v for v in tensors if not (ctx.shape(v) == (0,))]
    if len(kept) == 1:
        return kept[0]
    rank = ctx.rank(kept[0])
    return ctx.op("Concat", kept, hint="concat", axis=axis(int(dim), rank))


def _clamp_index(index, size: int) -> int:
    index = int(index)
    if index < 0:
        index += size
    return min(max(index, 0), size)


@converter("aten.slice")
def slice_(ctx, x, dim=0, start=None, end=None, step=1):
    shape = ctx.shape(x)
    ax = axis(int(dim), len(shape))
    size = shape[ax]
    begin = 0 if start is None else _clamp_index(start, size)
    stop = size if end is None or int(end) >= INT64_MAX else _clamp_index(end, size)
    if begin == 0 and stop == size and int(step) == 1:
        return x
    return ctx.op("Slice", [x, ctx.int64s([begin]), ctx.int64s([stop]), ctx.int64s([ax]),
                            ctx.int64s([int(step)])], hint="slice")


@converter("aten.select")
def select(ctx, x, dim, index):
    shape = ctx.shape(x)
    ax = axis(int(dim), len(shape))
    index = int(index) + (shape[ax] if int(index) < 0 else 0)
    if not 0 <= index < shape[ax]:
        raise ConversionError(f"index {index} is out of range for dim {ax} of size {shape[ax]}")
    part = ctx.op("Slice", [x, ctx.int64s([index]), ctx.int64s([index + 1]), ctx.int64s([ax])],
                  hint="select")
    return ctx.op("Squeeze", [part, ctx.int64s([ax])], hint="select")


@converter("aten.split_with_sizes", "aten.split")
def split(ctx, x, sizes, dim=0):
    shape = ctx.shape(x)
    ax = axis(int(dim), len(shape))
    if isinstance(sizes, int):  # split.Tensor: chunks of `sizes`, the last maybe smaller
        step = int(sizes)
        sizes = [min(step, shape[ax] - k) for k in range(0, shape[ax], step)]
    sizes = [int(s) for s in sizes]
    if len(sizes) == 1:
        return (x,)
    return tuple(ctx.outputs("Split", [x, ctx.int64s(sizes)], len(sizes), hint="split",
                             axis=ax))


@converter("aten.unbind")
def unbind(ctx, x, dim=0):
    shape = ctx.shape(x)
    ax = axis(int(dim), len(shape))
    parts = split(ctx, x, [1] * shape[ax], ax)
    return tuple(ctx.op("Squeeze", [p, ctx.int64s([ax])]) for p in parts)


@converter("aten.clone", "aten.alias", "aten.detach", "aten.lift_fresh_copy",
           "aten.contiguous", "aten.dropout")
def identity(ctx, x, *args, **kwargs):
    """Copies (and dropout, an identity at inference) change no value."""
    if kwargs.get("train") or (len(args) > 1 and args[1]):
        raise UnsupportedError("dropout in training mode: call model.eval() before exporting")
    return x


@converter("aten._to_copy", "aten.to")
def to_copy(ctx, x, *args, dtype=None, **kwargs):
    from migrate.readers.pytorch.context import ir_dtype

    if dtype is None:
        return x
    return ctx.cast(x, ir_dtype(dtype))


@converter("aten.expand")
def expand(ctx, x, size, implicit=False):
    shape = ctx.shape(x)
    size = [int(s) for s in size]
    lead = len(size) - len(shape)
    target = [shape[i - lead] if s == -1 else s for i, s in enumerate(size)]
    if tuple(target) == shape:
        return x
    return ctx.op("Expand", [x, ctx.int64s(target)], hint="expand")


@converter("aten.constant_pad_nd")
def constant_pad(ctx, x, pad, value=0.0):
    return _pad(ctx, x, pad, "constant", value)


@converter("aten.reflection_pad1d", "aten.reflection_pad2d", "aten.reflection_pad3d")
def reflection_pad(ctx, x, pad):
    return _pad(ctx, x, pad, "reflect")


@converter("aten.replication_pad1d", "aten.replication_pad2d", "aten.replication_pad3d")
def replication_pad(ctx, x, pad):
    return _pad(ctx, x, pad, "edge")


def _pad(ctx, x, pad, mode: str, value=0.0):
    """PyTorch lists (left, right) of the last dim first; ONNX all begins, then all ends.
    Negative pads crop: a Slice first, then the padding that remains."""
    rank = ctx.rank(x)
    pad = [int(p) for p in pad]
    begins, ends = [0] * rank, [0] * rank
    for k in range(len(pad) // 2):
        begins[rank - 1 - k], ends[rank - 1 - k] = pad[2 * k], pad[2 * k + 1]
    if any(p < 0 for p in begins + ends):
        shape = ctx.shape(x)
        axes = [a for a in range(rank) if begins[a] < 0 or ends[a] < 0]
        x = ctx.op("Slice", [x, ctx.int64s([max(-begins[a], 0) for a in axes]),
                             ctx.int64s([shape[a] - max(-ends[a], 0) for a in axes]),
                             ctx.int64s(axes)], hint="crop")
        begins, ends = [max(p, 0) for p in begins], [max(p, 0) for p in ends]
    if not any(begins + ends):
        return x
    inputs = [x, ctx.int64s(begins + ends)]
    if mode == "constant" and float(value) != 0.0:
        inputs.append(ctx.scalar(float(value), x))
    return ctx.op("Pad", inputs, hint="pad", mode=mode)


@converter("aten.sym_size")
def sym_size(ctx, x, dim):
    """The size of a dim exported as dynamic: fixed here by the input shape."""
    return ctx.shape(x)[axis(int(dim), ctx.rank(x))]


@converter("aten.full_like", "aten.zeros_like", "aten.ones_like")
def full_like(ctx, x, *args, **kwargs):
    """A tensor of one value shaped like x: a constant (x's values do not matter)."""
    import torch

    fill = {"aten.zeros_like": 0, "aten.ones_like": 1}.get(str(ctx.node.target._overloadpacket))
    if fill is None:
        fill = args[0] if args else kwargs["fill_value"]
    val = ctx.node.meta["val"]
    return Const(torch.full(ctx.shape(x), fill, dtype=val.dtype), ctx.node.name)


@converter("_operator.getitem")
def getitem(ctx, values, index):
    return values[index]


@converter("aten.embedding")
def embedding(ctx, weight, indices, *args):
    return ctx.op("Gather", [weight, ctx.cast(indices, None)], hint="embedding", axis=0)


@converter("aten.pixel_shuffle")
def pixel_shuffle(ctx, x, factor):
    """Reshape-transpose-reshape, the definition (ONNX DepthToSpace CRD is the same)."""
    n, c, h, w = ctx.shape(x)
    r = int(factor)
    grid = ctx.op("Reshape", [x, ctx.int64s([n, c // (r * r), r, r, h, w])])
    moved = ctx.op("Transpose", [grid], perm=[0, 1, 4, 2, 5, 3])
    return ctx.op("Reshape", [moved, ctx.int64s([n, c // (r * r), h * r, w * r])],
                  hint="pixel_shuffle")

