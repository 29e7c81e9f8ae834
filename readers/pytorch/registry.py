"""Converter registry for PyTorch operators: one function per ATen op (core ATen, the
operator set torch.export's default decompositions produce), registered under the
op's name without its overload (`aten.convolution`).

A converter receives the build context and the node's arguments, with every graph
tensor as an `ir.Value`, every weight or folded constant as a `Const`, and symbolic
sizes as plain ints; it returns the node's value the same way (a tuple for ops with
several outputs). Register it with `@converter("aten.name", ...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.core.registry import Registry

Converter = Callable[..., Any]

_REGISTRY: Registry[Converter] = Registry("PyTorch operator")

converter = _REGISTRY.register
lookup = _REGISTRY.get


def supported_ops() -> list[str]:
    return _REGISTRY.names()


def op_name(target: Any) -> str:
    """`aten.convolution` for torch.ops.aten.convolution.default; `_operator.getitem`
    for Python's operator.getitem."""
    packet = getattr(target, "_overloadpacket", None)
    if packet is not None:
        return str(packet)
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', str(target))}".lstrip(".")
