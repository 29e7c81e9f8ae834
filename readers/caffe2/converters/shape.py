"""Shape, layout and data-movement operators."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.caffe2.registry import caffe2_op


def _shape_const(ctx, value) -> list[int]:
    array = ctx.constant_of(value)
    if array is None:
        raise ConversionError("a shape given by a computed tensor (only constants are supported)")
    return [int(v) for v in np.asarray(array).reshape(-1)]


@caffe2_op("Reshape")
def reshape(ctx, op, inputs):
    """Outputs the reshaped tensor and the old shape (0 copies a dim, -1 is inferred, as
    in ONNX)."""
    x = inputs[0]
    shape = ctx.args.ints("shape") if ctx.args.has("shape") else _shape_const(ctx, inputs[1])
    old = np.asarray(ctx.shape(x), np.int64)
    return [ctx.op("Reshape", [x, ctx.int64s(shape)], hint="reshape"), ctx.const(old, "old_shape")]


@caffe2_op("Flatten")
def flatten(ctx, op, inputs):
    return [ctx.op("Flatten", inputs[:1], hint="flatten", axis=ctx.args.int("axis", 1))]


@caffe2_op("FlattenToVec")
def flatten_to_vec(ctx, op, inputs):
    return [ctx.op("Reshape", [inputs[0], ctx.int64s([-1])], hint="flatten")]


@caffe2_op("Transpose", "NCHW2NHWC", "NHWC2NCHW")
def transpose(ctx, op, inputs):
    rank = len(ctx.shape(inputs[0]))
    if op.type == "NCHW2NHWC":
        perm = [0] + list(range(2, rank)) + [1]
    elif op.type == "NHWC2NCHW":
        perm = [0, rank - 1] + list(range(1, rank - 1))
    else:
        perm = ctx.args.ints("axes", list(reversed(range(rank))))
    return [ctx.op("Transpose", inputs[:1], hint="transpose", perm=perm)]


def _axis(ctx, rank: int) -> int:
    if ctx.args.has("axis"):
        return ctx.args.int("axis") % rank
    return 1 if ctx.order() == "NCHW" else rank - 1


@caffe2_op("Concat")
def concat(ctx, op, inputs):
    """Concat (or stack, with add_axis) plus the split_info output (each input's size)."""
    rank = len(ctx.shape(inputs[0]))
    if ctx.args.int("add_axis", 0):
        axis = ctx.args.int("axis", 1) % (rank + 1)
        axes = ctx.int64s([axis], "axes")
        parts = [ctx.op("Unsqueeze", [x, axes]) for x in inputs]
        sizes = [1] * len(inputs)
    else:
        axis = _axis(ctx, rank)
        parts = list(inputs)
        sizes = [ctx.shape(x)[axis] for x in inputs]
    out = ctx.op("Concat", parts, hint="concat", axis=axis)
    return [out, ctx.const(np.asarray(sizes, np.int32), "split_info")]


@caffe2_op("Split")
def split(ctx, op, inputs):
    x = inputs[0]
    rank = len(ctx.shape(x))
    axis = _axis(ctx, rank)
    if ctx.args.has("split"):
        sizes = ctx.args.ints("split")
    elif len(inputs) > 1:
        sizes = _shape_const(ctx, inputs[1])
    else:
        n = len(op.output)
        if ctx.shape(x)[axis] % n:
            raise ConversionError(f"cannot split {ctx.shape(x)[axis]} into {n} equal parts")
        sizes = [ctx.shape(x)[axis] // n] * n
    if len(sizes) != len(op.output) or sum(sizes) != ctx.shape(x)[axis]:
        raise ConversionError(f"split sizes {sizes} do not fit axis {axis} of "
                              f"{list(ctx.shape(x))} into {len(op.output)} outputs")
    if len(sizes) == 1:
        return [ctx.op("Identity", [x], hint="split")]
    return ctx.outputs("Split", [x, ctx.int64s(sizes, "split")], len(sizes), hint="split",
                       axis=axis)


@caffe2_op("Slice")
def slice_(ctx, op, inputs):
    """starts/ends per dim; a negative index counts from the end, -1 being the end itself."""
    x = inputs[0]
    shape = ctx.shape(x)
    if ctx.args.has("starts"):
        starts, ends = ctx.args.ints("starts"), ctx.args.ints("ends")
    else:
        starts, ends = _shape_const(ctx, inputs[1]), _shape_const(ctx, inputs[2])
    if len(starts) != len(ends) or len(starts) > len(shape):
        raise ConversionError(f"starts {starts} and ends {ends} do not fit shape {list(shape)}")
    axes, begin, stop = [], [], []
    for axis, (s, e) in enumerate(zip(starts, ends, strict=True)):
        dim = shape[axis]
        s = s + dim + 1 if s < 0 else s
        e = e + dim + 1 if e < 0 else e
        if not 0 <= s <= e <= dim:
            raise ConversionError(f"slice [{starts[axis]}, {ends[axis]}) is outside dim {dim}")
        if (s, e) != (0, dim):
            axes.append(axis)
            begin.append(s)
            stop.append(e)
    if not axes:
        return [ctx.op("Identity", [x], hint="slice")]
    return [ctx.op("Slice", [x, ctx.int64s(begin, "starts"), ctx.int64s(stop, "ends"),
                             ctx.int64s(axes, "axes")], hint="slice")]


@caffe2_op("Squeeze")
def squeeze(ctx, op, inputs):
    dims = ctx.args.ints("dims", [])
    if not dims:
        dims = [d for d, n in enumerate(ctx.shape(inputs[0])) if n == 1]
    return [ctx.op("Squeeze", [inputs[0], ctx.int64s(dims, "axes")], hint="squeeze")]


@caffe2_op("ExpandDims")
def expand_dims(ctx, op, inputs):
    dims = sorted(ctx.args.ints("dims"))
    return [ctx.op("Unsqueeze", [inputs[0], ctx.int64s(dims, "axes")], hint="expand")]


@caffe2_op("Tile")
def tile(ctx, op, inputs):
    x = inputs[0]
    rank = len(ctx.shape(x))
    tiles = ctx.args.int("tiles", 1) if len(inputs) < 2 else _shape_const(ctx, inputs[1])[0]
    axis = ctx.args.int("axis", 0) if len(inputs) < 3 else _shape_const(ctx, inputs[2])[0]
    repeats = [1] * rank
    repeats[axis % rank] = tiles
    return [ctx.op("Tile", [x, ctx.int64s(repeats, "repeats")], hint="tile")]


@caffe2_op("Expand")
def expand(ctx, op, inputs):
    return [ctx.op("Expand", [inputs[0], ctx.int64s(_shape_const(ctx, inputs[1]))],
                   hint="expand")]


@caffe2_op("PadImage")
def pad_image(ctx, op, inputs):
    x = ctx.to_nchw(inputs[0])
    rank = len(ctx.shape(x))
    pad = ctx.args.int("pad", 0)
    t, l_, b, r = (ctx.args.int(k, pad) for k in ("pad_t", "pad_l", "pad_b", "pad_r"))
    pads = [0] * rank * 2
    pads[rank - 2], pads[rank - 1], pads[2 * rank - 2], pads[2 * rank - 1] = t, l_, b, r
    mode = ctx.args.str("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ConversionError(f"PadImage mode {mode!r}")
    value = ctx.const(np.float32(ctx.args.float("value", 0.0)), "pad_value")
    y = ctx.op("Pad", [x, ctx.int64s(pads, "pads"), value], hint="pad", mode=mode)
    return [ctx.from_nchw(y)]


@caffe2_op("ChannelShuffle")
def channel_shuffle(ctx, op, inputs):
    x = ctx.to_nchw(inputs[0])
    shape = list(ctx.shape(x))
    group = ctx.args.int("group", 1)
    n, c = shape[:2]
    if c % group:
        raise ConversionError(f"{c} channels do not split into {group} groups")
    split = ctx.op("Reshape", [x, ctx.int64s([n, group, c // group] + shape[2:])])
    perm = [0, 2, 1] + list(range(3, len(shape) + 1))
    shuffled = ctx.op("Transpose", [split], perm=perm)
    y = ctx.op("Reshape", [shuffled, ctx.int64s(shape)], hint="shuffle")
    return [ctx.from_nchw(y)]


@caffe2_op("ConstantFill")
def constant_fill(ctx, op, inputs):
    """A constant made at run time (e.g. padding blocks): its shape from the argument or,
    with input_as_shape, from the (constant) input, or the input's own shape."""
    from migrate.readers.caffe2.reader import DATA_TYPES

    if inputs and ctx.args.int("input_as_shape", 0):
        shape = _shape_const(ctx, inputs[0])
    elif inputs:
        shape = list(ctx.shape(inputs[0]))
    else:
        shape = ctx.args.ints("shape", [])
    shape += ctx.args.ints("extra_shape", [])
    dtype = DATA_TYPES.get(ctx.args.int("dtype", 1), np.float32)
    value = ctx.args.float("value", 0.0) if np.dtype(dtype).kind == "f" else ctx.args.int(
        "value", 0)
    return [ctx.const(np.broadcast_to(np.asarray(value, dtype), shape), "filled")]


@caffe2_op("Cast")
def cast(ctx, op, inputs):
    import onnx_ir as ir

    from migrate.readers.caffe2.reader import DATA_TYPES

    to = DATA_TYPES.get(ctx.args.int("to", 1))
    if to is None:
        raise ConversionError(f"Cast to Caffe2 type {ctx.args.int('to', 1)}")
    return [ctx.op("Cast", inputs[:1], hint="cast", to=int(ir.DataType.from_numpy(np.dtype(to))))]
