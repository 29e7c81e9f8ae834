"""Common graph -> `.onnx`, validated with onnx.checker before it is written."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.core.graph import to_proto
from migrate.core.mapped import FileRegion, file_region
from migrate.core.model import WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.core.sniff import LEN, encode_varint, is_onnx_model, read_head


def onnx_bytes(model: ir.Model) -> bytes:
    proto = to_proto(model)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"ONNX checker rejected the graph: {exc}".splitlines()[0]) from None
    return proto.SerializeToString()


def output_paths(out_dir: str, stem: str) -> dict[str, str]:
    return {"onnx": os.path.join(out_dir, f"{stem}.onnx")}


# Initializers at least this large are not copied into the protobuf message: the file is
# written as the serialized rest plus each tensor's header and its bytes straight from
# the array (or, for a view of a mapped source file, copied file to file by the kernel).
STREAM_THRESHOLD = 1 << 20
_GRAPH, _INITIALIZER, _RAW_DATA = 7, 5, 9


def _large_initializers(model: ir.Model) -> dict[str, np.ndarray]:
    found = {}
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if tensor is None or tensor.nbytes < STREAM_THRESHOLD:
            continue
        try:
            array = tensor.numpy()
        except Exception:  # noqa: S112 - a tensor that is no plain array stays in the proto
            continue
        if array.dtype.kind in "fiub" and array.dtype != np.bool_:
            found[name] = array
    return found


def _payload(array: np.ndarray) -> tuple[memoryview | FileRegion, int]:
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
    region = file_region(data)
    if region is not None:
        return region, region.length
    raw = memoryview(data).cast("B")
    return raw, len(raw)


def _check_with_inputs_for(proto: onnx.ModelProto, names) -> None:
    """onnx.checker (with shape inference) on the model whose streamed weights are graph
    inputs of the same type and shape: it would look for external files otherwise."""
    check = onnx.ModelProto()
    check.CopyFrom(proto)
    graph = check.graph
    moved = [t for t in graph.initializer if t.name in names]
    kept = [t for t in graph.initializer if t.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                       for t in moved)
    try:
        onnx.checker.check_model(check, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"ONNX checker rejected the graph: {exc}".splitlines()[0]) from None


def onnx_chunks(model: ir.Model) -> list[bytes | memoryview | FileRegion]:
    """The .onnx file in pieces, checked by onnx.checker, large weights never copied into
    protobuf (the checker sees them as external data of the same shape and type)."""
    large = _large_initializers(model)
    saved = {name: model.graph.initializers[name].const_value for name in large}
    try:
        for name, array in large.items():
            value = model.graph.initializers[name]
            value.const_value = ir.ExternalTensor(
                "streamed", 0, array.nbytes, value.const_value.dtype,
                shape=ir.Shape(array.shape), name=name)
        proto = to_proto(model)
    finally:
        for name, tensor in saved.items():
            model.graph.initializers[name].const_value = tensor
    _check_with_inputs_for(proto, large)
    graph = proto.graph
    streamed = [t for t in graph.initializer if t.name in large]
    kept = [t for t in graph.initializer if t.name not in large]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph_pieces: list[bytes | memoryview | FileRegion] = [graph.SerializeToString()]
    graph_size = len(graph_pieces[0])
    for tensor in streamed:
        tensor.ClearField("data_location")
        del tensor.external_data[:]
        payload, size = _payload(large[tensor.name])
        head = tensor.SerializeToString() + encode_varint(_RAW_DATA << 3 | LEN) + \
            encode_varint(size)
        field = encode_varint(_INITIALIZER << 3 | LEN) + encode_varint(len(head) + size) + head
        graph_pieces += [field, payload]
        graph_size += len(field) + size
    proto.ClearField("graph")
    return [proto.SerializeToString(),
            encode_varint(_GRAPH << 3 | LEN) + encode_varint(graph_size), *graph_pieces]


def write_onnx(model: ir.Model, out_dir: str, stem: str) -> dict[str, str]:
    paths = output_paths(out_dir, stem)
    write_atomically({paths["onnx"]: onnx_chunks(model)})
    return paths


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    return WriteResult(write_onnx(model, out_dir, stem))


def recognize(paths: list[str]) -> dict[str, str] | None:
    """One file that is an ONNX model."""
    if len(paths) == 1 and is_onnx_model(read_head(paths[0]).head):
        return {"onnx": paths[0]}
    return None
