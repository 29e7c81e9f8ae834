"""Load an ONNX file without copying its weights.

protobuf would copy every initializer's bytes into the parsed message (and cannot
parse a message over 2 GB at all). Instead the file is memory-mapped, its field
headers are walked, and every large `raw_data` is cut out of the bytes that protobuf
parses; those tensors become numpy views of the mapping (which the writers can copy
file to file). Tensors stored in external data files are mapped the same way.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import onnx

from migrate.core.errors import CorruptFileError, TooLargeError, TruncatedFileError, UsageError
from migrate.core.mapped import ByteBudget, map_file
from migrate.core.protowire import LEN, VARINT, checked_fields, encode_len_field, packed_varints

# Initializers at least this large are mapped, smaller ones stay in the parsed proto
# (shape and axes constants: the version converter and shape inference read them).
MAP_THRESHOLD = 4096
MAX_FIELDS = 10_000_000

# ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto: dims 1, data_type 2,
# name 8, raw_data 9, external_data 13, data_location 14
_GRAPH, _INITIALIZER = 7, 5
_DIMS, _DATA_TYPE, _NAME, _RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = 1, 2, 8, 9, 13, 14


@dataclass
class LoadedOnnx:
    proto: onnx.ModelProto
    weights: dict[str, np.ndarray]  # initializer name -> view of a mapped file
    mapped_bytes: int


def _open_map(path: str):
    try:
        return map_file(path)
    except TruncatedFileError:
        return b""


def _fields(data, start: int, end: int, what: str):
    return checked_fields(data, start, end, what, MAX_FIELDS, "ONNX protobuf")


_Budget = ByteBudget


def _strip_tensor(data, f, weights: dict[str, np.ndarray], base_dir: str,
                  budget: _Budget, maps: dict[str, object]) -> bytes:
    """One initializer's bytes, its large data cut out into `weights`."""
    dims: list[int] = []
    data_type = 0
    name = b""
    raw: tuple[int, int] | None = None
    external: dict[str, str] = {}
    location = 0
    kept: list[tuple[int, bytes]] = []  # (field number, its bytes) to keep
    for g in _fields(data, f.start, f.end, "an initializer"):
        if g.number == _DIMS:
            if g.wire_type == VARINT:
                dims.append(g.value - (1 << 64) if g.value >= 1 << 63 else g.value)
            elif g.wire_type == LEN:
                dims.extend(packed_varints(data, g.start, g.end))
        elif g.number == _DATA_TYPE and g.wire_type == VARINT:
            data_type = g.value
        elif g.number == _NAME and g.wire_type == LEN:
            name = bytes(data[g.start:g.end])
        elif g.number == _RAW_DATA and g.wire_type == LEN:
            raw = (g.start, g.length)
        elif g.number == _DATA_LOCATION and g.wire_type == VARINT:
            location = g.value
        elif g.number == _EXTERNAL_DATA and g.wire_type == LEN:
            key = value = ""
            for h in _fields(data, g.start, g.end, "external data entry"):
                text = bytes(data[h.start:h.end]).decode("utf-8", "replace")
                key, value = (text, value) if h.number == 1 else (key, text)
            external[key] = value
        if g.number != _RAW_DATA or raw is None or g.length < MAP_THRESHOLD:
            kept.append((g.number, bytes(data[g.offset:g.end])))
    if location == 1 and external:  # EXTERNAL: stays a reference, mapped here
        tensor_name = name.decode("utf-8", "replace")
        weights[tensor_name] = _external_view(external, data_type, dims, base_dir, budget, maps,
                                              tensor_name)
        return b"".join(k for n, k in kept if n not in (_EXTERNAL_DATA, _DATA_LOCATION))
    if raw is None or raw[1] < MAP_THRESHOLD:
        return bytes(data[f.start:f.end])
    tensor_name = name.decode("utf-8", "replace")
    weights[tensor_name] = _view(data, raw[0], raw[1], data_type, dims, tensor_name, budget)
    return b"".join(k for _, k in kept)


def _dtype(data_type: int, name: str) -> np.dtype:
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except (KeyError, ValueError, TypeError):
        raise CorruptFileError(f"initializer '{name}' has unknown data type {data_type}") from None
    if dtype.kind == "O":
        raise CorruptFileError(f"initializer '{name}' holds strings")
    return dtype.newbyteorder("<")


def _view(data, offset: int, length: int, data_type: int, dims: list[int], name: str,
          budget: _Budget) -> np.ndarray:
    dtype = _dtype(data_type, name)
    if any(d < 0 for d in dims):
        raise CorruptFileError(f"initializer '{name}' has negative dims {dims}")
    count = math.prod(dims)
    if count * dtype.itemsize != length:
        raise CorruptFileError(f"initializer '{name}' of shape {dims} ({dtype}) needs "
                               f"{count * dtype.itemsize} bytes, its data has {length}")
    budget.take(length)
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims)


def _external_view(info: dict[str, str], data_type: int, dims: list[int], base_dir: str,
                   budget: _Budget, maps: dict[str, object], name: str) -> np.ndarray:
    location = info.get("location", "")
    full = os.path.normpath(os.path.join(base_dir, location))
    if os.path.isabs(location) or not full.startswith(os.path.normpath(base_dir) + os.sep):
        raise CorruptFileError(f"initializer '{name}' points outside the model's folder "
                               f"({location!r})")
    if not os.path.isfile(full):
        raise UsageError(f"initializer '{name}' is stored in {location!r}, which is missing "
                         "beside the model", file=full)
    if full not in maps:
        maps[full] = _open_map(full)
    mapped = maps[full]
    dtype = _dtype(data_type, name)
    count = math.prod(dims)
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", count * dtype.itemsize))
    except ValueError:
        raise CorruptFileError(f"initializer '{name}' has a bad external offset") from None
    if offset < 0 or offset + length > len(mapped):  # type: ignore[arg-type]
        raise TruncatedFileError(f"initializer '{name}' needs bytes {offset}..{offset + length}"
                                 f" of {location}, which has {len(mapped)}")  # type: ignore
    return _view(mapped, offset, length, data_type, dims, name, budget)


def load_onnx(path: str, max_bytes: int) -> LoadedOnnx:
    """Parse the model's structure; large initializers come back as mapped views."""
    data = _open_map(path)
    if len(data) == 0:
        raise TruncatedFileError("empty file", file=path)
    budget = _Budget(max_bytes)
    weights: dict[str, np.ndarray] = {}
    maps: dict[str, object] = {}
    base_dir = os.path.dirname(os.path.abspath(path))
    top: list[bytes] = []
    try:
        for f in _fields(data, 0, len(data), "the model"):
            if f.number != _GRAPH or f.wire_type != LEN:
                top.append(bytes(data[f.offset:f.end]))
                continue
            graph: list[bytes] = []
            for g in _fields(data, f.start, f.end, "the graph"):
                if g.number == _INITIALIZER and g.wire_type == LEN:
                    graph.append(encode_len_field(
                        _INITIALIZER, _strip_tensor(data, g, weights, base_dir, budget, maps)))
                else:
                    graph.append(bytes(data[g.offset:g.end]))
            top.append(encode_len_field(_GRAPH, b"".join(graph)))
        try:
            proto = onnx.ModelProto.FromString(b"".join(top))
        except Exception as exc:  # protobuf's DecodeError
            raise CorruptFileError(f"not a valid ONNX model ({exc})"[:200]) from None
    except (CorruptFileError, TooLargeError, UsageError) as exc:
        raise exc.with_file(path) from None
    mapped = sum(w.nbytes for w in weights.values())
    return LoadedOnnx(proto, weights, mapped)
