"""Common graph -> `.onnx`, validated with onnx.checker before it is written."""

from __future__ import annotations

import os

import onnx
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.core.graph import to_proto
from migrate.core.model import WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.core.sniff import is_onnx_model, read_head


def onnx_bytes(model: ir.Model) -> bytes:
    proto = to_proto(model)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"ONNX checker rejected the graph: {exc}".splitlines()[0]) from None
    return proto.SerializeToString()


def output_paths(out_dir: str, stem: str) -> dict[str, str]:
    return {"onnx": os.path.join(out_dir, f"{stem}.onnx")}


def write_onnx(model: ir.Model, out_dir: str, stem: str) -> dict[str, str]:
    paths = output_paths(out_dir, stem)
    write_atomically({paths["onnx"]: onnx_bytes(model)})
    return paths


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    return WriteResult(write_onnx(model, out_dir, stem))


def recognize(paths: list[str]) -> dict[str, str] | None:
    """One file that is an ONNX model."""
    if len(paths) == 1 and is_onnx_model(read_head(paths[0]).head):
        return {"onnx": paths[0]}
    return None
