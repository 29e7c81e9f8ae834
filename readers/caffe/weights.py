"""Caffe weights (.caffemodel, a binary NetParameter) without copying them.

protobuf would copy every blob into the parsed message (and the message into Python
floats on access). Instead the file is memory-mapped and its field headers are walked:
each blob's packed float `data` becomes a numpy view of the mapping, so a 500 MB
caffemodel costs page cache, not heap, and writers can copy its bytes file to file.

Layers are matched to the definition by name, as Net::CopyTrainedLayersFrom does; the
current (`layer`), V1 (`layers`) and V0 (`layers { layer {...} }`) encodings are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from migrate.core.errors import CorruptFileError, TooLargeError
from migrate.core.mapped import ByteBudget, map_file
from migrate.core.protowire import checked_fields, packed_varints
from migrate.core.sniff import FIXED32, FIXED64, LEN, VARINT, WireField

MAX_FIELDS = 10_000_000

# NetParameter: layers (V1) 2, layer 100. LayerParameter: name 1, type 2, blobs 7.
# V1LayerParameter: layer (V0) 1, name 4, type 5 (enum), blobs 6.
# V0LayerParameter: name 1, type 2, blobs 50.
# BlobProto: num 1, channels 2, height 3, width 4, data 5, diff 6, shape 7, double_data 8.
# BlobShape: dim 1.


@dataclass
class Blob:
    """One stored blob: its data (a view of the file, float32) and declared shape."""

    data: np.ndarray  # 1-D
    shape: list[int] | None  # BlobShape dims, when given
    legacy: tuple[int, int, int, int] | None  # (num, channels, height, width), when given

    @property
    def declared(self) -> list[int]:
        if self.legacy is not None:
            return list(self.legacy)
        return list(self.shape or [])

    def fits(self, target: list[int]) -> bool:
        """Blob::ShapeEquals: legacy 4-D shapes are compared from the end (a bias
        stored as 1x1x1xN fits a blob of shape N)."""
        if self.legacy is not None:
            if len(target) > 4:
                return False
            padded = [1] * (4 - len(target)) + list(target)
            return tuple(padded) == self.legacy
        return list(self.shape or []) == list(target)

    def as_shape(self, target: list[int]) -> np.ndarray:
        return self.data.reshape(target)


@dataclass
class StoredLayer:
    name: str
    type: str  # "" when the file does not say
    blobs: list[Blob] = field(default_factory=list)


@dataclass
class Weights:
    layers: dict[str, StoredLayer]  # by name (a later layer of the same name wins)
    nbytes: int
    notes: list[str] = field(default_factory=list)


_Budget = ByteBudget


def _open(path: str):
    return map_file(path)


def _fields(data, start: int, end: int, what: str):
    return checked_fields(data, start, end, what, MAX_FIELDS, "Caffe caffemodel")


def _text(data, f: WireField, limit: int = 4096) -> str:
    return bytes(data[f.start:f.start + min(f.length, limit)]).decode("utf-8", "replace")


def _blob(data, f: WireField, where: str, budget: _Budget, notes: list[str]) -> Blob:
    shape: list[int] | None = None
    legacy = [None, None, None, None]
    floats: tuple[int, int] | None = None
    doubles: tuple[int, int] | None = None
    for g in _fields(data, f.start, f.end, where):
        if g.number in (1, 2, 3, 4) and g.wire_type == VARINT:
            value = g.value - (1 << 64) if g.value >= 1 << 63 else g.value
            legacy[g.number - 1] = value
        elif g.number == 7 and g.wire_type == LEN:
            shape = []
            for h in _fields(data, g.start, g.end, f"{where}: its shape"):
                if h.number != 1:
                    continue
                if h.wire_type == LEN:
                    shape += packed_varints(data, h.start, h.end)
                elif h.wire_type == VARINT:
                    shape.append(h.value - (1 << 64) if h.value >= 1 << 63 else h.value)
                if len(shape) > 32:
                    raise CorruptFileError(f"{where}: a shape of more than 32 dimensions")
        elif g.number == 5:
            if g.wire_type != LEN:
                raise CorruptFileError(f"{where}: its float data is not packed (Caffe always "
                                       "packs it); this writer's files are not supported")
            floats = (g.start, g.length)
        elif g.number == 8:
            if g.wire_type != LEN:
                raise CorruptFileError(f"{where}: its double data is not packed")
            doubles = (g.start, g.length)
        elif g.number in (1, 2, 3, 4) or g.wire_type not in (VARINT, LEN, FIXED32, FIXED64):
            raise CorruptFileError(f"{where}: field {g.number} has the wrong wire type")
    has_legacy = any(v is not None for v in legacy)
    dims = [1 if v is None else v for v in legacy] if has_legacy else list(shape or [])
    if any(d < 0 for d in dims):
        raise CorruptFileError(f"{where}: negative dimensions {dims}")
    count = math.prod(dims)
    if doubles is not None and floats is None:
        offset, length = doubles
        if length != count * 8:
            raise CorruptFileError(f"{where}: shape {dims} needs {count * 8:,} bytes of double "
                                   f"data, the file has {length:,}")
        budget.take(count * 4)
        array = np.frombuffer(data, dtype="<f8", count=count, offset=offset).astype(np.float32)
        if "double-precision blobs converted to float32" not in notes:
            notes.append("double-precision blobs converted to float32")
    else:
        offset, length = floats if floats is not None else (0, 0)
        if length != count * 4:
            raise CorruptFileError(f"{where}: shape {dims} needs {count * 4:,} bytes of data, "
                                   f"the file has {length:,}")
        budget.take(length)
        array = np.frombuffer(data, dtype="<f4", count=count, offset=offset) if count else \
            np.zeros(0, np.float32)
    return Blob(array, None if has_legacy else list(shape or []),
                tuple(dims) if has_legacy else None)  # type: ignore[arg-type]


def _layer(data, f: WireField, v1: bool, index: int, budget: _Budget,
           notes: list[str]) -> StoredLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    layer = StoredLayer(f"#{index}", "")
    blob_fields: list[WireField] = []
    where = f"layer {index + 1}"
    for g in _fields(data, f.start, f.end, where):
        if g.number == name_field and g.wire_type == LEN:
            layer.name = _text(data, g)
        elif g.number == type_field:
            layer.type = _text(data, g) if g.wire_type == LEN else str(g.value)
        elif g.number == blobs_field and g.wire_type == LEN:
            blob_fields.append(g)
        elif v1 and g.number == 1 and g.wire_type == LEN:  # a V0 layer inside
            for h in _fields(data, g.start, g.end, where):
                if h.number == 1 and h.wire_type == LEN:
                    layer.name = _text(data, h)
                elif h.number == 2 and h.wire_type == LEN:
                    layer.type = _text(data, h)
                elif h.number == 50 and h.wire_type == LEN:
                    blob_fields.append(h)
    where = f"layer '{layer.name}'"
    layer.blobs = [_blob(data, g, f"{where}: blob {k}", budget, notes)
                   for k, g in enumerate(blob_fields)]
    return layer


def load_weights(path: str, max_bytes: int) -> Weights:
    """Every layer of the caffemodel with its blobs (views of the mapped file)."""
    data = _open(path)
    budget = _Budget(max_bytes)
    notes: list[str] = []
    layers: dict[str, StoredLayer] = {}
    try:
        count = 0
        for f in _fields(data, 0, len(data), "the file"):
            if f.wire_type != LEN or f.number not in (2, 100):
                continue
            layer = _layer(data, f, f.number == 2, count, budget, notes)
            layers[layer.name] = layer
            count += 1
    except (CorruptFileError, TooLargeError) as exc:
        raise exc.with_file(path) from None
    nbytes = sum(b.data.nbytes for layer in layers.values() for b in layer.blobs)
    return Weights(layers, nbytes, notes)


def read_mean_file(path: str, max_bytes: int = 256 << 20) -> np.ndarray:
    """A mean image (.binaryproto: one BlobProto), e.g. ilsvrc_2012_mean.binaryproto."""
    data = _open(path)
    try:
        whole = WireField(0, LEN, 0, len(data), 0, 0, len(data))
        blob = _blob(data, whole, "the mean file", _Budget(max_bytes), [])
    except (CorruptFileError, TooLargeError) as exc:
        raise exc.with_file(path) from None
    return blob.data.reshape(blob.declared) if blob.declared else blob.data
