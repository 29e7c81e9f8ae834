"""Converter registry for the Caffe2 writer: one function per ONNX op type.

A converter gets the `NetWriter` and one `ir.Node` and emits Caffe2 operators
with `writer.emit(...)`, binding each node output to a blob with `writer.bind`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OpConverter = Callable[[Any, Any], None]

_CONVERTERS: dict[str, OpConverter] = {}


def op_converter(*op_types: str) -> Callable[[OpConverter], OpConverter]:
    def register(fn: OpConverter) -> OpConverter:
        for op_type in op_types:
            _CONVERTERS[op_type] = fn
        return fn

    return register


def lookup(op_type: str) -> OpConverter | None:
    return _CONVERTERS.get(op_type)


def supported_ops() -> list[str]:
    return sorted(_CONVERTERS)
