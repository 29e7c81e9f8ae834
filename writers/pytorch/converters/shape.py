"""Shape and data-movement ops: reshape/flatten (batch kept free), permute, squeeze,
cat/split, slicing, F.pad, repeat/expand, nn.PixelShuffle, and the ops that compute
nothing at inference (Identity, Dropout)."""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, ints, literal, tuple_literal
from migrate.writers.pytorch.registry import op_converter
from migrate.writers.pytorch.windows import torch_pad


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _axes(g: CodeGen, node, index: int, rank: int, attribute: str = "axes") -> list[int] | None:
    """Axes given as an input (opset 13+) or an attribute, made non-negative."""
    if len(node.inputs) > index and node.inputs[index] is not None:
        values = g.need_const(node.inputs[index], "axes").reshape(-1).tolist()
    else:
        attr = node.attributes.get(attribute)
        if attr is None:
            return None
        values = list(attr.value)
    return sorted(_axis(int(a), rank) for a in values)


@op_converter("Identity")
def identity(g: CodeGen, node) -> None:
    g.alias(node.outputs[0], node.inputs[0])


@op_converter("Dropout")
def dropout(g: CodeGen, node) -> None:
    if len(node.outputs) > 1 and g.last_use(node.outputs[1]) >= 0:
        raise ConversionError("Dropout's mask output is not computed in evaluation")
    ratio = 0.5
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        ratio = float(g.need_const(node.inputs[1], "ratio").reshape(-1)[0])
    if len(node.inputs) > 2 and node.inputs[2] is not None and \
            bool(g.need_const(node.inputs[2], "training_mode").reshape(-1)[0]):
        raise ConversionError("Dropout in training mode is not an inference layer")
    # kept as a layer (identity in eval()) so the module can be fine-tuned as the source was
    arg = "" if ratio == 0.5 else literal(ratio, np.float32)
    layer = g.module("dropout", f"nn.Dropout({arg})")
    g.emit(f"{layer}({g.ref(node.inputs[0])})", outputs=node.outputs[:1],
           view_of=node.inputs[0])


def reshape_expression(g: CodeGen, x, out: tuple[int, ...]) -> tuple[str | None, bool]:
    """(expression, batched) for reshaping x to `out`; None when out is x's shape."""
    shape = g.shape(x)
    ref = g.ref(x)
    if tuple(shape) == tuple(out):
        return None, g.batched(x)
    batched = g.batched(x) and len(out) > 0 and len(shape) > 0 and out[0] == shape[0]
    if batched:
        for axis in range(1, len(shape)):
            # torch.flatten(x, k): the dims from k on merged, those before kept
            if tuple(out) == tuple(shape[:axis]) + (math.prod(shape[axis:]),) and \
                    axis < len(shape) - 1:
                return f"torch.flatten({ref}, {axis})", True
        if math.prod(out[1:]) > 0:
            return f"{ref}.reshape(-1, {ints(out[1:])})" if len(out) > 1 else \
                f"{ref}.reshape(-1)", True
    return f"{ref}.reshape({ints(out)})" if len(out) > 1 else \
        f"{ref}.reshape({tuple_literal(out) if out else '()'})", False


