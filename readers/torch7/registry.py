"""Converter registry for Torch7 modules: one function per module class.

A converter receives the build context, the module and its input (an
`ir.Value`, or a list of them for Lua-table inputs) and returns its output the
same way. Register it with `@converter("nn.Name", "cudnn.Name", ...)`; a class
that a package other than torch/nn defines names it: `@converter("nn.Inception",
package="dpnn")`, so that `migrate inspect` can say where the class comes from.
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

# The Lua package that defines a class, where it is not torch/nn itself. Classes
# outside the `nn.` namespace (cudnn.*, w2nn.*) name their package by their prefix.
_PACKAGES: dict[str, str] = {"nn.gModule": "nngraph"}

# Key of `ir.Value.meta` (kept in memory, never written to a file) on a graph input
# that a converter made an integer input (Torch7 took a LongTensor there): the
# (low, high) values a random test input may take, both included.
VALUE_RANGE = "migrate.torch7.value_range"


def converter(*names: str, package: str | None = None) -> Callable[[Converter], Converter]:
    """Decorator: the function converts every one of `names` (classes of `package`)."""
    if package is not None:
        for name in names:
            _PACKAGES[name] = package
    return _REGISTRY.register(*names)


def lookup(class_name: str) -> Converter | None:
    found = _REGISTRY.get(class_name)
    if found is None:
        for prefix in _ALIASED_PREFIXES:
            if class_name.startswith(prefix):
                found = _REGISTRY.get("nn." + class_name[len(prefix):])
    return found


def package_of(class_name: str) -> str:
    """The Lua package that defines a class: "nn", "nngraph", "dpnn", "cudnn", ..."""
    if class_name in _PACKAGES:
        return _PACKAGES[class_name]
    prefix, dot, _ = class_name.partition(".")
    return prefix if dot else "nn"


def supported_classes() -> list[str]:
    return _REGISTRY.names()
