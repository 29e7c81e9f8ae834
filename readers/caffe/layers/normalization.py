"""BatchNorm, Scale, Bias, LRN, MVN and SSD's Normalize."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.core.formats import caffe_pb2
from migrate.readers.caffe.context import canonical_axis
from migrate.readers.caffe.layers.pooling import AVE, pool
from migrate.readers.caffe.registry import caffe_layer


@caffe_layer("BatchNorm")
def batch_norm(ctx, layer, bottoms):
    """(x - mean/f) / sqrt(var/f + eps), where f is the third blob: Caffe stores running
    sums and their scale factor (f = 0 stands for 1/0 -> 0). Without use_global_stats
    (only when set to false explicitly at test) the batch's own statistics are used."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    channels = shape[1] if len(shape) > 1 else 1
    param = layer.batch_norm_param
    eps = float(param.eps)
    if param.HasField("use_global_stats") and not param.use_global_stats:
        return _batch_statistics(ctx, x, shape, eps)
    mean, var, factor = ctx.blobs([channels], [channels], [1])
    f = float(factor[0])
    scale = np.float32(0.0 if f == 0 else 1.0 / f)
    mean = (mean * scale).astype(np.float32)
    var = (var * scale).astype(np.float32)
    if len(shape) < 2:
        raise ConversionError(f"needs a blob with a channel axis, got shape {list(shape)}")
    ones = np.ones(channels, np.float32)
    return ctx.op("BatchNormalization", [x, ctx.const(ones, "scale"),
                                         ctx.const(np.zeros(channels, np.float32), "bias"),
                                         ctx.const(mean, "mean"), ctx.const(var, "var")],
                  epsilon=eps)


def _batch_statistics(ctx, x, shape, eps):
    axes = [a for a in range(len(shape)) if a != 1]
    mean = ctx.op("ReduceMean", [x], axes=axes, keepdims=1)
    centred = ctx.op("Sub", [x, mean])
    var = ctx.op("ReduceMean", [ctx.op("Mul", [centred, centred])], axes=axes, keepdims=1)
    std = ctx.op("Sqrt", [ctx.op("Add", [var, ctx.scalar(eps)])])
    return ctx.op("Div", [centred, std])