def _reshape(g: CodeGen, node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    expr, batched = reshape_expression(g, x, g.shape(out))
    if expr is None:
        g.alias(out, x)
        return
    g.emit(expr, batched=batched, view_of=x, comment=True)


@op_converter("Reshape")
def reshape(g: CodeGen, node) -> None:
    _reshape(g, node)


@op_converter("Flatten")
def flatten(g: CodeGen, node) -> None:
    x = node.inputs[0]
    rank = len(g.shape(x))
    axis = _axis(node.attributes.get_int("axis", 1), rank)
    if 1 < axis < rank and g.batched(x):
        ref = g.ref(x)
        g.emit(f"torch.flatten(torch.flatten({ref}, {axis}), 0, {axis - 1})", batched=False,
               view_of=x, comment=True)
        return
    _reshape(g, node)


@op_converter("Squeeze", "Unsqueeze")
def squeeze(g: CodeGen, node) -> None:
    x = node.inputs[0]
    shape = g.shape(x)
    out = g.shape(node.outputs[0])
    if node.op_type == "Squeeze":
        axes = _axes(g, node, 1, len(shape))
        if axes is None:
            axes = [k for k, d in enumerate(shape) if d == 1]
        if not axes:
            g.alias(node.outputs[0], x)
            return
        dims = str(axes[0]) if len(axes) == 1 else tuple_literal(axes)
        expr = f"{g.ref(x)}.squeeze({dims})"
    else:
        axes = _axes(g, node, 1, len(out)) or []
        expr = g.ref(x) + "".join(f".unsqueeze({a})" for a in axes)
    g.emit(expr, batched=g.batched(x) and 0 not in axes, view_of=x, comment=True)


@op_converter("Transpose")
def transpose(g: CodeGen, node) -> None:
    x = node.inputs[0]
    rank = len(g.shape(x))
    perm = [int(p) for p in node.attributes.get_ints("perm", list(reversed(range(rank))))]
    if perm == list(range(rank)):
        g.alias(node.outputs[0], x)
        return
    g.emit(f"{g.ref(x)}.permute({ints(perm)})", batched=g.batched(x) and perm[0] == 0,
           view_of=x, comment=True)


@op_converter("Concat")
def concat(g: CodeGen, node) -> None:
    values = [v for v in node.inputs if v is not None]
    rank = len(g.shape(node.outputs[0]))
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    parts = [g.ref(v, "concat") for v in values]
    first = next((v for v in values if v.const_value is None), values[0])
    g.emit(f"torch.cat([{', '.join(parts)}], {axis})", batched=g.batched(first) and axis != 0,
           comment=True)


@op_converter("Split")
def split(g: CodeGen, node) -> None:
    x = node.inputs[0]
    rank = len(g.shape(x))
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    sizes = [g.shape(v)[axis] for v in node.outputs]
    spec = str(sizes[0]) if len(set(sizes)) == 1 and len(sizes) > 1 else f"[{ints(sizes)}]"
    g.emit(f"torch.split({g.ref(x)}, {spec}, {axis})", batched=g.batched(x) and axis != 0,
           view_of=x, comment=True)


def _clamp(value: int, size: int, low: int, high: int) -> int:
    """ONNX's clamping of a start/end index (negative values count from the end)."""
    if value < 0:
        value += size
    return min(max(value, low), high)


@op_converter("Slice")
def slice_(g: CodeGen, node) -> None:
    x = node.inputs[0]
    shape = g.shape(x)
    rank = len(shape)
    starts = g.need_const(node.inputs[1], "starts").reshape(-1).tolist()
    ends = g.need_const(node.inputs[2], "ends").reshape(-1).tolist()
    axes = list(range(len(starts)))
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        axes = [_axis(int(a), rank) for a in g.need_const(node.inputs[3], "axes").reshape(-1)]
    steps = [1] * len(starts)
    if len(node.inputs) > 4 and node.inputs[4] is not None:
        steps = [int(s) for s in g.need_const(node.inputs[4], "steps").reshape(-1)]
    index = [":"] * rank
    flips = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        size = shape[axis]
        if step > 0:
            begin, stop = _clamp(int(start), size, 0, size), _clamp(int(end), size, 0, size)
        else:  # PyTorch slices forwards only: flip the axis, then slice forwards
            begin = _clamp(int(start), size, 0, size - 1)
            stop = _clamp(int(end), size, -1, size - 1)
            count = -((begin - stop) // step) if begin > stop else 0  # ceil((b - s) / |step|)
            flips.append(axis)
            step = -step
            begin = size - 1 - begin
            stop = begin + (count - 1) * step + 1 if count else begin
        text = ("" if begin == 0 else str(begin)) + ":" + ("" if stop >= size else str(stop))
        index[axis] = text + ("" if step == 1 else f":{step}")
    while index and index[-1] == ":":
        index.pop()
    if not index and not flips:
        g.alias(node.outputs[0], x)
        return
    ref = g.ref(x)
    if flips:
        ref = f"torch.flip({ref}, {tuple_literal(flips)})"
    expr = f"{ref}[{', '.join(index)}]" if index else ref
    batched = g.batched(x) and (not index or index[0] == ":") and 0 not in flips
    g.emit(expr, batched=batched, view_of=None if flips else x, comment=True)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
              "wrap": "circular"}


@op_converter("Pad")
def pad(g: CodeGen, node) -> None:
    x = node.inputs[0]
    shape = g.shape(x)
    rank = len(shape)
    pads = g.need_const(node.inputs[1], "pads").reshape(-1).tolist()
    axes = list(range(rank))
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        axes = [_axis(int(a), rank) for a in g.need_const(node.inputs[3], "axes").reshape(-1)]
    begin, end = [0] * rank, [0] * rank
    for k, axis in enumerate(axes):
        begin[axis], end[axis] = int(pads[k]), int(pads[len(axes) + k])
    mode = node.attributes.get_string("mode", "constant")
    if mode not in _PAD_MODES:
        raise ConversionError(f"padding mode {mode} has no PyTorch equivalent")
    padded = [k for k in range(rank) if begin[k] or end[k]]
    if not padded:
        g.alias(node.outputs[0], x)
        return
    first = padded[0]
    if mode != "constant" and (rank - first > 3 or rank - first >= rank - 1 or
                               any(b < 0 or e < 0 for b, e in zip(begin, end, strict=True))):
        raise ConversionError(f"{mode} padding of dims {padded} of a {rank}-D tensor has no "
                              "PyTorch equivalent (it pads the last 1 to 3 spatial dims)")
    args = [g.ref(x), f"({ints(torch_pad(begin[first:], end[first:]))})"]
    if mode != "constant":
        args.append(f'mode="{_PAD_MODES[mode]}"')
    elif len(node.inputs) > 2 and node.inputs[2] is not None:
        value = g.need_const(node.inputs[2], "value").reshape(-1)
        if value.size and value[0] != 0:
            args.append(f"value={literal(value[0].item(), value.dtype)}")
    g.emit(f"F.pad({', '.join(args)})", batched=g.batched(x) and first > 0, comment=True)


@op_converter("Tile")
def tile(g: CodeGen, node) -> None:
    x = node.inputs[0]
    repeats = [int(r) for r in g.need_const(node.inputs[1], "repeats").reshape(-1)]
    g.emit(f"{g.ref(x)}.repeat({ints(repeats)})", batched=g.batched(x) and repeats[0] == 1,
           comment=True)


@op_converter("Expand")
def expand(g: CodeGen, node) -> None:
    x = node.inputs[0]
    shape = g.shape(x)
    if g.const(node.inputs[1]) is None:  # the shape is an input: broadcast at run time
        target = g.ref(node.inputs[1])
        g.emit(f"{g.ref(x)}.expand(torch.broadcast_shapes({g.ref(x)}.shape, "
               f"tuple({target}.tolist())))", view_of=x, comment=True)
        return
    out = list(g.shape(node.outputs[0]))
    if tuple(out) == tuple(shape):
        g.alias(node.outputs[0], x)
        return
    batched = g.batched(x) and len(out) == len(shape) and out[0] == shape[0]
    sizes = ["-1" if batched and k == 0 else str(d) for k, d in enumerate(out)]
    g.emit(f"{g.ref(x)}.expand({', '.join(sizes)})", batched=batched, view_of=x, comment=True)


@op_converter("DepthToSpace")
def depth_to_space(g: CodeGen, node) -> None:
    x = node.inputs[0]
    block = node.attributes.get_int("blocksize", 1)
    if node.attributes.get_string("mode", "DCR") == "CRD":
        layer = g.module("shuffle", f"nn.PixelShuffle({block})")
        g.emit(f"{layer}({g.ref(x)})")
        return
    n, c, h, w = g.shape(x)
    batch = "-1" if g.batched(x) else str(n)
    c_out = c // (block * block)
    g.emit(f"{g.ref(x)}.reshape({batch}, {block}, {block}, {c_out}, {h}, {w})"
           f".permute(0, 3, 4, 1, 5, 2).reshape({batch}, {c_out}, {h * block}, {w * block})",
           batched=g.batched(x), comment=True)


@op_converter("SpaceToDepth")
def space_to_depth(g: CodeGen, node) -> None:
    x = node.inputs[0]
    block = node.attributes.get_int("blocksize", 1)
    n, c, h, w = g.shape(x)
    batch = "-1" if g.batched(x) else str(n)
    g.emit(f"{g.ref(x)}.reshape({batch}, {c}, {h // block}, {block}, {w // block}, {block})"
           f".permute(0, 3, 5, 1, 2, 4).reshape({batch}, {c * block * block}, {h // block}, "
           f"{w // block})", batched=g.batched(x), comment=True)
