"""Indexing and type ops: Gather, OneHot, Compress (BooleanMask), Cast."""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter

# caffe2.proto TensorProto.DataType numbers, by ONNX type
_CAFFE2_TYPES = {
    ir.DataType.FLOAT: 1, ir.DataType.INT32: 2, ir.DataType.BOOL: 5, ir.DataType.UINT8: 6,
    ir.DataType.INT8: 7, ir.DataType.UINT16: 8, ir.DataType.INT16: 9, ir.DataType.INT64: 10,
    ir.DataType.FLOAT16: 12, ir.DataType.DOUBLE: 13,
}


@op_converter("Cast")
def cast(w, node):
    # float -> integer truncates toward zero in both (C static_cast, ONNX Cast)
    to = ir.DataType(node.attributes.get_int("to"))
    if to not in _CAFFE2_TYPES:
        raise ConversionError(f"Cast to {to.name} has no Caffe2 equivalent")
    w.simple("Cast", "cast", node, inputs=[w.blob(node.inputs[0])], to=_CAFFE2_TYPES[to])


@op_converter("Gather")
def gather(w, node):
    data, indices = node.inputs
    axis = node.attributes.get_int("axis", 0) % len(w.shape(data))
    # Caffe2's Gather takes the data first, and the axis like ONNX's
    w.simple("Gather", "gather", node, inputs=[w.blob(data), w.blob(indices)],
             axis=axis if axis else None)


@op_converter("OneHot")
def one_hot(w, node):
    """Caffe2's OneHot takes 1-D indices and writes 0/1 floats along a new last axis."""
    indices, depth, values = node.inputs
    off_on = w.const_or_none(values)
    size = w.const_or_none(depth)
    rank = len(w.shape(indices))
    axis = node.attributes.get_int("axis", -1)
    if off_on is None or size is None or list(off_on.reshape(-1)) != [0.0, 1.0] \
            or axis not in (-1, rank):
        raise ConversionError("only OneHot with constant depth, values [0, 1] and a new last "
                              "axis has a Caffe2 equivalent")
    if w.shape(node.outputs[0]) and node.outputs[0].dtype != ir.DataType.FLOAT:
        raise ConversionError("Caffe2's OneHot writes float values only")
    n = int(size.reshape(-1)[0])
    name = w.prefix("onehot")
    flat = f"{name}_indices"
    w.emit("Reshape", [w.blob(indices)], [flat, f"{flat}_old_shape"], shape=[-1])
    size_blob = w.param(np.asarray(n, np.int64), f"{name}_size")
    w.emit("OneHot", [flat, size_blob], [f"{name}_flat"])
    out_shape = list(w.shape(indices)) + [n]
    w.emit("Reshape", [f"{name}_flat"], [name, f"{name}_old_shape"], shape=out_shape)
    w.bind(node.outputs[0], name)


@op_converter("Compress")
def compress(w, node):
    """Compress of a 1-D tensor (or a flattened one) -> BooleanMask."""
    data, condition = node.inputs
    axis = node.attributes.get_int("axis", None) if "axis" in node.attributes else None
    if axis is not None and (len(w.shape(data)) != 1 or axis not in (0, -1)):
        raise ConversionError("only Compress of a 1-D tensor has a Caffe2 equivalent")
    if w.shape(condition) != (int(np.prod(w.shape(data))),):
        raise ConversionError("Compress: Caffe2's BooleanMask needs a mask of every element")
    name = w.prefix("masked")
    blob = w.blob(data)
    if len(w.shape(data)) != 1:
        w.emit("Reshape", [blob], [f"{name}_flat", f"{name}_old_shape"], shape=[-1])
        blob = f"{name}_flat"
    w.emit("BooleanMask", [blob, w.blob(condition)], [name])
    w.bind(node.outputs[0], name)
