"""Pooling: max and average (ceil_mode, count_include_pad, dilation), adaptive average
and max, global.

PyTorch's ceil_mode drops a last window that would start in the right padding;
where ONNX's shape rule keeps it, the extra row or column is cut off (its other
windows are the same), so the shape is always PyTorch's.
"""

from migrate.core.errors import ConversionError, UnsupportedError
from migrate.readers.pytorch.context import Unavailable
from migrate.readers.pytorch.registry import converter

_INDICES = Unavailable("the indices of max pooling (return_indices=True, MaxUnpool) are not "
                       "computed by the converted model")


def _window(kernel, stride, padding, dilation, spatial: int) -> dict:
    def ints(values, default):
        values = [int(v) for v in values] if values else list(default)
        return values * spatial if len(values) == 1 else values

    kernel = ints(kernel, [])
    pads = ints(padding, [0])
    return dict(kernel_shape=kernel, strides=ints(stride, kernel), pads=pads + pads,
                dilations=ints(dilation, [1]))


def _to_pytorch_shape(ctx, value):
    """Cut the window ONNX's ceil rule adds past PyTorch's (see the module doc)."""
    expected = ctx.expected_shape()
    got = ctx.shape(value)
    if expected is None or got == expected:
        return value
    if len(got) != len(expected) or any(g - e not in (0, 1)
                                        for g, e in zip(got, expected, strict=True)):
        raise ConversionError(f"pooling gives shape {list(got)} where PyTorch gives "
                              f"{list(expected)}")
    axes = [a for a in range(len(got)) if got[a] != expected[a]]
    return ctx.op("Slice", [value, ctx.int64s([0] * len(axes)),
                            ctx.int64s([expected[a] for a in axes]), ctx.int64s(axes)],
                  hint="pool_crop")


@converter("aten.max_pool2d_with_indices", "aten.max_pool3d_with_indices",
           "aten.max_pool1d_with_indices")
def max_pool_with_indices(ctx, x, kernel_size, stride=(), padding=(0,), dilation=(1,),
                          ceil_mode=False):
    out = max_pool(ctx, x, kernel_size, stride, padding, dilation, ceil_mode)
    return out, _INDICES


@converter("aten.max_pool2d", "aten.max_pool1d", "aten.max_pool3d")
def max_pool(ctx, x, kernel_size, stride=(), padding=(0,), dilation=(1,), ceil_mode=False):
    attrs = _window(kernel_size, stride, padding, dilation, len(kernel_size))
    out = ctx.op("MaxPool", [x], hint="maxpool", ceil_mode=int(bool(ceil_mode)), **attrs)
    return _to_pytorch_shape(ctx, out)


@converter("aten.avg_pool2d", "aten.avg_pool1d", "aten.avg_pool3d")
def avg_pool(ctx, x, kernel_size, stride=(), padding=(0,), ceil_mode=False,
             count_include_pad=True, divisor_override=None):
    if divisor_override is not None:
        raise UnsupportedError("average pooling with divisor_override has no ONNX equivalent")
    attrs = _window(kernel_size, stride, padding, (1,), len(kernel_size))
    del attrs["dilations"]
    pads = attrs["pads"]
    include = bool(count_include_pad) and any(pads)
    if include and ceil_mode:
        # PyTorch divides a window by its part inside the padded input; a window the
        # ceil rule adds past it is cut at the padding's end. Padding explicitly and
        # counting only what lies inside gives exactly that.
        spatial = len(kernel_size)
        half = pads[:spatial]
        x = ctx.op("Pad", [x, ctx.int64s([0, 0] + half + [0, 0] + half)], hint="pool_pad",
                   mode="constant")
        attrs["pads"] = [0] * (2 * spatial)
        include = False
    out = ctx.op("AveragePool", [x], hint="avgpool", ceil_mode=int(bool(ceil_mode)),
                 count_include_pad=int(include), **attrs)
    return _to_pytorch_shape(ctx, out)


def _adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive(ctx, x, output_size, pool: str, reduce: str, global_pool: str):
    shape = ctx.shape(x)
    spatial = len(output_size)
    sizes = list(shape[-spatial:])
    outs = [s if o is None else int(o) for o, s in zip(output_size, sizes, strict=True)]
    if all(o == 1 for o in outs) and len(shape) == spatial + 2:
        return ctx.op(global_pool, [x], hint="globalpool")
    if all(s % o == 0 for s, o in zip(sizes, outs, strict=True)):
        # equal windows: a plain pooling (kernel = stride = size / out)
        kernel = [s // o for s, o in zip(sizes, outs, strict=True)]
        return ctx.op(pool, [x], hint="adaptivepool", kernel_shape=kernel, strides=kernel)
    # unequal (overlapping) windows: pooling is separable, so reduce each window of one
    # axis, then of the next, and concatenate the results in order
    out = x
    for k in range(spatial):
        ax = len(shape) - spatial + k
        if sizes[k] == outs[k]:
            continue
        # (opset 17: ReduceMean and ReduceMax take their axes as an attribute)
        parts = [ctx.op(reduce, [ctx.op("Slice", [out, ctx.int64s([lo]), ctx.int64s([hi]),
                                                  ctx.int64s([ax])])], axes=[ax], keepdims=1)
                 for lo, hi in _adaptive_windows(sizes[k], outs[k])]
        out = parts[0] if len(parts) == 1 else ctx.op("Concat", parts, axis=ax)
    return out


@converter("aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d",
           "aten.adaptive_avg_pool1d", "aten._adaptive_avg_pool1d")
def adaptive_avg_pool(ctx, x, output_size):
    return _adaptive(ctx, x, output_size, "AveragePool", "ReduceMean", "GlobalAveragePool")


@converter("aten.adaptive_max_pool2d", "aten.adaptive_max_pool1d", "aten.adaptive_max_pool3d")
def adaptive_max_pool(ctx, x, output_size):
    return _adaptive(ctx, x, output_size, "MaxPool", "ReduceMax", "GlobalMaxPool"), _INDICES
