"""Converter registry for the Caffe writer: one function per ONNX op type.

A converter gets the `NetBuilder` and one `ir.Node`, adds Caffe layers with
`net.layer(...)` and binds each node output to the blob that holds it
(`net.bind`). What Caffe cannot compute exactly raises ConversionError.
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
