"""`migrate inspect`: the module tree of a Torch7 model and what we can convert."""

from __future__ import annotations

import numpy as np

from migrate.readers.torch7.module import T7Module
from migrate.readers.torch7.reader import load_root
from migrate.readers.torch7.registry import lookup, package_of

_PARAM_FIELDS = ("weight", "bias", "running_mean", "running_var", "running_std")


def _params(module: T7Module) -> int:
    return sum(
        module.fields[f].size for f in _PARAM_FIELDS
        if isinstance(module.fields.get(f), np.ndarray)
    )


def inspect_file(path: str, max_bytes: int | None = None) -> str:
    root = load_root(path) if max_bytes is None else load_root(path, max_bytes)
    lines: list[str] = []
    total = missing = 0

    def walk(module: T7Module, depth: int) -> None:
        nonlocal total, missing
        supported = lookup(module.cls) is not None
        count = _params(module)
        total += count
        missing += not supported
        mark = "ok " if supported else "NO "
        extra = f"  {count:,} params" if count else ""
        package = package_of(module.cls)
        origin = f" [{package}]" if package != "nn" else ""  # third-party classes
        lines.append(f"{mark} {'  ' * depth}{module.path}  {module.cls}{origin}{extra}")
        for child in module.children():
            walk(child, depth + 1)

    walk(root, 0)
    lines.append(f"{total:,} parameters; "
                 + ("every module is supported" if not missing
                    else f"{missing} module(s) have no converter (marked NO)"))
    return "\n".join(lines)
