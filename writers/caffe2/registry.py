"""Converter registry for the Caffe2 writer: one function per ONNX op type.

A converter gets the `NetWriter` and one `ir.Node` and emits Caffe2 operators
with `writer.emit(...)`, binding each node output to a blob with `writer.bind`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.core.registry import Registry

OpConverter = Callable[[Any, Any], None]

_REGISTRY: Registry[OpConverter] = Registry("ONNX op")

op_converter = _REGISTRY.register
lookup = _REGISTRY.get


def supported_ops() -> list[str]:
    return _REGISTRY.names()
