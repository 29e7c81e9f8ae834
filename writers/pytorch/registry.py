"""Converter registry of the PyTorch writer: one function per ONNX op type.

A converter gets the `CodeGen` and one `ir.Node`, declares the submodules or
parameters the op needs and emits the statement computing the node's outputs.
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