def _broadcast(array: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A blob applied from `axis` on, shaped to broadcast over a rank-`rank` blob."""
    trailing = rank - axis - array.ndim
    return np.ascontiguousarray(array, dtype=np.float32).reshape(
        *array.shape, *([1] * trailing))


def _affine_shape(ctx, x, axis: int, num_axes: int) -> tuple[int, list[int]]:
    shape = ctx.shape(x)
    axis = canonical_axis(axis, len(shape))
    if num_axes < -1:
        raise ConversionError("num_axes must be -1 (to the end) or non-negative")
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        raise ConversionError(f"axes {axis}..{end - 1} run past the {len(shape)}-D blob")
    return axis, list(shape[axis:end])


@caffe_layer("Scale")
def scale(ctx, layer, bottoms):
    """x * scale (+ bias), the scale from a blob or from a second bottom, applied from
    `axis` over `num_axes` axes (the rest broadcast)."""
    ctx.needs_bottoms(bottoms, 1, 2)
    x = bottoms[0]
    rank = len(ctx.shape(x))
    param = layer.scale_param
    if len(bottoms) == 2:
        factor_shape = list(ctx.shape(bottoms[1]))
        axis = 0 if not factor_shape else canonical_axis(param.axis, rank)
        _check_fits(ctx.shape(x), axis, factor_shape)
        factor = ctx.reshape(bottoms[1], factor_shape + [1] * (rank - axis - len(factor_shape)))
        blobs = ctx.blobs(factor_shape) if param.bias_term else []
        y = ctx.op("Mul", [x, factor])
        bias = blobs[0] if blobs else None
    else:
        axis, blob_shape = _affine_shape(ctx, x, param.axis, param.num_axes)
        shapes = [blob_shape] + ([blob_shape] if param.bias_term else [])
        blobs = ctx.blobs(*shapes)
        y = ctx.op("Mul", [x, ctx.const(_broadcast(blobs[0], axis, rank), "scale")])
        bias = blobs[1] if param.bias_term else None
    if bias is not None:
        y = ctx.op("Add", [y, ctx.const(_broadcast(bias, axis, rank), "bias")])
    return y


def _check_fits(shape, axis: int, factor_shape: list[int]) -> None:
    if list(shape[axis:axis + len(factor_shape)]) != factor_shape:
        raise ConversionError(f"a second bottom of shape {factor_shape} does not match the "
                              f"first's {list(shape)} from axis {axis}")


@caffe_layer("Bias")
def bias(ctx, layer, bottoms):
    ctx.needs_bottoms(bottoms, 1, 2)
    x = bottoms[0]
    rank = len(ctx.shape(x))
    param = layer.bias_param
    if len(bottoms) == 2:
        term_shape = list(ctx.shape(bottoms[1]))
        axis = 0 if not term_shape else canonical_axis(param.axis, rank)
        _check_fits(ctx.shape(x), axis, term_shape)
        term = ctx.reshape(bottoms[1], term_shape + [1] * (rank - axis - len(term_shape)))
        return ctx.op("Add", [x, term])
    axis, blob_shape = _affine_shape(ctx, x, param.axis, param.num_axes)
    (blob,) = ctx.blobs(blob_shape)
    return ctx.op("Add", [x, ctx.const(_broadcast(blob, axis, rank), "bias")])


@caffe_layer("LRN")
def lrn(ctx, layer, bottoms):
    """ACROSS_CHANNELS: x / (k + alpha/size * sum of squares over `size` channels)^beta
    (ONNX's LRN, same window). WITHIN_CHANNEL: Caffe's own composition, x * (1 + alpha *
    avg-pool(x^2, size, pad (size-1)/2))^-beta (k is not used there)."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    param = layer.lrn_param
    size = int(param.local_size)
    if size % 2 == 0 or size < 1:
        raise ConversionError(f"local_size {size} must be odd (Caffe's check)")
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ConversionError(f"needs a 4-D blob, got shape {list(shape)}")
    if param.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        return ctx.op("LRN", [x], size=size, alpha=float(param.alpha), beta=float(param.beta),
                      bias=float(param.k))
    pad = (size - 1) // 2
    squares = ctx.op("Mul", [x, x])
    average = pool(ctx, squares, AVE, [size, size], [1, 1], [pad, pad], ceil=True)
    base = ctx.op("Add", [ctx.op("Mul", [average, ctx.scalar(param.alpha)]), ctx.scalar(1.0)])
    return ctx.op("Mul", [x, ctx.op("Pow", [base, ctx.scalar(-float(param.beta))])])


@caffe_layer("MVN")
def mvn(ctx, layer, bottoms):
    """x - mean, divided by (std + eps) with normalize_variance; over each channel's
    spatial values, or over all of a sample with across_channels. Caffe's top is 4-D."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    if len(shape) > 4:
        raise ConversionError(f"needs at most a 4-D blob, got shape {list(shape)}")
    legacy = list(shape) + [1] * (4 - len(shape))
    x = ctx.reshape(x, legacy)
    param = layer.mvn_param
    axes = [1, 2, 3] if param.across_channels else [2, 3]
    centred = ctx.op("Sub", [x, ctx.op("ReduceMean", [x], axes=axes, keepdims=1)])
    if not param.normalize_variance:
        return centred
    var = ctx.op("ReduceMean", [ctx.op("Mul", [centred, centred])], axes=axes, keepdims=1)
    std = ctx.op("Add", [ctx.op("Sqrt", [var]), ctx.scalar(param.eps)])
    return ctx.op("Div", [centred, std])


@caffe_layer("Normalize")
def normalize(ctx, layer, bottoms):
    """SSD: x / sqrt(sum of squares + eps), the sum over each sample (across_spatial) or
    over the channels at each position, then times the learned scale."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    if len(shape) < 2:
        raise ConversionError(f"needs a blob with channels, got shape {list(shape)}")
    param = layer.norm_param
    axes = list(range(1, len(shape))) if param.across_spatial else [1]
    sums = ctx.op("ReduceSum", [ctx.op("Mul", [x, x]), ctx.int64s(axes, "axes")], keepdims=1)
    norm = ctx.op("Sqrt", [ctx.op("Add", [sums, ctx.scalar(param.eps)])])
    y = ctx.op("Div", [x, norm])
    channels = shape[1]
    (factor,) = ctx.blobs((ctx.stored_shapes()[:1] or [[1]])[0] if param.channel_shared
                          else [channels])
    if param.channel_shared and factor.size != 1:
        raise ConversionError(f"a shared scale must be one value, got {factor.size}")
    if param.channel_shared:
        return ctx.op("Mul", [y, ctx.const(np.asarray(factor, np.float32).reshape(()),
                                           "scale")])
    return ctx.op("Mul", [y, ctx.const(_broadcast(factor, 1, len(shape)), "scale")])
