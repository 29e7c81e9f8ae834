"""Common graph -> Caffe2 `init_net` + `predict_net`, named the way brew names blobs.

The pair has the layout Caffe2's `mobile_exporter` produces and its (mobile)
Predictor loads: `init_net` holds one `GivenTensorFill` per parameter (plus a
placeholder fill for each input), `predict_net` holds the operators, NCHW, CPU,
with `external_input` = inputs then parameters and `external_output` = outputs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir
from google.protobuf import text_format

import migrate.writers.caffe2.converters  # noqa: F401  (registers every op converter)
from migrate.core.errors import ConversionError, MigrateError
from migrate.core.formats import caffe2_pb2
from migrate.core.graph import SOURCE_PATH, node_origin, static_shape
from migrate.core.model import WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.writers.caffe2.packed import init_net_bytes, init_net_chunks
from migrate.writers.caffe2.registry import lookup

CPU = 0


@dataclass
class Caffe2Nets:
    init_net: caffe2_pb2.NetDef
    predict_net: caffe2_pb2.NetDef
    inputs: list[str]
    outputs: list[str]
    # blob name of the output of each source module (path -> blob), for reports
    module_blobs: dict[str, str] = field(default_factory=dict)
    # how ops without a one-to-one Caffe2 operator were expressed
    notes: list[str] = field(default_factory=list)
    # float32 values of the init net's GivenTensorFill ops, by blob (kept out of
    # `init_net` so that weights are never copied into protobuf objects)
    param_values: dict[str, np.ndarray] = field(default_factory=dict)

    def init_net_bytes(self) -> bytes:
        return init_net_bytes(self.init_net, self.param_values)

    def full_init_net(self) -> caffe2_pb2.NetDef:
        """The init net with every value filled in (copies the weights: small nets only)."""
        return caffe2_pb2.NetDef.FromString(self.init_net_bytes())


def make_arg(name: str, value: Any) -> caffe2_pb2.Argument:
    arg = caffe2_pb2.Argument(name=name)
    if isinstance(value, bool | int | np.integer):
        arg.i = int(value)
    elif isinstance(value, float | np.floating):
        arg.f = float(value)
    elif isinstance(value, str | bytes):
        arg.s = value.encode() if isinstance(value, str) else value
    elif isinstance(value, np.ndarray) and value.dtype == np.float32:
        arg.floats.extend(value.reshape(-1))
    else:
        items = list(value)
        if all(isinstance(v, int | np.integer) for v in items):
            arg.ints.extend(int(v) for v in items)
        elif all(isinstance(v, float | int | np.number) for v in items):
            arg.floats.extend(float(v) for v in items)
        else:
            arg.strings.extend(v.encode() if isinstance(v, str) else v for v in items)
    return arg


class NetWriter:
    """State while emitting one pair of nets; handed to every op converter."""

    def __init__(self, model: ir.Model, name: str, optimize: bool = False) -> None:
        self.model = model
        # fast export: in-place activations, NNPACK convolutions where exact enough
        self.optimize = optimize
        self.init_net = caffe2_pb2.NetDef(name=f"{name}_init")
        self.predict_net = caffe2_pb2.NetDef(name=name)
        for net in (self.init_net, self.predict_net):
            net.device_option.device_type = CPU
        self._blobs: dict[int, str] = {}
        self._counters: Counter[str] = Counter()
        self._taken: set[str] = set()
        self.params: list[str] = []
        self.node: ir.Node | None = None
        self.module_blobs: dict[str, str] = {}
        self.notes: list[str] = []
        self.param_values: dict[str, np.ndarray] = {}

    def note(self, text: str) -> None:
        """Record a fix-up (an op expressed as a sequence, a workaround) once."""
        if text not in self.notes:
            self.notes.append(text)

    # -- names ------------------------------------------------------------------
    def prefix(self, kind: str) -> str:
        """The next brew-style name for an op kind: conv1, conv2, relu1, ..."""
        while True:
            self._counters[kind] += 1
            name = f"{kind}{self._counters[kind]}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def reserve(self, name: str) -> str:
        if name in self._taken:
            raise ConversionError(f"blob name {name} used twice")
        self._taken.add(name)
        return name

    # -- values ------------------------------------------------------------------
    def bind(self, value: ir.Value, blob: str) -> str:
        self._blobs[id(value)] = blob
        return blob

    def blob(self, value: ir.Value) -> str:
        """The blob holding a value; constants become parameters on first use."""
        name = self._blobs.get(id(value))
        if name is None:
            if value.const_value is None:
                raise ConversionError(f"value {value.name} is used before it is produced")
            name = self.param(self.const(value), self.prefix("const"))
            self.bind(value, name)
        return name

    @staticmethod
    def const(value: ir.Value) -> np.ndarray:
        if value.const_value is None:
            raise ConversionError(f"{value.name} must be a constant")
        return np.asarray(value.const_value.numpy())

    def const_or_none(self, value: ir.Value | None) -> np.ndarray | None:
        return None if value is None or value.const_value is None else self.const(value)

    @staticmethod
    def shape(value: ir.Value) -> tuple[int, ...]:
        return static_shape(value)

    def param_value(self, value: ir.Value, name: str) -> str:
        """A constant graph value as a parameter; a value used twice is stored once."""
        blob = self._blobs.get(id(value))
        if blob is None:
            blob = self.bind(value, self.param(self.const(value), name))
        return blob

    def param(self, array: np.ndarray, name: str) -> str:
        """Store a parameter in the init net (one GivenTensorFill) and return its blob."""
        array = np.asarray(array)
        if array.dtype == np.float32:
            fill = "GivenTensorFill"
        elif array.dtype == np.int64:
            fill = "GivenTensorInt64Fill"
        elif array.dtype == np.int32:
            fill = "GivenTensorIntFill"
        else:
            array, fill = array.astype(np.float32), "GivenTensorFill"
        self._taken.add(name)
        op = self.init_net.op.add(type=fill, output=[name])
        op.arg.append(make_arg("shape", list(array.shape)))
        if fill == "GivenTensorFill":
            # float weights are streamed from the array itself when the net is written
            self.param_values[name] = array
        else:
            op.arg.add(name="values").ints.extend(array.reshape(-1).tolist())
        self.params.append(name)
        return name

    # -- ops -----------------------------------------------------------------------
    def emit(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str],
             engine: str = "", **args: Any) -> caffe2_pb2.OperatorDef:
        op = self.predict_net.op.add(type=op_type, input=list(inputs), output=list(outputs))
        if engine:
            op.engine = engine
        for key, value in args.items():
            if value is not None:
                op.arg.append(make_arg(key, value))
        origin = node_origin(self.node) if self.node is not None else None
        if origin:
            op.debug_info = origin
        return op

    def simple(self, op_type: str, kind: str, node: ir.Node, inputs: Sequence[str] | None = None,
               **args: Any) -> str:
        """One Caffe2 op for one single-output node, output blob named by kind."""
        name = self.prefix(kind)
        ins = [self.blob(v) for v in node.inputs if v is not None] if inputs is None else inputs
        self.emit(op_type, ins, [name], **args)
        return self.bind(node.outputs[0], name)

    def activation(self, op_type: str, kind: str, node: ir.Node, **args: Any) -> str:
        """An element-wise op, computed in place (brew's `relu(conv1, conv1)`) when the
        input is an intermediate blob that nothing else reads."""
        x = node.inputs[0]
        if self.optimize and self._private(x):
            blob = self.blob(x)
            self.emit(op_type, [blob], [blob], **args)
            return self.bind(node.outputs[0], blob)
        return self.simple(op_type, kind, node, inputs=[self.blob(x)], **args)

    def _private(self, value: ir.Value) -> bool:
        return (len(value.uses()) == 1 and not value.is_graph_input()
                and not value.is_graph_output() and value.const_value is None
                and self._blobs.get(id(value)) not in self.params)


def build_nets(model: ir.Model, name: str | None = None, optimize: bool = False) -> Caffe2Nets:
    """Translate the common graph into the two NetDefs (nothing is written).

    `optimize` lets activations overwrite their input blob (brew's in-place style)
    and runs suitable convolutions on the NNPACK engine (Caffe2's mobile CPU engine)."""
    graph = model.graph
    writer = NetWriter(model, name or graph.name or "model", optimize)
    input_names = []
    for i, value in enumerate(graph.inputs):
        blob = "data" if len(graph.inputs) == 1 else f"data{i + 1}"
        input_names.append(writer.bind(value, writer.reserve(blob)))
    for node in graph:
        convert = lookup(node.op_type)
        meta = node.metadata_props
        where = node_origin(node)
        if convert is None:
            raise ConversionError(f"Caffe2 writer has no converter for ONNX op {node.op_type}",
                                  where=where)
        writer.node = node
        try:
            convert(writer, node)
        except MigrateError as exc:
            exc.where = exc.where or where
            raise
        except MemoryError:
            raise
        except Exception as exc:  # an op the writer's converter did not expect
            raise ConversionError(
                f"Caffe2 writer failed on {node.op_type}: {type(exc).__name__}: {exc}"[:500],
                where=where) from exc
        if SOURCE_PATH in meta:
            writer.module_blobs[meta[SOURCE_PATH]] = writer.blob(node.outputs[0])
    output_names = [writer.blob(v) for v in graph.outputs]
    _export_layout(writer, input_names, output_names, [v.dtype for v in graph.inputs])
    return Caffe2Nets(writer.init_net, writer.predict_net, input_names, output_names,
                      writer.module_blobs, writer.notes, writer.param_values)


# placeholder fill of an input of each type (its fill also tells a reader the type)
_PLACEHOLDER_FILLS = {ir.DataType.INT64: "GivenTensorInt64Fill",
                      ir.DataType.INT32: "GivenTensorIntFill",
                      ir.DataType.BOOL: "GivenTensorBoolFill"}


def _export_layout(writer: NetWriter, inputs: list[str], outputs: list[str],
                   dtypes: list) -> None:
    """Arrange inputs/outputs as Caffe2's mobile_exporter does."""
    for name, dtype in zip(inputs, dtypes, strict=True):
        # Placeholder so the blob exists once the init net ran; the caller overwrites it.
        fill = _PLACEHOLDER_FILLS.get(dtype, "GivenTensorFill")
        op = writer.init_net.op.add(type=fill, output=[name])
        op.arg.append(make_arg("shape", [1, 1]))
        if fill == "GivenTensorFill":
            writer.param_values[name] = np.zeros(1, np.float32)
        else:
            op.arg.add(name="values").ints.append(0)
    writer.predict_net.external_input.extend(inputs + writer.params)
    writer.predict_net.external_output.extend(outputs)


def output_paths(out_dir: str, stem: str) -> dict[str, str]:
    return {
        "init_net": os.path.join(out_dir, f"{stem}_init_net.pb"),
        "predict_net": os.path.join(out_dir, f"{stem}_predict_net.pb"),
        "predict_net_text": os.path.join(out_dir, f"{stem}_predict_net.pbtxt"),
    }


def write_caffe2(nets: Caffe2Nets, out_dir: str, stem: str) -> dict[str, str]:
    """Write the pair (and the readable pbtxt) atomically; returns the paths."""
    paths = output_paths(out_dir, stem)
    write_atomically({
        paths["init_net"]: init_net_chunks(nets.init_net, nets.param_values),
        paths["predict_net"]: nets.predict_net.SerializeToString(),
        paths["predict_net_text"]: text_format.MessageToString(nets.predict_net).encode(),
    })
    return paths


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    nets = build_nets(model, stem, optimize=options.optimize)
    return WriteResult(write_caffe2(nets, out_dir, stem), nets.notes)


def recognize(paths: list[str]) -> dict[str, str] | None:
    """Two NetDef files (an init net and a predict net, in either order)."""
    from migrate.core.formats.caffe2 import classify_pair
    from migrate.core.sniff import protobuf_kind, read_head, text_protobuf_kind

    if len(paths) != 2:
        return None
    for path in paths:
        head = read_head(path).head
        if protobuf_kind(head) != "netdef" and text_protobuf_kind(head) != "netdef":
            return None
    return classify_pair(paths)
