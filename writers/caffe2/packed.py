"""Stream the init net to disk without copying weights through protobuf objects.

A GivenTensorFill's `values` argument is a packed repeated float: on the wire that
is the field tag, a length, and the raw little-endian float32 bytes, exactly the
bytes of the numpy array. So each parameter is written as a few header bytes and
a view of the array itself; protobuf (and Caffe2) parse the result like any other
NetDef, because a message's fields may come in any order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from migrate.core.formats.caffe2_pb2 import NetDef
from migrate.core.mapped import FileRegion, file_region, join_chunks
from migrate.core.protowire import encode_varint as varint

# field numbers and wire types of caffe2.proto (wire type 2 = length-delimited)
_NETDEF_OP = (2 << 3) | 2
_OPERATOR_ARG = (5 << 3) | 2
_ARGUMENT_NAME = (1 << 3) | 2
_ARGUMENT_FLOATS = (5 << 3) | 2


def _values_argument(array: np.ndarray) -> tuple[bytes, memoryview | FileRegion, int]:
    """(header, payload, total length) of Argument{name: "values", floats: array}.

    The payload is the source file's region when the array is those very bytes
    (copied file to file by the kernel), else a view of the array."""
    data = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    raw = file_region(data) or memoryview(data).cast("B")
    size = raw.length if isinstance(raw, FileRegion) else len(raw)
    header = (bytes([_ARGUMENT_NAME]) + varint(6) + b"values"
              + bytes([_ARGUMENT_FLOATS]) + varint(size))
    return header, raw, len(header) + size


def init_net_chunks(init_net: NetDef, values: Mapping[str, np.ndarray]
                    ) -> Iterator[bytes | memoryview | FileRegion]:
    """The serialized init net, in pieces; `values` holds each float fill's array."""
    shell = NetDef()
    shell.CopyFrom(init_net)
    del shell.op[:]
    yield shell.SerializeToString()
    for op in init_net.op:
        body = op.SerializeToString()
        array = values.get(op.output[0]) if op.output else None
        if array is None:
            yield bytes([_NETDEF_OP]) + varint(len(body)) + body
            continue
        header, raw, arg_len = _values_argument(array)
        arg_prefix = bytes([_OPERATOR_ARG]) + varint(arg_len)
        op_len = len(body) + len(arg_prefix) + arg_len
        yield bytes([_NETDEF_OP]) + varint(op_len) + body + arg_prefix + header
        yield raw


def init_net_bytes(init_net: NetDef, values: Mapping[str, np.ndarray]) -> bytes:
    return join_chunks(init_net_chunks(init_net, values))
