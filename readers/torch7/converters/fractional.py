"""Fractional max pooling (nn.SpatialFractionalMaxPooling, nn.VolumetricFractionalMaxPooling).

Every plane of every sample pools over its own pseudo-random windows, drawn from the
module's `randomSamples` (one number per plane and axis). nn draws new samples at every
forward unless `fixPoolingRegions()` was called; with it, the stored samples make fixed
windows, which become constant gather indices: the converted model takes, for each
output value, the max of its window's values (one Gather of all window taps, then a max).
"""

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.limits import check_computed_constant
from migrate.readers.torch7.registry import converter

# the taps of one window, each gathering a whole output: a damaged pool size must not
# make a huge index constant
MAX_WINDOW_TAPS = 1024


def _window_starts(sample, in_size, out_size, pool, real):
    """THNN's generateIntervals, in the precision of the module's tensors (`real`)."""
    if out_size == 1:
        return [in_size - pool]
    alpha = real(in_size - pool) / real(out_size - 1)
    starts = [int((real(i) + sample) * alpha) - int(sample * alpha) for i in range(out_size - 1)]
    return [*starts, in_size - pool]


def _output_size(module, axis_name, in_size):
    out = module.get("out" + axis_name)
    if out is None:
        ratio = module.get("ratio" + axis_name)
        if ratio is None:
            raise ConversionError(f"neither out{axis_name} nor ratio{axis_name} is set")
        out = math.floor(in_size * float(ratio))
    return int(out)


def _fractional_max_pooling(ctx, module, x, axes):
    """`axes`: for each spatial dim in order, (nn's axis name, index of its sample)."""
    shape = ctx.shape(x)
    n_spatial = len(axes)
    if len(shape) not in (n_spatial + 1, n_spatial + 2):
        raise ConversionError(f"expects a {n_spatial + 1}-D or {n_spatial + 2}-D input, "
                              f"got shape {list(shape)}")
    batched = len(shape) == n_spatial + 2
    batch, planes = (shape[0], shape[1]) if batched else (1, shape[0])
    sizes = shape[-n_spatial:]
    samples = module.fields.get("randomSamples")
    if not module.bool("newRandomPool") or not isinstance(samples, np.ndarray):
        raise ConversionError("nn draws new random pooling regions at every forward (the "
                              "module was saved without fixPoolingRegions() and its "
                              "randomSamples): no fixed model computes that")
    if samples.shape != (batch, planes, n_spatial):
        raise ConversionError(f"randomSamples of shape {list(samples.shape)} do not fit "
                              f"{batch} x {planes} planes (nn would draw new ones)")
    real = np.float64 if samples.dtype == np.float64 else np.float32
    pools = [module.int("poolSize" + name) for name, _ in axes]
    outs = [_output_size(module, name, size) for (name, _), size in zip(axes, sizes, strict=True)]
    for (name, _), pool, out, size in zip(axes, pools, outs, sizes, strict=True):
        if pool < 1 or out < 1 or out + pool - 1 >= size:
            raise ConversionError(f"pool size {pool} and output size {out} do not fit an input "
                                  f"of {size} along {name}")
    if math.prod(pools) > MAX_WINDOW_TAPS:
        raise ConversionError(f"a {'x'.join(map(str, pools))} window has more than "
                              f"{MAX_WINDOW_TAPS} taps")
    check_computed_constant(math.prod(pools) * batch * planes * math.prod(outs), 8,
                            "the window index table")
    # index of every tap of every window into the flattened input, laid out as
    # (tap along dim 1, .., tap along dim k, batch, plane, output dim 1, .., output dim k)
    k = n_spatial
    flat = np.zeros([1] * k + [batch, planes] + [1] * k, np.int64)
    stride = 1
    for d in reversed(range(k)):
        _, sample_index = axes[d]
        starts = np.array([[_window_starts(real(s), sizes[d], outs[d], pools[d], real)
                            for s in plane] for plane in samples[:, :, sample_index]], np.int64)
        # position along dim d: window start + offset of the tap in the window
        position = np.arange(pools[d], dtype=np.int64).reshape(-1, 1, 1, 1) + starts[None]
        layout = [1] * d + [pools[d]] + [1] * (k - d - 1) + [batch, planes] \
            + [1] * d + [outs[d]] + [1] * (k - d - 1)
        flat = flat + position.reshape(layout) * stride
        stride *= sizes[d]
    plane_start = np.arange(batch * planes, dtype=np.int64).reshape(batch, planes) * stride
    flat = flat + plane_start.reshape([1] * k + [batch, planes] + [1] * k)
    flat = flat.reshape([math.prod(pools)] + ([batch] if batched else []) + [planes, *outs])
    values = ctx.op("Reshape", [x, ctx.int64s([-1])], hint="flat")
    taps = ctx.op("Gather", [values, ctx.const(flat, "windows")], hint="window_taps", axis=0)
    return ctx.op("ReduceMax", [taps], hint="fractional_pool", axes=[0], keepdims=0)


@converter("nn.SpatialFractionalMaxPooling")
def spatial_fractional_max_pooling(ctx, module, x):
    # randomSamples[..., 0] places the windows along W, [..., 1] along H
    return _fractional_max_pooling(ctx, module, x, [("H", 1), ("W", 0)])


@converter("nn.VolumetricFractionalMaxPooling")
def volumetric_fractional_max_pooling(ctx, module, x):
    # nn names the three dims after the planes H, W, T (T last); samples are T, W, H
    return _fractional_max_pooling(ctx, module, x, [("H", 2), ("W", 1), ("T", 0)])
