"""Stream a caffemodel to disk without copying weights through protobuf objects.

A caffemodel is a NetParameter whose layers carry their parameters as BlobProtos.
A BlobProto's `data` is a packed repeated float: on the wire that is the field tag,
a length, and the raw little-endian float32 bytes, exactly the bytes of the numpy
array. So each blob is written as a few header bytes and a view of the array itself
(or, when the array is still bytes of a memory-mapped source file, as that file
region, copied file to file by the kernel). Protobuf and Caffe parse the result like
any other NetParameter, because a message's fields may come in any order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from migrate.core.formats import caffe_pb2
from migrate.core.mapped import FileRegion, file_region, join_chunks
from migrate.core.protowire import encode_varint as varint

# field numbers of caffe.proto, as (number << 3) | wire type 2 (length-delimited)
_NET_LAYER = (100 << 3) | 2
_LAYER_BLOBS = (7 << 3) | 2
_BLOB_DATA = (5 << 3) | 2
_BLOB_SHAPE = (7 << 3) | 2
_SHAPE_DIM = (1 << 3) | 2
# legacy 4-D shape fields (varints): num 1, channels 2, height 3, width 4
_LEGACY_ONES = bytes([1 << 3, 1, 2 << 3, 1, 3 << 3, 1, 4 << 3, 1])

Chunk = bytes | memoryview | FileRegion


def _field(tag: int, length: int) -> bytes:
    return varint(tag) + varint(length)


def _blob(array: np.ndarray) -> tuple[bytes, Chunk, int]:
    """(header, payload, total length) of BlobProto{shape: array.shape, data: array}.

    A scalar (0-D) blob, such as a channel-shared PReLU slope, is written with the legacy
    1x1x1x1 fields instead of an empty shape: Caffe accepts both for it, and other Caffe
    parsers (OpenCV's) cannot read an empty shape."""
    data = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    raw: Chunk = file_region(data) or memoryview(data).cast("B")
    size = raw.length if isinstance(raw, FileRegion) else len(raw)
    if array.ndim:
        dims = b"".join(varint(int(d)) for d in array.shape)
        blob_shape = _field(_SHAPE_DIM, len(dims)) + dims  # BlobShape{dim: [...]} packed
        shape = _field(_BLOB_SHAPE, len(blob_shape)) + blob_shape
    else:
        shape = _LEGACY_ONES
    header = shape + _field(_BLOB_DATA, size)
    return header, raw, len(header) + size


def layer_chunks(layer: caffe_pb2.LayerParameter, blobs: Sequence[np.ndarray]
                 ) -> Iterator[Chunk]:
    """One `layer` field of a NetParameter: the layer's own fields, then its blobs."""
    body = layer.SerializeToString()
    pieces = []
    total = len(body)
    for array in blobs:
        header, raw, length = _blob(array)
        head = _field(_LAYER_BLOBS, length) + header
        pieces.append((head, raw))
        total += len(head) + length - len(header)
    yield _field(_NET_LAYER, total) + body
    for head, raw in pieces:
        yield head
        yield raw


def caffemodel_chunks(name: str, layers: Sequence[tuple[caffe_pb2.LayerParameter,
                                                        Sequence[np.ndarray]]]
                      ) -> Iterator[Chunk]:
    """The serialized NetParameter (definition and weights), in pieces."""
    yield caffe_pb2.NetParameter(name=name).SerializeToString()
    for layer, blobs in layers:
        yield from layer_chunks(layer, blobs)


def caffemodel_bytes(name: str, layers) -> bytes:
    """The whole caffemodel in memory (small nets, tests)."""
    return join_chunks(caffemodel_chunks(name, layers))
