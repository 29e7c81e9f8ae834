"""Converter registry for Torch7 modules: one function per module class.

A converter receives the build context, the module and its input (an
`ir.Value`, or a list of them for Lua-table inputs) and returns its output the
same way. Register it with `@converter("nn.Name", "cudnn.Name", ...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.core.registry import Registry

Converter = Callable[[Any, Any, Any], Any]

_REGISTRY: Registry[Converter] = Registry("Torch7 module")

# GPU-era class prefixes whose layers compute exactly what the nn layer of the
# same name computes; used when no converter is registered under the full name.
_ALIASED_PREFIXES = ("cudnn.", "cunn.", "fbcunn.", "nnx.")

converter = _REGISTRY.register


def lookup(class_name: str) -> Converter | None:
    found = _REGISTRY.get(class_name)
    if found is None:
        for prefix in _ALIASED_PREFIXES:
            if class_name.startswith(prefix):
                found = _REGISTRY.get("nn." + class_name[len(prefix):])
    return found


def supported_classes() -> list[str]:
    return _REGISTRY.names()
