"""Indexing and selection: Gather as nn.Embedding (a constant table looked up by index
inputs) or indexing, torch.gather, boolean selection, F.one_hot, torch.topk, and
F.grid_sample (spatial transformers)."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, ints, literal
from migrate.writers.pytorch.registry import op_converter


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@op_converter("Gather")
def gather(g: CodeGen, node) -> None:
    data, indices = node.inputs
    rank = len(g.shape(data))
    axis = _axis(node.attributes.get_int("axis", 0), rank)
    table = g.const(data)
    index = g.const(indices)
    if table is not None and index is None and table.ndim == 2 and axis == 0 and \
            table.dtype.kind == "f":
        layer = g.module("embedding", f"nn.Embedding({table.shape[0]}, {table.shape[1]})",
                         {"weight": table})
        g.emit(f"{layer}({g.ref(indices)})", batched=g.batched(indices))
        return
    ref = g.ref(data, "table")
    prefix = ":, " * axis
    if index is not None and index.ndim == 0:
        i = int(index) + (g.shape(data)[axis] if int(index) < 0 else 0)
        g.emit(f"{ref}[{prefix}{i}]", batched=g.batched(data) and axis != 0, view_of=data,
               comment=True)
        return
    if index is not None and index.ndim == 1 and index.size <= 64:
        size = g.shape(data)[axis]
        chosen = [int(i) + (size if i < 0 else 0) for i in index]
        g.emit(f"{ref}[{prefix}[{ints(chosen)}]]", batched=g.batched(data) and axis != 0,
               comment=True)
        return
    idx = g.ref(indices, "indices")
    out = g.shape(node.outputs[0])
    g.emit(f"torch.index_select({ref}, {axis}, {idx}.reshape(-1)).reshape({ints(out)})",
           comment=True)


@op_converter("GatherElements")
def gather_elements(g: CodeGen, node) -> None:
    data, indices = node.inputs
    axis = _axis(node.attributes.get_int("axis", 0), len(g.shape(data)))
    g.emit(f"torch.gather({g.ref(data, 'table')}, {axis}, {g.ref(indices, 'indices')})",
           batched=g.batched(data) and axis != 0, comment=True)


@op_converter("Compress")
def compress(g: CodeGen, node) -> None:
    x, condition = node.inputs
    mask = g.ref(condition, "mask")
    ref = g.ref(x)
    axis_attr = node.attributes.get("axis")
    length = g.shape(condition)[0]
    if axis_attr is None:  # the flattened input, as ONNX defines it
        ref = f"{ref}.reshape(-1)"
        size = int(np.prod(g.shape(x)))
        axis = 0
    else:
        axis = _axis(int(axis_attr.value), len(g.shape(x)))
        size = g.shape(x)[axis]
    lead = ":, " * axis
    if length < size:  # a shorter condition selects among the first elements only
        ref = f"{ref}[{lead}:{length}]"
    g.emit(f"{ref}[{lead}{mask}.bool()]", batched=False, comment=True)


@op_converter("OneHot")
def one_hot(g: CodeGen, node) -> None:
    indices, depth_value, values_value = node.inputs
    depth = int(g.need_const(depth_value, "depth").reshape(-1)[0])
    off, on = g.need_const(values_value, "values").reshape(-1)[:2]
    out = node.outputs[0]
    rank = len(g.shape(out))
    axis = _axis(node.attributes.get_int("axis", -1), rank)
    dtype = {np.dtype("float32"): "torch.float32", np.dtype("float64"): "torch.float64",
             np.dtype("int64"): "torch.int64"}.get(np.dtype(values_value.dtype.numpy()))
    if dtype is None:
        raise ConversionError("one-hot values of this type have no PyTorch equivalent")
    idx = g.ref(indices)
    # ONNX counts negative indices from the end
    expr = f"F.one_hot(torch.remainder({idx}.long(), {depth}), {depth}).to({dtype})"
    if (off, on) != (0, 1):
        kind = np.dtype(values_value.dtype.numpy())
        expr = f"{expr} * {literal(on - off, kind)} + {literal(off, kind)}"
    if axis != rank - 1:
        expr = f"({expr}).movedim(-1, {axis})"
    g.emit(expr, batched=g.batched(indices) and axis != 0, comment=True)


@op_converter("TopK")
def top_k(g: CodeGen, node) -> None:
    x, k_value = node.inputs
    k = int(g.need_const(k_value, "k").reshape(-1)[0])
    axis = _axis(node.attributes.get_int("axis", -1), len(g.shape(x)))
    options = []
    if not node.attributes.get_int("largest", 1):
        options.append("largest=False")
    if not node.attributes.get_int("sorted", 1):
        options.append("sorted=False")
    extra = "".join(f", {o}" for o in options)
    g.emit(f"torch.topk({g.ref(x)}, {k}, {axis}{extra})", batched=g.batched(x) and axis != 0,
           comment=True)


_SAMPLING = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest",
             "bicubic": "bicubic", "cubic": "bicubic"}


@op_converter("GridSample")
def grid_sample(g: CodeGen, node) -> None:
    x, grid = node.inputs
    mode = node.attributes.get_string("mode", "bilinear")
    padding = node.attributes.get_string("padding_mode", "zeros")
    if mode not in _SAMPLING or padding not in ("zeros", "border", "reflection"):
        raise ConversionError(f"GridSample mode={mode}, padding_mode={padding} has no "
                              "PyTorch equivalent")
    align = bool(node.attributes.get_int("align_corners", 0))
    g.emit(f'F.grid_sample({g.ref(x)}, {g.ref(grid)}, mode="{_SAMPLING[mode]}", '
           f'padding_mode="{padding}", align_corners={align})', comment=True)


@op_converter("ScatterND")
def scatter_nd(g: CodeGen, node) -> None:
    data, indices, updates = node.inputs[:3]
    if node.attributes.get_string("reduction", "none") != "none":
        raise ConversionError("ScatterND with a reduction has no PyTorch equivalent here")
    # indices (..., k) address the first k dims: index_put with one index tensor per dim
    g.emit(f"torch.index_put({g.ref(data, 'table')}, {g.ref(indices, 'indices')}.unbind(-1), "
           f"{g.ref(updates, 'updates')})", comment=True)
