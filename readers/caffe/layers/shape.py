"""Layers that move values around: Concat, Slice, Split, Flatten, Reshape, Crop, Tile,
Softmax, ArgMax, Reduction, Parameter, and the forks' Permute, ShuffleChannel, Upsample
and Interp. Shapes are static, so every output shape is computed here the way Caffe's
Reshape() does and given to ONNX explicitly."""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError, UnsupportedError
from migrate.core.formats import caffe_pb2
from migrate.readers.caffe.context import canonical_axis
from migrate.readers.caffe.registry import caffe_layer


@caffe_layer("Split")
def split(ctx, layer, bottoms):
    """Every top is the bottom (Caffe copies the pointer)."""
    ctx.needs_bottoms(bottoms, 1)
    return [bottoms[0]] * len(layer.top)


@caffe_layer("Concat")
def concat(ctx, layer, bottoms):
    if not bottoms:
        raise ConversionError("takes at least one bottom")
    param = layer.concat_param
    rank = len(ctx.shape(bottoms[0]))
    axis = param.concat_dim if param.HasField("concat_dim") else param.axis
    axis = canonical_axis(axis, rank)
    shapes = [ctx.shape(b) for b in bottoms]
    for s in shapes[1:]:
        if len(s) != rank or any(a != b for k, (a, b) in enumerate(zip(s, shapes[0],
                                                                       strict=True))
                                 if k != axis):
            raise ConversionError(f"bottoms of shapes {[list(x) for x in shapes]} differ "
                                  f"outside axis {axis}")
    if len(bottoms) == 1:
        return bottoms[0]
    return ctx.op("Concat", list(bottoms), axis=axis)


