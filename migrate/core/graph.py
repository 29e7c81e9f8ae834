"""The common graph: ONNX semantics, held in memory with onnx_ir.

Every reader builds one with `GraphBuilder`; every writer reads an `ir.Model`.
Weights stay numpy arrays wrapped (not copied) by `ir.Tensor`.

Each node carries where it came from in its metadata (`source.path`, e.g.
`model.modules[3]`, and `source.class`, e.g. `cudnn.SpatialConvolution`) so that
errors and layer-by-layer reports can name the source module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
from onnx import shape_inference

from migrate.core.errors import ConversionError, TooLargeError
from migrate.core.formats.onnx import SOURCE_CLASS, SOURCE_PATH

OPSET = 17
IR_VERSION = 8
# Constant inputs up to this many elements are handed to ONNX's per-node shape
# inference (it needs e.g. Reshape's target shape); weights are not.
_SMALL_CONSTANT = 4096
# No single tensor the model computes may need more (a damaged size field in a file,
# e.g. nn.Padding's pad = 2^31, must fail here, not in the verification run).
MAX_TENSOR_BYTES = 8 * 1024**3


class GraphBuilder:
    """Builds an onnx_ir graph node by node, inferring every output's type and shape.

    Shapes are inferred as each node is added (ONNX's own per-node inference), so
    a converter can ask `value.shape` of anything it receives.
    """

    def __init__(self, name: str = "model") -> None:
        self.graph = ir.Graph([], [], nodes=[], opset_imports={"": OPSET}, name=name)
        self._used_names: set[str] = set()
        self._origin: dict[str, str] = {}
        self._constants: dict[tuple, tuple[np.ndarray, ir.Value]] = {}

    # -- naming -----------------------------------------------------------
    def unique_name(self, hint: str) -> str:
        base = hint or "v"
        name, k = base, 1
        while name in self._used_names:
            k += 1
            name = f"{base}_{k}"
        self._used_names.add(name)
        return name

    # -- provenance -------------------------------------------------------
    def set_origin(self, path: str, cls: str) -> None:
        """Tag nodes created from now on as coming from this source module."""
        self._origin = {SOURCE_PATH: path, SOURCE_CLASS: cls}

    # -- graph pieces -----------------------------------------------------
    def add_input(self, name: str, shape: Sequence[int], dtype: ir.DataType = ir.DataType.FLOAT):
        value = ir.Value(
            name=self.unique_name(name), shape=ir.Shape(list(shape)), type=ir.TensorType(dtype)
        )
        check_size(value, f"input '{name}'")
        self.graph.inputs.append(value)
        return value

    def constant(self, array: np.ndarray, hint: str = "const") -> ir.Value:
        """A weight or other constant, stored as an initializer (no copy of `array`)."""
        array = np.asarray(array)
        # The same memory (e.g. a weight shared by two modules) becomes one constant.
        key = (array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str)
        if array.size > 1 and key in self._constants:
            return self._constants[key][1]
        tensor = ir.Tensor(array, name=None)
        value = ir.Value(
            name=self.unique_name(hint),
            shape=ir.Shape(list(array.shape)),
            type=ir.TensorType(tensor.dtype),
            const_value=tensor,
        )
        tensor.name = value.name
        self.graph.register_initializer(value)
        self._constants[key] = (array, value)  # keeps the array (and its address) alive
        return value

    def int64s(self, values: Sequence[int], hint: str = "shape") -> ir.Value:
        return self.constant(np.asarray(list(values), dtype=np.int64), hint)

    def op(
        self,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        attributes: Mapping[str, Any] | None = None,
        *,
        num_outputs: int = 1,
        hint: str | None = None,
    ) -> ir.Value:
        """Append one ONNX node; returns its (first) output with type and shape set."""
        node = ir.node(
            op_type,
            list(inputs),
            dict(attributes or {}),
            num_outputs=num_outputs,
            metadata_props=dict(self._origin),
        )
        base = hint or op_type.lower()
        node.name = self.unique_name(f"{base}_node")
        for out in node.outputs:
            out.name = self.unique_name(base)
        self.graph.append(node)
        infer_node(node)
        if op_type == "Reshape":
            check_reshape(node)
        for out in node.outputs:
            check_size(out)
        return node.outputs[0]

    def set_outputs(self, values: Sequence[ir.Value]) -> None:
        self.graph.outputs.clear()
        seen: set[int] = set()
        for v in values:
            if id(v) in seen or v.is_graph_input() or v.const_value is not None:
                # An output must be produced by a node of its own: give it one.
                v = self.op("Identity", [v], hint="output")
            seen.add(id(v))
            self.graph.outputs.append(v)

    def model(self, producer: str = "torch7-migrate") -> ir.Model:
        return ir.Model(self.graph, ir_version=IR_VERSION, producer_name=producer)


def node_origin(node: ir.Node) -> str | None:
    """`model.modules[3] (cudnn.SpatialConvolution)` for a node made from a source module."""
    meta = node.metadata_props
    if SOURCE_PATH not in meta:
        return None
    return f"{meta[SOURCE_PATH]} ({meta.get(SOURCE_CLASS, '')})"


def static_shape(value: ir.Value) -> tuple[int, ...]:
    """The value's shape as ints; fails clearly when a dimension is unknown."""
    if value.shape is None or not all(isinstance(d, int) for d in value.shape):
        raise ConversionError(f"shape of {value.name} is not known statically ({value.shape})")
    return tuple(int(d) for d in value.shape)


def check_size(value: ir.Value, what: str = "its output") -> None:
    if value.shape is None or value.dtype is None:
        return
    dims = [d for d in value.shape if isinstance(d, int)]
    if any(d < 0 for d in dims):
        # ONNX's inference lets e.g. a pooling window larger than its input through
        raise ConversionError(f"{what} would have the negative shape {list(value.shape)} "
                              "(a window or size larger than its input)")
    if value.dtype in (ir.DataType.STRING, ir.DataType.UNDEFINED):
        raise ConversionError(f"{what} holds {value.dtype.name.lower()} values: only numeric "
                              "tensors can be converted")
    nbytes = math.prod(dims) * int(value.dtype.itemsize)
    if nbytes > MAX_TENSOR_BYTES:
        raise TooLargeError(
            f"{what} of shape {list(value.shape)} would need {nbytes / 1e9:,.1f} GB, over "
            f"the {MAX_TENSOR_BYTES >> 30} GiB one tensor may take (a damaged size field, or "
            "pass a smaller --input-shape)")


def check_reshape(node: ir.Node) -> None:
    """A Reshape whose element count cannot match its input's is an error here, whichever
    reader made it: ONNX's inference lets it through (it fails only when run). `elements`
    (input values, values the target shape takes) tells a guessed input size how far off
    it is."""
    data, target = node.inputs[0], node.inputs[1]
    if data is None or target is None or target.const_value is None or data.shape is None \
            or not all(isinstance(d, int) for d in data.shape):
        return
    dims = [int(d) for d in target.const_value.numpy().reshape(-1)]
    allow_zero = node.attributes.get_int("allowzero", 0)
    if not allow_zero:  # 0 copies the input's dimension at that index
        dims = [data.shape[i] if d == 0 and i < len(data.shape) else d
                for i, d in enumerate(dims)]
    have = math.prod(data.shape)
    fixed = math.prod(d for d in dims if d != -1)
    if (-1 in dims and fixed and have % fixed) or (-1 not in dims and fixed != have):
        error = ConversionError(f"cannot reshape {list(data.shape)} ({have:,} values) to "
                                f"{dims}")
        error.elements = (have, fixed)
        raise error


def infer_node(node: ir.Node) -> None:
    """Set the node's output types and shapes with ONNX's per-node inference."""
    proto = ir.serde.serialize_node(node)
    input_types: dict[str, onnx.TypeProto] = {}
    input_data: dict[str, onnx.TensorProto] = {}
    for value in node.inputs:
        if value is None:
            continue
        input_types[value.name] = _type_proto(value)
        const = value.const_value
        if const is not None and const.size <= _SMALL_CONSTANT:
            input_data[value.name] = ir.serde.serialize_tensor(const)
    try:
        schema = onnx.defs.get_schema(node.op_type, OPSET, node.domain)
    except onnx.defs.SchemaError:
        domain = f"{node.domain}::" if node.domain else ""
        raise ConversionError(f"{domain}{node.op_type} is not an ONNX operator of opset "
                              f"{OPSET} (a custom or newer operator)") from None
    try:
        inferred = shape_inference.infer_node_outputs(
            schema, proto, input_types, input_data,
            opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        )
    except Exception as exc:  # onnx raises its own InferenceError, or RuntimeError
        raise ConversionError(f"{node.op_type}: {exc}".splitlines()[0]) from None
    for out in node.outputs:
        tp = inferred.get(out.name)
        if tp is None or not tp.HasField("tensor_type"):
            continue
        out.type = ir.TensorType(ir.DataType(tp.tensor_type.elem_type))
        if tp.tensor_type.HasField("shape"):
            dims = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in tp.tensor_type.shape.dim
            ]
            out.shape = ir.Shape(dims)


def _type_proto(value: ir.Value) -> onnx.TypeProto:
    dtype = value.dtype if value.dtype is not None else ir.DataType.FLOAT
    dims = None if value.shape is None else [d if isinstance(d, int) else None for d in value.shape]
    return onnx.helper.make_tensor_type_proto(int(dtype), dims)


def to_proto(model: ir.Model) -> onnx.ModelProto:
    return ir.serde.serialize_model(model)
