"""Converter registry of the Caffe2 reader: one function per Caffe2 operator type.

A converter receives the build context (`ctx.op(onnx_op, inputs, **attrs)`,
`ctx.const(array)`, `ctx.shape(value)`, `ctx.to_nchw(x)` / `ctx.from_nchw(x)` for
NHWC nets), the `OperatorDef` with typed argument access (`args.int("kernel")`, ...)
and its input values, and returns the values of the op's outputs in order (fewer when
the trailing outputs are unused bookkeeping, e.g. Concat's split_info).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.core.registry import Registry

Converter = Callable[[Any, Any, list], list]

_REGISTRY: Registry[Converter] = Registry("Caffe2 operator")

caffe2_op = _REGISTRY.register
lookup = _REGISTRY.get


def supported_ops() -> list[str]:
    return _REGISTRY.names()