@caffe_layer("Slice")
def slice_layer(ctx, layer, bottoms):
    """Cut along `axis` (or the old slice_dim) at slice_point, else into equal parts."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    param = layer.slice_param
    axis = param.slice_dim if param.HasField("slice_dim") else param.axis
    axis = canonical_axis(axis, len(shape))
    tops = len(layer.top)
    size = shape[axis]
    points = list(param.slice_point)
    if points:
        if len(points) != tops - 1:
            raise ConversionError(f"{len(points)} slice points for {tops} tops")
        bounds = [0, *points, size]
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ConversionError(f"slice points {points} must increase inside 1..{size - 1}")
        sizes = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    else:
        if size % tops:
            raise ConversionError(f"axis {axis} of size {size} does not split into {tops} "
                                  "equal parts")
        sizes = [size // tops] * tops
    if tops == 1:
        return [x]
    return ctx.outputs("Split", [x, ctx.int64s(sizes, "split")], tops, axis=axis)


@caffe_layer("Flatten")
def flatten(ctx, layer, bottoms):
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    param = layer.flatten_param
    start = canonical_axis(param.axis, len(shape), "axis")
    end = canonical_axis(param.end_axis, len(shape), "end_axis")
    if end < start:
        raise ConversionError(f"end_axis {param.end_axis} comes before axis {param.axis}")
    return ctx.reshape(x, [*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:]])


def reshaped(shape: tuple[int, ...], param: caffe_pb2.ReshapeParameter) -> list[int]:
    """ReshapeLayer::Reshape: 0 copies the bottom's axis, one -1 is inferred; only the
    axes [axis, axis + num_axes) are replaced."""
    rank = len(shape)
    start = param.axis if param.axis >= 0 else rank + param.axis + 1
    if not 0 <= start <= rank:
        raise ConversionError(f"axis {param.axis} is out of range for a {rank}-D blob")
    if param.num_axes < -1:
        raise ConversionError("num_axes must be -1 (all) or non-negative")
    end = rank if param.num_axes == -1 else start + param.num_axes
    if end > rank:
        raise ConversionError("axis + num_axes runs past the blob's axes")
    dims = list(param.shape.dim)
    if dims.count(-1) > 1:
        raise ConversionError("at most one dimension may be -1")
    top = [*shape[:start], *dims, *shape[end:]]
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= rank:
                raise ConversionError("a 0 dimension has no bottom axis to copy")
            top[start + i] = shape[start + i]
        elif d < -1:
            raise ConversionError(f"dimension {d} is invalid")
    total = math.prod(shape)
    if -1 in dims:
        known = math.prod(d for d in top if d != -1)
        if known == 0 or total % known:
            raise ConversionError(f"cannot infer the -1 of {dims}: {total} values do not "
                                  f"divide by {known}")
        top[top.index(-1)] = total // known
    if math.prod(top) != total:
        raise ConversionError(f"shape {top} holds {math.prod(top)} values, the bottom "
                              f"{list(shape)} holds {total}")
    return top


@caffe_layer("Reshape")
def reshape(ctx, layer, bottoms):
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    top = reshaped(ctx.shape(x), layer.reshape_param)
    return ctx.op("Reshape", [x, ctx.int64s(top)]) if list(ctx.shape(x)) != top else \
        ctx.op("Identity", [x])


@caffe_layer("Crop")
def crop(ctx, layer, bottoms):
    """The first bottom cut to the second's shape from `axis` on, at the offsets."""
    ctx.needs_bottoms(bottoms, 2)
    x, reference = bottoms
    shape, target = ctx.shape(x), ctx.shape(reference)
    param = layer.crop_param
    start = canonical_axis(param.axis, len(shape))
    offsets = list(param.offset)
    if len(offsets) > 1 and start + len(offsets) != len(shape):
        raise ConversionError(f"{len(offsets)} offsets for the {len(shape) - start} axes "
                              f"from axis {start}")
    if len(target) != len(shape):
        raise ConversionError(f"the reference blob {list(target)} has another rank than "
                              f"{list(shape)}")
    begin, end, axes = [], [], []
    for i in range(start, len(shape)):
        offset = offsets[0] if len(offsets) == 1 else offsets[i - start] if offsets else 0
        if shape[i] - offset < target[i]:
            raise ConversionError(f"axis {i}: size {target[i]} at offset {offset} runs past "
                                  f"{shape[i]}")
        if offset or target[i] != shape[i]:
            begin.append(offset)
            end.append(offset + target[i])
            axes.append(i)
    if not axes:
        return ctx.op("Identity", [x])
    return ctx.op("Slice", [x, ctx.int64s(begin, "starts"), ctx.int64s(end, "ends"),
                            ctx.int64s(axes, "axes")])


@caffe_layer("Tile")
def tile(ctx, layer, bottoms):
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    param = layer.tile_param
    axis = canonical_axis(param.axis, len(shape))
    if param.tiles < 1:
        raise ConversionError("tiles must be at least 1")
    repeats = [1] * len(shape)
    repeats[axis] = int(param.tiles)
    return ctx.op("Tile", [x, ctx.int64s(repeats, "repeats")])


@caffe_layer("Softmax")
def softmax(ctx, layer, bottoms):
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    axis = canonical_axis(layer.softmax_param.axis, len(ctx.shape(x)))
    return ctx.op("Softmax", [x], axis=axis)


