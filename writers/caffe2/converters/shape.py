"""Shape, layout and data-movement ops."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.converters.pad_nd import pad_nd
from migrate.writers.caffe2.converters.resize_nd import resize_5d
from migrate.writers.caffe2.registry import op_converter


@op_converter("Reshape")
def reshape(w, node):
    x, shape = node.inputs
    name = w.prefix("reshape")
    target = [int(v) for v in w.const(shape)]  # 0 and -1 mean the same in Caffe2
    w.emit("Reshape", [w.blob(x)], [name, f"{name}_old_shape"], shape=target)
    w.bind(node.outputs[0], name)


def _axes(w, node):
    rank = len(w.shape(node.inputs[0]))
    axes = [int(a) for a in w.const(node.inputs[1])]
    return rank, axes


@op_converter("Unsqueeze")
def unsqueeze(w, node):
    rank, axes = _axes(w, node)
    dims = sorted(a % (rank + len(axes)) for a in axes)
    w.simple("ExpandDims", "expand", node, inputs=[w.blob(node.inputs[0])], dims=dims)


@op_converter("Squeeze")
def squeeze(w, node):
    rank, axes = _axes(w, node)
    dims = sorted(a % rank for a in axes)
    w.simple("Squeeze", "squeeze", node, inputs=[w.blob(node.inputs[0])], dims=dims)


@op_converter("Identity")
def identity(w, node):
    w.simple("Copy", "copy", node)


@op_converter("Transpose")
def transpose(w, node):
    rank = len(w.shape(node.inputs[0]))
    perm = node.attributes.get_ints("perm", list(reversed(range(rank))))
    w.simple("Transpose", "transpose", node, axes=perm)


@op_converter("Concat")
def concat(w, node):
    name = w.prefix("concat")
    axis = node.attributes.get_int("axis") % len(w.shape(node.outputs[0]))
    w.emit("Concat", [w.blob(v) for v in node.inputs], [name, f"{name}_split_info"], axis=axis)
    w.bind(node.outputs[0], name)


@op_converter("Split")
def split(w, node):
    x = node.inputs[0]
    axis = node.attributes.get_int("axis", 0) % len(w.shape(x))
    sizes = [w.shape(out)[axis] for out in node.outputs]
    name = w.prefix("split")
    names = [f"{name}_{i}" for i in range(len(node.outputs))]
    w.emit("Split", [w.blob(x)], names, axis=axis, split=sizes)
    for out, blob in zip(node.outputs, names, strict=True):
        w.bind(out, blob)


@op_converter("Slice")
def slice_(w, node):
    x, starts, ends = node.inputs[:3]
    shape = w.shape(x)
    rank = len(shape)
    axes = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] is not None else None
    steps = node.inputs[4] if len(node.inputs) > 4 else None
    if steps is not None and any(int(s) != 1 for s in w.const(steps)):
        raise ConversionError("strided Slice has no Caffe2 equivalent")
    axis_list = [int(a) % rank for a in w.const(axes)] if axes is not None else list(range(rank))
    blob = w.blob(x)
    name = w.prefix("slice")
    # Caffe2's Slice cuts one dimension per operator: chain one per axis.
    for k, (axis, start, end) in enumerate(
            zip(axis_list, w.const(starts), w.const(ends), strict=True)):
        size = shape[axis]
        start = int(np.clip(start + size if start < 0 else start, 0, size))
        end = int(np.clip(end + size if end < 0 else end, 0, size))
        begin, stop = [0] * rank, [-1] * rank
        begin[axis], stop[axis] = start, end
        out = name if k == len(axis_list) - 1 else f"{name}_{k}"
        w.emit("Slice", [blob], [out], starts=begin, ends=stop)
        blob = out
    w.bind(node.outputs[0], blob)


def _pad_constant_blocks(w, node, x, pads, value):
    """Constant padding on any axes: concatenate filled blocks (static shapes)."""
    shape = list(w.shape(x))
    rank = len(shape)
    blob = w.blob(x)
    name = w.prefix("pad")
    for axis in range(rank):
        before, after = pads[axis], pads[rank + axis]
        if not before and not after:
            continue
        pieces = []
        for count, side in ((before, "before"), (after, "after")):
            if count:
                block = list(shape)
                block[axis] = count
                # filled at run time: a block in the init net would cost its size
                # on disk and in memory while writing
                filled = f"{name}_{side}{axis}"
                w.emit("ConstantFill", [], [filled], shape=block, value=value)
                pieces.append((side, filled))
        parts = [p for s, p in pieces if s == "before"] + [blob] + [
            p for s, p in pieces if s == "after"]
        out = f"{name}_axis{axis}"
        w.emit("Concat", parts, [out, f"{out}_split_info"], axis=axis)
        blob = out
        shape[axis] += before + after
    return blob


@op_converter("Pad")
def pad(w, node):
    x, pads_value = node.inputs[:2]
    value_input = node.inputs[2] if len(node.inputs) > 2 else None
    mode = node.attributes.get_string("mode", "constant")
    pads = [int(p) for p in w.const(pads_value)]
    value = 0.0 if value_input is None else float(w.const(value_input).reshape(-1)[0])
    rank = len(w.shape(x))
    if any(p < 0 for p in pads):
        raise ConversionError("negative Pad (cropping) must be a Slice for Caffe2")
    spatial_only = rank in (3, 4) and not any(
        pads[a] or pads[rank + a] for a in range(rank - 2))
    if not spatial_only:
        if mode == "edge":
            w.note("edge padding beyond the last two dims -> Concat of tiled border slices")
            blob, _ = pad_nd(w, w.blob(x), w.shape(x), pads[:rank], pads[rank:],
                             w.prefix("pad"), mode="edge")
            w.bind(node.outputs[0], blob)
            return
        if mode != "constant":
            raise ConversionError(f"{mode} padding is supported on the last two dims only")
        w.note("constant padding of non-spatial dims -> Concat with ConstantFill blocks")
        w.bind(node.outputs[0], _pad_constant_blocks(w, node, x, pads, value))
        return
    args = dict(pad_t=pads[rank - 2], pad_b=pads[2 * rank - 2], pad_l=pads[rank - 1],
                pad_r=pads[2 * rank - 1], mode=mode, order="NCHW")
    if value:
        args["value"] = value
    name = w.prefix("pad")
    blob = w.blob(x)
    if rank == 3:  # PadImage wants NCHW: add and remove a batch dimension
        w.emit("ExpandDims", [blob], [f"{name}_batched"], dims=[0])
        w.emit("PadImage", [f"{name}_batched"], [f"{name}_padded"], **args)
        w.emit("Squeeze", [f"{name}_padded"], [name], dims=[0])
    else:
        w.emit("PadImage", [blob], [name], **args)
    w.bind(node.outputs[0], name)


@op_converter("Resize")
def resize(w, node):
    x = node.inputs[0]
    in_shape, out_shape = w.shape(x), w.shape(node.outputs[0])
    if len(in_shape) == 5:
        resize_5d(w, node)
        return
    if len(in_shape) != 4 or in_shape[:2] != out_shape[:2]:
        raise ConversionError("only spatial resizing of NCHW tensors is supported")
    attrs = node.attributes
    mode = attrs.get_string("mode", "nearest")
    transform = attrs.get_string("coordinate_transformation_mode", "half_pixel")
    (in_h, in_w), (out_h, out_w) = in_shape[2:], out_shape[2:]
    if mode == "nearest" and transform == "asymmetric" \
            and attrs.get_string("nearest_mode", "round_prefer_floor") == "floor":
        w.simple("ResizeNearest", "upsample", node, inputs=[w.blob(x)],
                 height_scale=out_h / in_h, width_scale=out_w / in_w, order="NCHW")
    elif mode == "linear" and transform == "align_corners":
        # Caffe2's UpsampleBilinear maps corners onto corners; it takes the output size
        # as int(in * scale), so nudge the scale up to land on the exact size.
        w.simple("UpsampleBilinear", "upsample", node, inputs=[w.blob(x)],
                 height_scale=(out_h + 0.25) / in_h, width_scale=(out_w + 0.25) / in_w)
    else:
        raise ConversionError(f"Resize mode={mode} ({transform}) has no Caffe2 equivalent")


def _reduce(caffe2_type, kind):
    def convert(w, node):
        x = node.inputs[0]
        rank = len(w.shape(x))
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            axes = [int(a) for a in w.const(node.inputs[1])]
        else:
            axes = node.attributes.get_ints("axes", list(range(rank)))
        keep = node.attributes.get_int("keepdims", 1)
        w.simple(caffe2_type, kind, node, inputs=[w.blob(x)],
                 axes=sorted(a % rank for a in axes), keepdims=keep)

    return convert


for _onnx, _kind in (("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max"),
                     ("ReduceMin", "min")):
    op_converter(_onnx)(_reduce(_onnx, _kind))
