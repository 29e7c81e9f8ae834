"""What flows between Torch7 module converters: a tensor or a Lua table of them.

A tensor is an `ir.Value`; a Lua table is a Python list whose entries are tensors
or tables (nested lists for nested tables), in Lua index order. Every container and
every module that takes or makes tables goes through these helpers, so a module
that receives the wrong kind says so (naming itself) instead of failing in Python.
"""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from migrate.core.errors import ConversionError

Table = list


def is_tensor(x: Any) -> bool:
    return isinstance(x, ir.Value)


def is_table(x: Any) -> bool:
    return isinstance(x, list | tuple)


def describe(x: Any, depth: int = 0) -> str:
    """`a tensor 2x5` / `a table {2x5, {2x3, 2x3}}`, for messages."""
    def text(item: Any, level: int) -> str:
        if is_tensor(item):
            shape = item.shape
            dims = "x".join(str(d) for d in shape) if shape is not None else "?"
            return dims or "scalar"
        if is_table(item):
            if level > 3:
                return "{...}"
            return "{" + ", ".join(text(v, level + 1) for v in item) + "}"
        return type(item).__name__

    if is_tensor(x):
        return f"a tensor {text(x, depth)}"
    return f"a table {text(x, depth)}"


def as_tensor(x: Any, what: str) -> ir.Value:
    """The input of a module that takes one tensor."""
    if not is_tensor(x):
        raise ConversionError(f"{what} takes a tensor, got {describe(x)}")
    return x


def as_table(x: Any, what: str, size: int | None = None, at_least: int | None = None
             ) -> list[Any]:
    """The input of a module that takes a Lua table (optionally of a given size)."""
    if not is_table(x):
        raise ConversionError(f"{what} takes a table, got {describe(x)}")
    items = list(x)
    if size is not None and len(items) != size:
        raise ConversionError(f"{what} takes a table of {size}, got {describe(x)}")
    if at_least is not None and len(items) < at_least:
        raise ConversionError(f"{what} takes a table of at least {at_least}, got {describe(x)}")
    return items


def as_tensors(x: Any, what: str, size: int | None = None, at_least: int | None = None
               ) -> list[ir.Value]:
    """The input of a module that takes a flat table of tensors."""
    items = as_table(x, what, size, at_least)
    if not all(is_tensor(v) for v in items):
        raise ConversionError(f"{what} takes a table of tensors, got {describe(x)}")
    return items


def flatten(x: Any) -> list[ir.Value]:
    """Every tensor of a (nested) table, in order (nn.FlattenTable's order)."""
    if is_tensor(x):
        return [x]
    if not is_table(x):
        raise ConversionError(f"expected tensors, got {type(x).__name__}")
    values: list[ir.Value] = []
    for item in x:
        values.extend(flatten(item))
    return values


# -- input templates: the shape of a (nested) table of inputs, leaves marked TENSOR ----------

TENSOR = "tensor"


def leaf_count(template: Any) -> int:
    if template == TENSOR:
        return 1
    return sum(leaf_count(t) for t in template)


def nest(flat: list[ir.Value], template: Any) -> Any:
    """Arrange graph inputs (flat, in order) as the (nested) table the model takes."""
    items = iter(flat)

    def build(t: Any) -> Any:
        if t == TENSOR:
            return next(items)
        return [build(sub) for sub in t]

    return build(template)
