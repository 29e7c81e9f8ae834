"""DepthToSpace / SpaceToDepth -> LiteRT's DEPTH_TO_SPACE / SPACE_TO_DEPTH on NHWC.

The builtins order the channels as ONNX's DCR mode does (channel (bh * b + bw) * C + c
of the deep tensor goes to block position (bh, bw), channel c). ONNX's CRD mode (PyTorch's
and Torch7's PixelShuffle: channel c * b * b + bh * b + bw) first reorders the channels
with one GATHER of the last axis."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow.converters.conv import finish_spatial, spatial_input
from migrate.writers.tensorflow.registry import op_lowering


def _image(ctx, node, op: str):
    if len(ctx.shape(node.inputs[0])) != 4:
        raise ctx.error(f"{op} of a {len(ctx.shape(node.inputs[0]))}-D tensor is not "
                        "supported for TensorFlow/LiteRT (4-D is)")
    x, _ = spatial_input(ctx, node.inputs[0], f"{op} needs channels last")
    return x


@op_lowering("DepthToSpace")
def depth_to_space(ctx, node):
    block = node.attributes.get_int("blocksize")
    mode = node.attributes.get_string("mode", "DCR")
    x = _image(ctx, node, "DepthToSpace")
    n, h, w, deep = x.shape
    channels = deep // (block * block)
    if mode == "CRD":
        # DCR position (bh * b + bw) * C + c reads CRD channel c * b * b + bh * b + bw
        order = np.arange(deep).reshape(channels, block * block).T.reshape(-1)
        x = ctx.emit("GATHER", [x, ctx.const(order.astype(np.int32), "order")], x.shape,
                     hint="crd_to_dcr", axis=3)
    elif mode != "DCR":
        raise ctx.error(f"DepthToSpace mode {mode} is not supported")
    y = ctx.emit("DEPTH_TO_SPACE", [x], (n, h * block, w * block, channels), x.dtype,
                 hint="depth_to_space", block=block)
    finish_spatial(ctx, node, y, 4)


@op_lowering("SpaceToDepth")
def space_to_depth(ctx, node):
    block = node.attributes.get_int("blocksize")
    x = _image(ctx, node, "SpaceToDepth")
    n, h, w, c = x.shape
    y = ctx.emit("SPACE_TO_DEPTH", [x], (n, h // block, w // block, c * block * block),
                 x.dtype, hint="space_to_depth", block=block)
    finish_spatial(ctx, node, y, 4)