@caffe_layer("ArgMax")
def argmax(ctx, layer, bottoms):
    """The top_k indices (as floats) of the largest values along `axis`, or over each
    sample flattened (then shaped N x 1 x top_k, or N x 2 x top_k with the values too,
    padded with 1s to the bottom's rank); out_max_val with an axis gives the values."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    param = layer.argmax_param
    k = int(param.top_k)
    if k < 1:
        raise ConversionError("top_k must be at least 1")
    if param.HasField("axis"):
        axis = canonical_axis(param.axis, len(shape))
        if k > shape[axis]:
            raise ConversionError(f"top_k {k} exceeds axis {axis}'s size {shape[axis]}")
        values, indices = _top_k(ctx, x, k, axis)
        if param.out_max_val:
            return values
        return ctx.op("Cast", [indices], to=1)
    per_sample = math.prod(shape[1:])
    if k > per_sample:
        raise ConversionError(f"top_k {k} exceeds the {per_sample} values of a sample")
    flat = ctx.reshape(x, [shape[0], per_sample])
    values, indices = _top_k(ctx, flat, k, 1)
    rank = max(len(shape), 3)
    indices = ctx.op("Cast", [indices], to=1)
    if param.out_max_val:
        both = ctx.op("Concat", [ctx.reshape(indices, [shape[0], 1, k]),
                                 ctx.reshape(values, [shape[0], 1, k])], axis=1)
        return ctx.reshape(both, [shape[0], 2, k] + [1] * (rank - 3))
    return ctx.reshape(indices, [shape[0], 1, k] + [1] * (rank - 3))


def _top_k(ctx, x, k: int, axis: int):
    if k == 1:
        # ties: Caffe sorts (value, index) pairs descending, so the last index wins
        indices = ctx.op("ArgMax", [x], axis=axis, keepdims=1, select_last_index=1)
        values = ctx.op("ReduceMax", [x], axes=[axis], keepdims=1)
        return values, indices
    values, indices = ctx.outputs("TopK", [x, ctx.int64s([k], "k")], 2, axis=axis,
                                  largest=1, sorted=1)
    return values, indices


REDUCTIONS = {caffe_pb2.ReductionParameter.SUM: "sum", caffe_pb2.ReductionParameter.ASUM:
              "asum", caffe_pb2.ReductionParameter.SUMSQ: "sumsq",
              caffe_pb2.ReductionParameter.MEAN: "mean"}


@caffe_layer("Reduction")
def reduction(ctx, layer, bottoms):
    """SUM, ASUM, SUMSQ or MEAN over every axis from `axis` (default 0: to a scalar),
    times coeff."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    param = layer.reduction_param
    if param.operation not in REDUCTIONS:
        raise ConversionError(f"unknown reduction {param.operation}")
    axis = canonical_axis(param.axis, len(shape)) if shape else 0
    axes = list(range(axis, len(shape)))
    kind = REDUCTIONS[param.operation]
    source = ctx.op("Abs", [x]) if kind == "asum" else \
        ctx.op("Mul", [x, x]) if kind == "sumsq" else x
    if kind == "mean":  # ReduceMean takes its axes as an attribute until opset 18
        y = ctx.op("ReduceMean", [source], axes=axes, keepdims=0)
    else:
        y = ctx.op("ReduceSum", [source, ctx.int64s(axes, "axes")], keepdims=0)
    if param.coeff != 1:
        y = ctx.op("Mul", [y, ctx.scalar(param.coeff)])
    return y


@caffe_layer("Parameter")
def parameter(ctx, layer, bottoms):
    """A learned blob as the layer's output."""
    ctx.needs_bottoms(bottoms, 0)
    (blob,) = ctx.blobs(list(layer.parameter_param.shape.dim))
    return ctx.op("Identity", [ctx.const(np.ascontiguousarray(blob), "value")])


