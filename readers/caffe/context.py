"""What a Caffe layer converter works with: graph building, the layer's blobs (checked
the way Caffe checks them when it copies trained weights in), shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError, CorruptFileError, UsageError
from migrate.core.formats import caffe_pb2
from migrate.core.graph import GraphBuilder, static_shape
from migrate.readers.caffe.weights import Blob


def canonical_axis(axis: int, rank: int, what: str = "axis") -> int:
    """Blob::CanonicalAxisIndex: negative axes count from the end."""
    if not -rank <= axis < rank:
        raise ConversionError(f"{what} {axis} is out of range for a {rank}-D blob")
    return axis % rank


class LayerContext:
    """The build context of one layer."""

    def __init__(self, builder: GraphBuilder, layer: caffe_pb2.LayerParameter,
                 stored: list[Blob] | None, text: str = "") -> None:
        self.builder = builder
        self.layer = layer
        self.stored = stored  # the caffemodel's blobs of this layer (None: no such layer)
        self.text = text  # the layer's block in a text prototxt (plugins may parse it)
        self.notes: list[str] = []

    # -- graph helpers ---------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[ir.Value | None], hint: str | None = None,
           num_outputs: int = 1, **attributes: Any) -> ir.Value:
        return self.builder.op(op_type, inputs, attributes, hint=hint or self.hint,
                               num_outputs=num_outputs)

    def outputs(self, op_type: str, inputs: Sequence[ir.Value | None], num_outputs: int,
                **attributes: Any) -> list[ir.Value]:
        first = self.op(op_type, inputs, num_outputs=num_outputs, **attributes)
        node = first.producer()
        assert node is not None
        return list(node.outputs)

    def const(self, array: Any, hint: str = "const") -> ir.Value:
        return self.builder.constant(np.asarray(array), f"{self.hint}_{hint}")

    def scalar(self, value: float) -> ir.Value:
        return self.builder.constant(np.asarray(value, dtype=np.float32), f"{self.hint}_k")

    def int64s(self, values: Sequence[int], hint: str = "shape") -> ir.Value:
        return self.builder.int64s(values, f"{self.hint}_{hint}")

    def shape(self, value: ir.Value) -> tuple[int, ...]:
        return static_shape(value)

    def reshape(self, value: ir.Value, shape: Sequence[int]) -> ir.Value:
        if tuple(shape) == self.shape(value):
            return value
        return self.op("Reshape", [value, self.int64s(list(shape))])

    @property
    def hint(self) -> str:
        top = self.layer.top[0] if self.layer.top else self.layer.name
        return "".join(c if c.isalnum() or c in "_." else "_" for c in top) or "v"

    # -- the layer ---------------------------------------------------------------------------
    def param(self, name: str):
        """The layer's parameter message (defaults when absent)."""
        return getattr(self.layer, name)

    def needs_bottoms(self, bottoms: Sequence[ir.Value], low: int, high: int | None = None
                      ) -> None:
        high = low if high is None else high
        if not low <= len(bottoms) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise ConversionError(f"takes {want} bottom blob(s), has {len(bottoms)}")

    def blob_count(self) -> int:
        if self.stored is None:
            return len(self.layer.blobs)
        return len(self.stored)

    def blobs(self, *shapes: Sequence[int]) -> list[np.ndarray]:
        """The layer's trained blobs, as many as `shapes` and of those shapes (legacy
        4-D shapes are matched from the end, as Blob::ShapeEquals does)."""
        stored = self.stored
        if stored is None:
            if not self.layer.blobs:
                raise UsageError(f"has no weights in the caffemodel (no layer named "
                                 f"'{self.layer.name}' there): give the caffemodel trained "
                                 "for this definition")
            stored = [_definition_blob(b) for b in self.layer.blobs]
        if len(stored) != len(shapes):
            raise CorruptFileError(f"the caffemodel holds {len(stored)} blob(s) for this layer; "
                                   f"it needs {len(shapes)} (Caffe: 'Incompatible number of "
                                   "blobs')")
        arrays = []
        for k, (blob, shape) in enumerate(zip(stored, shapes, strict=True)):
            target = [int(d) for d in shape]
            if not blob.fits(target):
                raise CorruptFileError(f"blob {k} has shape {blob.declared} in the caffemodel; "
                                       f"the layer needs {target} (Caffe: 'shape mismatch'; "
                                       "are both files of the same model?)")
            arrays.append(blob.as_shape(target))
        return arrays

    def stored_shapes(self) -> list[list[int]]:
        if self.stored is None:
            return [_definition_blob(b).declared for b in self.layer.blobs]
        return [b.declared for b in self.stored]


def _definition_blob(proto: caffe_pb2.BlobProto) -> Blob:
    """A blob written into the definition itself (text prototxts rarely do this)."""
    values = proto.double_data if len(proto.double_data) else proto.data
    data = np.asarray(values, dtype=np.float32)
    legacy = None
    if any(proto.HasField(f) for f in ("num", "channels", "height", "width")):
        legacy = (proto.num, proto.channels, proto.height, proto.width)
    shape = None if legacy else list(proto.shape.dim)
    count = int(np.prod(legacy if legacy else shape or [], dtype=np.int64))
    if count != data.size:
        raise CorruptFileError(f"a blob in the definition has {data.size} values for shape "
                               f"{list(legacy or shape or [])}")
    return Blob(data, shape, legacy)
