"""Converter registry for Caffe layers: one function per layer type.

A converter receives the layer's build context (`ctx.op`, `ctx.const`, `ctx.blobs`,
`ctx.shape`, `ctx.param`), the layer (a caffe_pb2.LayerParameter) and its bottoms (graph
values, in order), and returns its tops: one value, or a list with one per top.
Register it with `@caffe_layer("TypeName", ...)` (plugins: migrate.plugins.caffe_layer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.core.registry import Registry

Converter = Callable[[Any, Any, list], Any]

_REGISTRY: Registry[Converter] = Registry("Caffe layer")

caffe_layer = _REGISTRY.register


def lookup(layer_type: str) -> Converter | None:
    return _REGISTRY.get(layer_type)


def supported_types() -> list[str]:
    return _REGISTRY.names()