@caffe_layer("Permute")
def permute(ctx, layer, bottoms):
    """SSD: the axes in `order`, the unlisted ones after them in their order."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    rank = len(ctx.shape(x))
    order = list(layer.permute_param.order)
    if len(set(order)) != len(order) or any(not 0 <= a < rank for a in order):
        raise ConversionError(f"order {order} must name distinct axes of a {rank}-D blob")
    order += [a for a in range(rank) if a not in order]
    if order == list(range(rank)):
        return ctx.op("Identity", [x])
    return ctx.op("Transpose", [x], perm=order)


@caffe_layer("ShuffleChannel")
def shuffle_channel(ctx, layer, bottoms):
    """ShuffleNet: channels seen as group x (C/group), transposed."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    group = int(layer.shuffle_channel_param.group)
    if len(shape) < 2 or group < 1 or shape[1] % group:
        raise ConversionError(f"{shape[1] if len(shape) > 1 else 0} channels do not divide "
                              f"into {group} groups")
    n, c, rest = shape[0], shape[1], list(shape[2:])
    grouped = ctx.reshape(x, [n, group, c // group, *rest])
    swapped = ctx.op("Transpose", [grouped], perm=[0, 2, 1, *range(3, 3 + len(rest))])
    return ctx.reshape(swapped, list(shape))


@caffe_layer("Upsample")
def upsample(ctx, layer, bottoms):
    """The YOLOv3 ports' nearest-neighbour upsampling by an integer factor (SegNet's
    two-bottom Upsample is max unpooling: not supported)."""
    if len(bottoms) != 1:
        raise UnsupportedError("a two-bottom Upsample (SegNet's max unpooling) is not "
                               "supported")
    x = bottoms[0]
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ConversionError(f"needs a 4-D blob, got shape {list(shape)}")
    param = layer.upsample_param
    factors = []
    for axis, single, size in ((2, "scale_h", "upsample_h"), (3, "scale_w", "upsample_w")):
        if param.HasField(size):
            value = getattr(param, size) / shape[axis]
        elif param.HasField(single):
            value = getattr(param, single)
        elif param.HasField("scale"):
            value = param.scale
        else:
            raise ConversionError("upsample_param needs scale (the forks disagree on its "
                                  "default)")
        if value < 1 or value != int(value):
            raise UnsupportedError(f"an upsampling factor of {value:g} (only whole factors are "
                                   "nearest-neighbour copies)")
        factors.append(float(int(value)))
    scales = ctx.const(np.asarray([1.0, 1.0, *factors], np.float32), "scales")
    return ctx.op("Resize", [x, None, scales], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


@caffe_layer("Interp")
def interp(ctx, layer, bottoms):
    """DeepLab/PSPNet's bilinear resize with aligned corners, after cropping the input by
    the (non-positive) pad_beg/pad_end; the output size from zoom and/or shrink factors,
    height/width, or (PSPNet) a second bottom's size."""
    ctx.needs_bottoms(bottoms, 1, 2)
    x = bottoms[0]
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ConversionError(f"needs a 4-D blob, got shape {list(shape)}")
    param = layer.interp_param
    if param.pad_beg > 0 or param.pad_end > 0:
        raise ConversionError("only non-positive pad_beg/pad_end (cropping) are supported")
    h_in = shape[2] + param.pad_beg + param.pad_end
    w_in = shape[3] + param.pad_beg + param.pad_end
    if h_in < 1 or w_in < 1:
        raise ConversionError("the crop leaves nothing of the input")
    shrink, zoom = param.HasField("shrink_factor"), param.HasField("zoom_factor")
    if len(bottoms) == 2:
        h_out, w_out = ctx.shape(bottoms[1])[2:4]
    elif shrink and not zoom:
        h_out, w_out = (h_in - 1) // param.shrink_factor + 1, (w_in - 1) // param.shrink_factor + 1
    elif zoom and not shrink:
        z = param.zoom_factor
        h_out, w_out = h_in + (h_in - 1) * (z - 1), w_in + (w_in - 1) * (z - 1)
    elif param.HasField("height") and param.HasField("width"):
        h_out, w_out = param.height, param.width
    elif shrink and zoom:
        h_out, w_out = (h_in - 1) // param.shrink_factor + 1, (w_in - 1) // param.shrink_factor + 1
        z = param.zoom_factor
        h_out, w_out = h_out + (h_out - 1) * (z - 1), w_out + (w_out - 1) * (z - 1)
    else:
        raise ConversionError("interp_param needs zoom_factor, shrink_factor or height/width")
    if param.shrink_factor < 1 or param.zoom_factor < 1 or h_out < 1 or w_out < 1:
        raise ConversionError("factors and output sizes must be positive")
    if param.pad_beg or param.pad_end:
        b = -param.pad_beg
        x = ctx.op("Slice", [x, ctx.int64s([b, b], "starts"),
                             ctx.int64s([b + h_in, b + w_in], "ends"), ctx.int64s([2, 3], "axes")])
    sizes = ctx.int64s([shape[0], shape[1], h_out, w_out], "sizes")
    return ctx.op("Resize", [x, None, None, sizes], mode="linear",
                  coordinate_transformation_mode="align_corners")
