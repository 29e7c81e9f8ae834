"""A friendly view of one deserialized Torch7 module (a torchfile `TorchObject`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torchfile

from migrate.core.errors import ConversionError


def decode(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def lua_list(table: Any) -> list[Any]:
    """A Lua array table (read as a dict with keys 1..n) as a Python list."""
    if table is None:
        return []
    if isinstance(table, list):
        return table
    if isinstance(table, dict):
        keys = [k for k in table if isinstance(k, int)]
        return [table[k] for k in sorted(keys) if k >= 1]
    raise ConversionError(f"expected a Lua list, found {type(table).__name__}")


def array_key(array: np.ndarray) -> tuple:
    """Identity of the memory an array views (two views of one storage match)."""
    return (array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str)


class T7Module:
    """One nn module: its class name, its module path and typed field access."""

    def __init__(self, obj: Any, path: str, cache: dict | None = None) -> None:
        if not isinstance(obj, torchfile.TorchObject):
            raise ConversionError(f"{path} is not a Torch object (found {type(obj).__name__})")
        self.obj = obj
        self.path = path
        self.cls = decode(obj.torch_typename())
        fields = obj._obj if isinstance(obj._obj, dict) else {}
        self.fields: dict[str, Any] = {decode(k): v for k, v in fields.items()}
        # converted tensors of the whole tree, so that a tensor shared by several
        # modules is converted once and stays one array (and one graph constant)
        self._cache: dict = {} if cache is None else cache

    def __repr__(self) -> str:
        return f"{self.path} ({self.cls})"

    def has(self, name: str) -> bool:
        return self.fields.get(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None else decode(value)

    def int(self, name: str, default: int | None = None) -> int:
        value = self.get(name, default)
        if value is None:
            raise ConversionError(f"field '{name}' is missing")
        return int(value)

    def float(self, name: str, default: float | None = None) -> float:
        value = self.get(name, default)
        if value is None:
            raise ConversionError(f"field '{name}' is missing")
        return float(value)

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.fields.get(name)
        return default if value is None else bool(value)

    def tensor(self, name: str) -> np.ndarray | None:
        """A weight as a contiguous float32 array (None when absent or empty).

        Double and CUDA tensors become float32: Caffe2 mobile and most runtimes
        compute in float32.
        """
        value = self.fields.get(name)
        if not isinstance(value, np.ndarray) or value.size == 0:
            return None
        key = array_key(value)
        if key not in self._cache:
            self._cache[key] = (value, np.ascontiguousarray(value, dtype=np.float32))
        return self._cache[key][1]

    def child(self, obj: Any, path: str) -> T7Module:
        return T7Module(obj, path, self._cache)

    def children(self) -> list[T7Module]:
        return [
            self.child(child, f"{self.path}.modules[{i}]")
            for i, child in enumerate(lua_list(self.fields.get("modules")), start=1)
        ]
