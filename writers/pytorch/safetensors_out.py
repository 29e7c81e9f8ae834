"""A state_dict written as `.safetensors` straight from the numpy arrays.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
byte range) padded with spaces to 8 bytes, then every tensor's raw bytes. The header is
built from shapes alone; the bytes are then streamed: an array that is still the bytes of
a memory-mapped source file is copied file to file by the kernel (sendfile, see
migrate.core.mapped), a contiguous array is written from its own memory, and only a
non-contiguous one (a transposed or broadcast weight) is made contiguous, a few MB at a
time. No copy of the whole model is ever made.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Iterator, Mapping

import numpy as np

from migrate.core.errors import ConversionError
from migrate.core.mapped import FileRegion, file_region

DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64",
          "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
PIECE = 16 << 20  # bytes made contiguous at a time for non-contiguous arrays


def header(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
           ) -> bytes:
    entries: dict = {}
    if metadata:
        entries["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, array in tensors.items():
        kind = DTYPES.get(array.dtype.name)
        if kind is None:
            raise ConversionError(f"{name}: {array.dtype} tensors cannot be stored in "
                                  "safetensors")
        size = array.dtype.itemsize * math.prod(array.shape)
        entries[name] = {"dtype": kind, "shape": [int(d) for d in array.shape],
                         "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def _pieces(array: np.ndarray) -> Iterator[bytes | memoryview | FileRegion]:
    if array.size == 0:
        return
    region = file_region(array)
    if region is not None:
        yield region
        return
    if array.flags["C_CONTIGUOUS"] and array.dtype.byteorder in ("<", "=", "|") \
            and sys.byteorder == "little":
        yield memoryview(array.reshape(-1)).cast("B")
        return
    if array.ndim == 0:
        yield _little_endian(np.ascontiguousarray(array)).tobytes()
        return
    row = array.dtype.itemsize * math.prod(array.shape[1:])
    step = max(1, PIECE // max(row, 1))
    for start in range(0, array.shape[0], step):
        part = _little_endian(np.ascontiguousarray(array[start:start + step]))
        yield memoryview(part.reshape(-1)).cast("B")


def chunks(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
           ) -> Iterator[bytes | memoryview | FileRegion]:
    """The file's bytes in pieces, for migrate.core.outputs.write_atomically."""
    yield header(tensors, metadata)
    for array in tensors.values():
        yield from _pieces(array)
