"""Max unpooling: nn.SpatialMaxUnpooling / nn.VolumetricMaxUnpooling put each value back
where the max of their pooling module came from (zeros elsewhere).

The unpooling module holds its pooling module (the same object as in the network), and
uses the indices of that module's last forward. Every max pooling converter remembers its
MaxPool node; the unpooling converter makes that node also return its indices (ONNX
MaxPool's second output, flat over N x C x spatial, the first max of a window in scan
order as in nn) and feeds them to a MaxUnpool.
"""

from __future__ import annotations

import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def _pools(ctx) -> dict:
    # per conversion: id(pooling module's Lua object) -> its MaxPool output
    pools = getattr(ctx, "max_pool_outputs", None)
    if pools is None:
        pools = ctx.max_pool_outputs = {}
    return pools


def remember_max_pool(ctx, module, pooled: ir.Value) -> ir.Value:
    """Called by max pooling converters with the MaxPool output they made."""
    _pools(ctx)[id(module.obj)] = pooled
    return pooled


def _with_indices(ctx, pooled: ir.Value) -> tuple[ir.Node, ir.Value]:
    """The MaxPool node that made `pooled`, now also returning its indices (the pooled
    value stays the same object: containers may hold it)."""
    node = pooled.producer()
    if len(node.outputs) == 1:
        node.resize_outputs(2)
        node.outputs[1].name = ctx.builder.unique_name(f"{pooled.name}_indices")
        from migrate.core.graph import infer_node  # onnx: imported when a graph is built

        infer_node(node)
    return node, node.outputs[1]


def _unpool(ctx, module, x, rank: int):
    pooling = module.get("pooling")
    pooled = _pools(ctx).get(id(pooling))
    if pooled is None:
        raise ConversionError("its pooling module did not run before it (nn uses the indices "
                              "of that module's last forward)")
    node, indices = _with_indices(ctx, pooled)
    pool_input = node.inputs[0]
    in_shape, out_shape = ctx.shape(pool_input), ctx.shape(node.outputs[0])
    attrs = node.attributes
    kernel = list(attrs["kernel_shape"].as_ints())
    strides = list(attrs["strides"].as_ints()) if "strides" in attrs else [1] * len(kernel)
    pads = list(attrs["pads"].as_ints()) if "pads" in attrs else [0] * (2 * len(kernel))

    def unpool(xb):
        if ctx.shape(xb) != out_shape:
            raise ConversionError(f"input of shape {list(ctx.shape(xb))} does not match the "
                                  f"output {list(out_shape)} of its pooling module")
        y = ctx.op("MaxUnpool", [xb, indices, ctx.int64s(in_shape, "unpooled_shape")],
                   hint="unpool", kernel_shape=kernel, strides=strides, pads=pads)
        # ONNX's inference leaves the size given by the output_shape input unknown
        y.shape, y.type = ir.Shape(list(in_shape)), xb.type
        return y

    return ctx.batched(x, rank, unpool)


@converter("nn.SpatialMaxUnpooling")
def spatial_max_unpooling(ctx, module, x):
    return _unpool(ctx, module, x, 4)


@converter("nn.VolumetricMaxUnpooling")
def volumetric_max_unpooling(ctx, module, x):
    return _unpool(ctx, module, x, 5)
