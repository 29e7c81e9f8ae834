"""Load a Caffe2 NetDef pair without copying the weights.

An init net's GivenTensorFill ops carry their values as a packed float field: the raw
little-endian bytes of the array. The file is memory-mapped, its field headers walked,
and each large `values` argument becomes a numpy view of the mapping (the Caffe2 writer
can copy it file to file); protobuf parses only the rest of each op. Text NetDefs are
parsed by protobuf (they hold their numbers as text anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from migrate.core.errors import CorruptFileError, TooLargeError, TruncatedFileError
from migrate.core.formats.caffe2 import check_strings
from migrate.core.formats.caffe2_pb2 import Argument, NetDef, OperatorDef
from migrate.core.mapped import map_file
from migrate.core.protowire import LEN, checked_fields, encode_len_field
from migrate.core.sniff import text_protobuf_kind

MAP_THRESHOLD = 4096  # packed values at least this large stay in the file
_NETDEF_OP, _OP_ARG, _ARG_NAME, _ARG_FLOATS = 2, 5, 1, 5
MAX_OPS = 1_000_000


@dataclass
class LoadedNet:
    net: NetDef
    # (op index, argument name) -> a mapped float32 view, cut out of the parsed ops
    mapped: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)


def _fields(data, start: int, end: int, what: str, limit: int = MAX_OPS):
    return checked_fields(data, start, end, what, limit, "Caffe2 NetDef")


_FLOAT_TAG = (_ARG_FLOATS << 3) | 5  # one unpacked float: tag byte 0x2d, then 4 bytes


def _unpacked_floats(data, start: int, end: int) -> np.ndarray | None:
    """A run of unpacked float fields to the end of an argument (what Caffe2's own Python
    writes: `repeated float floats = 5` is not packed) as a strided view: every 5th byte
    is the tag, the 4 after it the value."""
    length = end - start
    if length % 5:
        return None
    tags = np.frombuffer(data, dtype=np.uint8, count=length, offset=start)[::5]
    if not (tags == _FLOAT_TAG).all():
        return None
    return np.ndarray((length // 5,), dtype="<f4", buffer=data, offset=start + 1,
                      strides=(5,))


def _argument(data, g, index: int, budget: list[int]) -> tuple[bytes, str, np.ndarray | None]:
    """An argument's bytes without its float values, its name, and the values as a view
    of the mapping (None when it has no large float values)."""
    name, floats = b"", None
    rest: list[bytes] = []
    for h in _fields(data, g.start, g.end, f"an argument of op {index}", 64):
        if h.number == _ARG_NAME and h.wire_type == LEN:
            name = bytes(data[h.start:h.end])
            rest.append(bytes(data[h.offset:h.end]))
        elif h.number == _ARG_FLOATS and h.wire_type == LEN and h.length >= MAP_THRESHOLD:
            if h.length % 4:
                raise CorruptFileError(f"op {index}: packed floats of {h.length} bytes")
            floats = np.frombuffer(data, dtype="<f4", count=h.length // 4, offset=h.start)
        elif h.number == _ARG_FLOATS and h.wire_type == 5 and g.end - h.offset >= MAP_THRESHOLD:
            floats = _unpacked_floats(data, h.offset, g.end)
            if floats is None:
                return bytes(data[g.offset:g.end]), "", None  # mixed: protobuf parses it
            break
        else:
            rest.append(bytes(data[h.offset:h.end]))
    if floats is None:
        return bytes(data[g.offset:g.end]), "", None
    budget[0] -= floats.nbytes
    if budget[0] < 0:
        raise TooLargeError("tensor data exceeds the limit (--max-bytes)")
    return encode_len_field(_OP_ARG, b"".join(rest)), name.decode("utf-8", "replace"), floats


def _split_op(data, f, index: int, budget: list[int]) -> tuple[bytes, dict[str, np.ndarray]]:
    """An op's bytes with its large float arguments cut out (as views)."""
    kept: list[bytes] = []
    views: dict[str, np.ndarray] = {}
    for g in _fields(data, f.start, f.end, f"op {index}", 10_000):
        if g.number == _OP_ARG and g.wire_type == LEN and g.length >= MAP_THRESHOLD:
            body, name, floats = _argument(data, g, index, budget)
            if floats is not None:
                views[name] = floats
            kept.append(body)
        else:
            kept.append(bytes(data[g.offset:g.end]))
    return b"".join(kept), views


def load_net(path: str, max_bytes: int) -> LoadedNet:
    """A binary or text NetDef; large packed floats of a binary one stay mapped."""
    data = map_file(path)
    if text_protobuf_kind(bytes(data[:1 << 16])) == "netdef":
        from migrate.core.formats.caffe2 import load_netdef

        return LoadedNet(load_netdef(path))
    budget = [max_bytes]
    net = NetDef()
    loaded = LoadedNet(net)
    try:
        shell: list[bytes] = []
        ops = 0
        for f in _fields(data, 0, len(data), "the NetDef"):
            if f.number == _NETDEF_OP and f.wire_type == LEN:
                body, views = _split_op(data, f, ops, budget)
                op = net.op.add()
                op.ParseFromString(body)
                for name, view in views.items():
                    loaded.mapped[(ops, name)] = view
                ops += 1
            else:
                shell.append(bytes(data[f.offset:f.end]))
        rest = NetDef.FromString(b"".join(shell))
        rest.op.extend(net.op)
        loaded.net = check_strings(rest, path)
    except (CorruptFileError, TruncatedFileError, TooLargeError) as exc:
        raise exc.with_file(path) from None
    except Exception as exc:  # protobuf's DecodeError on an op
        raise CorruptFileError(f"not a valid Caffe2 NetDef ({type(exc).__name__})",
                               file=path) from None
    return loaded


def argument_map(op: OperatorDef) -> dict[str, Argument]:
    return {arg.name: arg for arg in op.arg}
