"""ONNX models (opset 7 to 23, weights inline or in external data files)."""

from __future__ import annotations

from migrate.core.registry import Claim, FileHead, ReaderSpec, register_reader
from migrate.core.sniff import is_onnx_model


def sniff(head: FileHead) -> Claim | None:
    if is_onnx_model(head.head):
        return Claim("onnx", "model", "an ONNX model")
    return None


SPEC = register_reader(ReaderSpec(
    name="onnx",
    title="ONNX (.onnx, opset 7-23)",
    module="migrate.readers.onnx.reader",
    sniff=sniff,
    suffixes=(".onnx",),
    runtime="onnxruntime",
))
