"""Padding and cropping."""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def spatial_pad(ctx, x, top, bottom, left, right, mode="constant", value=0.0, hint="pad"):
    """Pad (positive) or crop (negative) the last two dims of a 3-D or 4-D input."""
    shape = ctx.shape(x)
    rank = len(shape)
    h_axis, w_axis = rank - 2, rank - 1
    crops = [(h_axis, max(-top, 0), shape[h_axis] - max(-bottom, 0)),
             (w_axis, max(-left, 0), shape[w_axis] - max(-right, 0))]
    crops = [c for c in crops if c[1] > 0 or c[2] < shape[c[0]]]
    if crops:
        x = ctx.op("Slice", [
            x,
            ctx.int64s([c[1] for c in crops], "starts"),
            ctx.int64s([c[2] for c in crops], "ends"),
            ctx.int64s([c[0] for c in crops], "axes"),
        ], hint="crop")
    pads = [0] * (2 * rank)
    pads[h_axis], pads[rank + h_axis] = max(top, 0), max(bottom, 0)
    pads[w_axis], pads[rank + w_axis] = max(left, 0), max(right, 0)
    if not any(pads):
        return x
    inputs = [x, ctx.int64s(pads, "pads")]
    if mode == "constant" and value != 0.0:
        inputs.append(ctx.scalar(value, "pad_value"))
    return ctx.op("Pad", inputs, hint=hint, mode=mode)


def crop_and_pad(ctx, x, before, after, mode="constant", hint="pad"):
    """Pad (positive) or crop (negative) the given axes: `before`/`after` map axis -> amount."""
    shape = ctx.shape(x)
    rank = len(shape)
    crops = [(axis, max(-before.get(axis, 0), 0), shape[axis] - max(-after.get(axis, 0), 0))
             for axis in sorted(set(before) | set(after))]
    crops = [c for c in crops if c[1] > 0 or c[2] < shape[c[0]]]
    if any(start >= end for _, start, end in crops):
        raise ConversionError(f"cropping {before} / {after} leaves nothing of {list(shape)}")
    if crops:
        x = ctx.op("Slice", [x, ctx.int64s([c[1] for c in crops], "starts"),
                             ctx.int64s([c[2] for c in crops], "ends"),
                             ctx.int64s([c[0] for c in crops], "axes")], hint="crop")
    pads = [0] * (2 * rank)
    for axis, amount in before.items():
        pads[axis] = max(amount, 0)
    for axis, amount in after.items():
        pads[rank + axis] = max(amount, 0)
    if not any(pads):
        return x
    return ctx.op("Pad", [x, ctx.int64s(pads, "pads")], hint=hint, mode=mode)


def _lrtb(module):
    left = module.int("pad_l")
    return (module.int("pad_t", left), module.int("pad_b", left),
            left, module.int("pad_r", left))


@converter("nn.SpatialZeroPadding")
def spatial_zero_padding(ctx, module, x):
    return spatial_pad(ctx, x, *_lrtb(module))


@converter("nn.SpatialReflectionPadding")
def spatial_reflection_padding(ctx, module, x):
    return spatial_pad(ctx, x, *_lrtb(module), mode="reflect")


@converter("nn.SpatialReplicationPadding")
def spatial_replication_padding(ctx, module, x):
    return spatial_pad(ctx, x, *_lrtb(module), mode="edge")


@converter("nn.Padding")
def padding(ctx, module, x):
    """nn.Padding(dim, pad, nInputDim, value, index): |pad| entries of `value` inserted
    along dim; pad < 0 inserts before input position `index`, pad > 0 after it."""
    shape = ctx.shape(x)
    dim = module.int("dim")
    n_input_dim = module.get("nInputDim")
    if n_input_dim is not None and len(shape) != int(n_input_dim):
        dim += 1
    axis = dim - 1
    if not 0 <= axis < len(shape):
        raise ConversionError(f"dim {module.int('dim')} is outside the {len(shape)}-D input")
    pad, index, value = module.int("pad"), module.int("index", 1), module.float("value", 0.0)
    size = shape[axis]
    # position (0-based) where the padding block starts, as nn computes it
    at = (size - index + 1) if pad > 0 else (index - 1)
    if not 0 <= at <= size:
        raise ConversionError(f"index {index} is outside dim {dim} of size {size}")

    # A Pad, not a Concat with a constant block: the block's size comes from the
    # file, and a damaged `pad` must not make the converter allocate it.
    def pad_along_axis(piece, before, after):
        pads = [0] * (2 * len(shape))
        pads[axis], pads[len(shape) + axis] = before, after
        inputs = [piece, ctx.int64s(pads, "pads")]
        if value != 0.0:
            inputs.append(ctx.scalar(value, "pad_value"))
        return ctx.op("Pad", inputs, hint="padding", mode="constant")

    if at == 0:
        return pad_along_axis(x, abs(pad), 0)
    if at == size:
        return pad_along_axis(x, 0, abs(pad))
    head = pad_along_axis(_narrow(ctx, x, axis, 0, at), 0, abs(pad))
    return ctx.op("Concat", [head, _narrow(ctx, x, axis, at, size)], hint="padding", axis=axis)


def _narrow(ctx, x, axis, start, end):
    if start == 0 and end == ctx.shape(x)[axis]:
        return x
    return ctx.op("Slice", [x, ctx.int64s([start], "starts"), ctx.int64s([end], "ends"),
                            ctx.int64s([axis], "axes")], hint="narrow")
