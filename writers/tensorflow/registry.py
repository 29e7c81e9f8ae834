"""Lowering registry for the TensorFlow/LiteRT writers: one function per ONNX op type.

A lowering gets the `Lowering` context (lowering.py) and one `ir.Node`; it emits ops on
stored tensors with `ctx.emit(...)` and binds each node output with `ctx.bind(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.core.registry import Registry

OpLowering = Callable[[Any, Any], None]

_REGISTRY: Registry[OpLowering] = Registry("ONNX op")

op_lowering = _REGISTRY.register
lookup = _REGISTRY.get


def supported_ops() -> list[str]:
    return _REGISTRY.names()
