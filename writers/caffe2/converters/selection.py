"""Selecting values by rank or position: TopK, GatherElements."""

import math

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter

_FLOAT, _INT64 = 1, 10  # caffe2.proto TensorProto.DataType
_TYPES = {ir.DataType.INT64: _INT64, ir.DataType.INT32: 2, ir.DataType.DOUBLE: 13}


@op_converter("TopK")
def top_k(w, node):
    """Caffe2's TopK: the k largest along an axis, sorted, ties to the lower index (as
    ONNX's). The k smallest are the k largest of the negated values; other types than
    float go through float (exact for integers below 2^24, e.g. positions)."""
    x, k = node.inputs
    count = w.const_or_none(k)
    if count is None:
        raise ConversionError("TopK with a computed k has no Caffe2 equivalent")
    rank = len(w.shape(x))
    axis = node.attributes.get_int("axis", -1) % rank
    largest = node.attributes.get_int("largest", 1)
    name = w.prefix("topk")
    blob = w.blob(x)
    dtype = x.dtype
    if dtype != ir.DataType.FLOAT:
        if dtype not in _TYPES:
            raise ConversionError(f"TopK of {dtype.name} values has no Caffe2 equivalent")
        w.note("TopK of integer values -> Cast to float, TopK (Caffe2's TopK takes floats)")
        w.emit("Cast", [blob], [f"{name}_float"], to=_FLOAT)
        blob = f"{name}_float"
    if not largest:
        w.emit("Negative", [blob], [f"{name}_negated"])
        blob = f"{name}_negated"
    values = name if largest and dtype == ir.DataType.FLOAT else f"{name}_values"
    w.emit("TopK", [blob], [values, f"{name}_indices"], k=int(count.reshape(-1)[0]),
           axis=axis)
    if not largest:
        out = name if dtype == ir.DataType.FLOAT else f"{name}_smallest"
        w.emit("Negative", [values], [out])
        values = out
    if dtype != ir.DataType.FLOAT:
        w.emit("Cast", [values], [name], to=_TYPES[dtype])
    w.bind(node.outputs[0], name)
    if len(node.outputs) > 1:
        w.bind(node.outputs[1], f"{name}_indices")


@op_converter("GatherElements")
def gather_elements(w, node):
    """out[i] = data[i with its `axis` coordinate replaced by indices[i]]: a Gather from
    the flattened data at flat positions (shapes are static; indices must be >= 0)."""
    data, indices = node.inputs
    shape, index_shape = list(w.shape(data)), list(w.shape(indices))
    rank = len(shape)
    axis = node.attributes.get_int("axis", 0) % rank
    steps = [math.prod(shape[a + 1:]) for a in range(rank)]
    name = w.prefix("gather_elements")
    w.note("GatherElements -> flat positions + Gather")
    position = w.blob(indices)
    if indices.dtype != ir.DataType.INT64:
        w.emit("Cast", [position], [f"{name}_at"], to=_INT64)
        position = f"{name}_at"
    if steps[axis] != 1:
        w.emit("Mul", [position, w.param(np.asarray([steps[axis]], np.int64), f"{name}_step")],
               [f"{name}_along"])
        position = f"{name}_along"
    for a in range(rank):
        if a == axis or index_shape[a] == 1:
            continue
        layout = [1] * rank
        layout[a] = index_shape[a]
        offsets = (np.arange(index_shape[a], dtype=np.int64) * steps[a]).reshape(layout)
        w.emit("Add", [position, w.param(offsets, f"{name}_offset{a}")], [f"{name}_pos{a}"])
        position = f"{name}_pos{a}"
    w.emit("Reshape", [w.blob(data)], [f"{name}_flat", f"{name}_flat_shape"], shape=[-1])
    w.emit("Gather", [f"{name}_flat", position], [name])
    w.bind(node.outputs[0], name)
