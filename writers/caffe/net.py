"""The state of one Caffe net being built from the common graph.

`NetBuilder` keeps the layers in order (each a LayerParameter without blobs, its
parameter arrays, and the source layer it stands for), the blob that holds every
graph value, and the static shape of every blob. Converters add layers with
`layer(...)`; the helpers in `constructs.py` build the multi-layer expressions
(crops, explicit padding, gathers, broadcasting) from the same call.

Names: a layer and its top share one name, derived from the source layer (a Torch7
module path such as `model.modules[3]` becomes `model_modules_3`, an ONNX node or a
Caffe layer keeps its name) and made unique.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.core.formats import caffe_pb2
from migrate.core.graph import SOURCE_CLASS, SOURCE_PATH, static_shape

Shape = tuple[int, ...]

# Caffe blobs are float32; a constant operand bigger than this is refused rather than
# stored (a broadcast materialised from a tiny constant, a damaged shape)
MAX_MATERIALISED = 1 << 24


@dataclass
class Layer:
    proto: caffe_pb2.LayerParameter  # without blobs: those stay numpy arrays
    blobs: list[np.ndarray]
    source: tuple[str, str] | None  # (source path, source class) it was made for


_INVALID = re.compile(r"[^A-Za-z0-9_\-/]+")


def caffe_name(text: str, fallback: str = "layer") -> str:
    """A layer/blob name from a source name: `model.modules[3]` -> `model_modules_3`,
    `conv1/7x7_s2` and `conv4-2` unchanged."""
    name = _INVALID.sub("_", text.replace("[", "_").replace("]", "_")).strip("_/")
    name = re.sub(r"_{2,}", "_", name)
    return name or fallback


def set_fields(message: Any, fields: Mapping[str, Any]) -> None:
    """Fill a protobuf message from a dict: nested dicts are sub-messages, lists are
    repeated fields, strings name enum values."""
    for key, value in fields.items():
        if value is None:
            continue
        field = message.DESCRIPTOR.fields_by_name[key]
        if isinstance(value, Mapping):
            set_fields(getattr(message, key), value)
        elif isinstance(value, list | tuple):
            target = getattr(message, key)
            for item in value:
                if isinstance(item, Mapping):
                    set_fields(target.add(), item)
                else:
                    target.append(_scalar(field, item))
        else:
            setattr(message, key, _scalar(field, value))


def _scalar(field, value):
    if field.enum_type is not None and isinstance(value, str):
        return field.enum_type.values_by_name[value].number
    if isinstance(value, np.generic):
        return value.item()
    return value


class NetBuilder:
    """Layers, blob names and blob shapes of the Caffe net being written."""

    def __init__(self, model: ir.Model, name: str) -> None:
        self.model = model
        self.name = name
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.shapes: dict[str, Shape] = {}  # blob -> static shape
        self.masks: set[str] = set()  # blobs holding 0/1 comparison results
        self.inputs: list[str] = []
        self._blobs: dict[int, str] = {}  # id(graph value) -> blob
        self._taken: set[str] = set()
        self.node: ir.Node | None = None
        self._base = "layer"
        self._final = True

    # -- notes and names ------------------------------------------------------------------
    def note(self, text: str) -> None:
        """Record how something was expressed (shown in the summary), once."""
        if text not in self.notes:
            self.notes.append(text)

    def unique(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self._taken:
            k += 1
            candidate = f"{name}_{k}"
        self._taken.add(candidate)
        return candidate

    def start_node(self, node: ir.Node, last_of_source: bool = True) -> None:
        """Layers from now on stand for `node`. A source layer made of several nodes
        names its layers after the node's op, except the last node's output layer,
        which gets the source layer's own name."""
        self.node = node
        meta = node.metadata_props
        self._base = caffe_name(meta.get(SOURCE_PATH) or node.name or node.op_type.lower(),
                                node.op_type.lower())
        self._final = last_of_source

    def start_named(self, base: str) -> None:
        """Layers from now on stand for no source layer (inputs, silencing)."""
        self.node = None
        self._base = base
        self._final = True

    @property
    def base(self) -> str:
        return self._base

    @property
    def final(self) -> bool:
        return self._final

    def taken(self, name: str) -> bool:
        return name in self._taken

    def name_for(self, kind: str | None) -> str:
        """A fresh layer name for the current node: its source name, or that name with
        the layer's kind when the node needs several layers."""
        if kind is None and self._final and self._base not in self._taken:
            return self.unique(self._base)
        if kind is None:
            kind = self.node.op_type.lower() if self.node is not None else "out"
        return self.unique(f"{self._base}_{kind}")

    @property
    def source(self) -> tuple[str, str] | None:
        meta = self.node.metadata_props if self.node is not None else {}
        if SOURCE_PATH not in meta:
            return None
        return meta[SOURCE_PATH], meta.get(SOURCE_CLASS, "")

    # -- graph values -------------------------------------------------------------------
    def bind(self, value: ir.Value, blob: str) -> str:
        self._blobs[id(value)] = blob
        return blob

    def bound(self, value: ir.Value) -> bool:
        return id(value) in self._blobs

    def blob(self, value: ir.Value) -> str:
        """The blob holding a value; a constant used as data becomes a Parameter layer."""
        name = self._blobs.get(id(value))
        if name is None:
            if value.const_value is None:
                raise ConversionError(f"value {value.name} is used before it is produced")
            array = self.const(value)
            name = self.parameter(array, "const")
            self.bind(value, name)
        return name

    @staticmethod
    def const(value: ir.Value | None) -> np.ndarray:
        if value is None or value.const_value is None:
            name = value.name if value is not None else "an input"
            raise ConversionError(f"{name} must be a constant for Caffe (a computed weight, "
                                  "shape or size has no Caffe layer)")
        return np.asarray(value.const_value.numpy())

    @staticmethod
    def const_or_none(value: ir.Value | None) -> np.ndarray | None:
        if value is None or value.const_value is None:
            return None
        return np.asarray(value.const_value.numpy())

    @staticmethod
    def value_shape(value: ir.Value) -> Shape:
        return static_shape(value)

    def shape(self, blob: str) -> Shape:
        return self.shapes[blob]

    # -- layers -------------------------------------------------------------------------
    def layer(self, type_: str, bottoms: Sequence[str], shape: Sequence[int] | None = None, *,
              kind: str | None = None, blobs: Sequence[np.ndarray] = (), **params: Any) -> str:
        """Append a one-top layer; returns its top. `shape` is what it computes (as the
        graph says); `params` are the layer's `*_param` messages as dicts."""
        return self.layer_tops(type_, bottoms, [shape] if shape is not None else [],
                               kind=kind, blobs=blobs, **params)[0]

    def layer_tops(self, type_: str, bottoms: Sequence[str], shapes: Sequence[Sequence[int]],
                   *, kind: str | None = None, blobs: Sequence[np.ndarray] = (),
                   main: int | None = 0, **params: Any) -> list[str]:
        """Append a layer with one top per shape in `shapes` (none for Silence). The
        top `main` is named like the layer (Caffe's convention, and what tools that
        address outputs by layer name need), the others after it."""
        name = self.name_for(kind)
        tops = [name if k == main else self.unique(f"{name}_{k}") for k in range(len(shapes))]
        proto = caffe_pb2.LayerParameter(name=name, type=type_, bottom=list(bottoms),
                                         top=tops)
        set_fields(proto, params)
        for top, top_shape in zip(tops, shapes, strict=True):
            self.shapes[top] = tuple(int(d) for d in top_shape)
        self.layers.append(Layer(proto, [self._caffe_array(b) for b in blobs], self.source))
        return tops or [name]

    def output(self, type_: str, bottoms: Sequence[str], kind: str | None = None,
               blobs: Sequence[np.ndarray] = (), **params: Any) -> str:
        """A layer computing the current node's (single) output, bound to it."""
        assert self.node is not None
        value = self.node.outputs[0]
        top = self.layer(type_, bottoms, self.value_shape(value), kind=kind, blobs=blobs,
                         **params)
        return self.bind(value, top)

    @staticmethod
    def _caffe_array(array: np.ndarray) -> np.ndarray:
        array = np.asarray(array)
        if array.dtype != np.float32:
            if not np.issubdtype(array.dtype, np.number):
                raise ConversionError(f"{array.dtype} parameters cannot be stored in Caffe")
            array = array.astype(np.float32)
        return array

    def parameter(self, array: np.ndarray, kind: str) -> str:
        """A constant tensor as data: a Parameter layer holding it."""
        array = np.asarray(array)
        if array.size > MAX_MATERIALISED:
            raise ConversionError(f"a constant of shape {list(array.shape)} is too large to "
                                  "store as a Caffe Parameter layer")
        return self.layer("Parameter", [], array.shape, kind=kind, blobs=[array],
                          parameter_param={"shape": {"dim": list(array.shape)}})

    def origin(self) -> str | None:
        if self.node is None:
            return None
        meta = self.node.metadata_props
        if SOURCE_PATH in meta:
            return f"{meta[SOURCE_PATH]} ({meta.get(SOURCE_CLASS, '')})"
        return f"{self.node.name or 'node'} ({self.node.op_type})"

    def rename(self, old: str, new: str, since: int = 0) -> None:
        """Give a blob (and the layer named like it) another name, in the layers from
        index `since` on (the blob's producer and every reader are among them)."""
        for layer in self.layers[since:]:
            proto = layer.proto
            if proto.name == old:
                proto.name = new
            for names in (proto.top, proto.bottom):
                for i, blob in enumerate(names):
                    if blob == old:
                        names[i] = new
        self.shapes[new] = self.shapes.pop(old)
        if old in self.masks:
            self.masks.discard(old)
            self.masks.add(new)
        self.inputs = [new if b == old else b for b in self.inputs]
        for key, blob in list(self._blobs.items()):
            if blob == old:
                self._blobs[key] = new
        self._taken.add(new)
