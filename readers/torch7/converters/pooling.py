"""Spatial pooling."""

from migrate.readers.torch7.registry import converter


def _window(module):
    kw, kh = module.int("kW"), module.int("kH")
    return dict(
        kernel_shape=[kh, kw],
        strides=[module.int("dH", kh), module.int("dW", kw)],
        pads=[module.int("padH", 0), module.int("padW", 0)] * 2,
        ceil_mode=int(module.bool("ceil_mode")),
    )


@converter("nn.SpatialMaxPooling", "nn.SpatialDilatedMaxPooling")
def spatial_max_pooling(ctx, module, x):
    attrs = _window(module)
    attrs["dilations"] = [module.int("dilationH", 1), module.int("dilationW", 1)]
    return ctx.batched(x, 4, lambda x4: ctx.op("MaxPool", [x4], hint="pool", **attrs))


@converter("nn.SpatialAveragePooling")
def spatial_average_pooling(ctx, module, x):
    attrs = _window(module)
    # Torch7 counts the zero padding unless told otherwise (count_include_pad=true),
    # and models saved before the field existed always counted it.
    attrs["count_include_pad"] = int(module.bool("count_include_pad", True))
    if module.has("divide") and not module.bool("divide"):
        # divide=false: a sum pooling; AveragePool times the window size.
        y = ctx.batched(x, 4, lambda x4: ctx.op("AveragePool", [x4], hint="avgpool", **attrs))
        k = attrs["kernel_shape"][0] * attrs["kernel_shape"][1]
        return ctx.op("Mul", [y, ctx.scalar(float(k), "window")], hint="scale")
    return ctx.batched(x, 4, lambda x4: ctx.op("AveragePool", [x4], hint="avgpool", **attrs))
