"""`migrate inspect`: the module tree of a Torch7 model, what we can convert, and which
Lua package (project) each class comes from."""

from __future__ import annotations

from collections import Counter

import numpy as np

from migrate.readers.torch7.module import T7Module
from migrate.readers.torch7.reader import load_root
from migrate.readers.torch7.registry import lookup, package_of

_PARAM_FIELDS = ("weight", "bias", "running_mean", "running_var", "running_std")

# Packages named by a class prefix or a short rock name -> the project that ships them.
# (Converters name the package of a class they convert: `@converter(..., package=...)`.)
_PROJECTS = {
    "nn": "torch/nn",
    "nngraph": "torch/nngraph",
    "cudnn": "soumith/cudnn.torch",
    "cunn": "torch/cunn",
    "fbcunn": "facebook/fbcunn",
    "nnx": "clementfarabet/lua---nnx",
    "dpnn": "Element-Research/dpnn",
    "rnn": "Element-Research/rnn",
    "w2nn": "nagadomi/waifu2x",
}
CORE = "torch/nn"


def project_of(module: T7Module) -> str:
    """The project a module's class comes from ("torch/nn" for nn's own classes).

    One class name can belong to two projects (fast-neural-style's and CycleGAN's
    nn.InstanceNormalization): their fields tell them apart."""
    if module.cls == "nn.InstanceNormalization":
        from migrate.readers.torch7.converters.instance_norm import project_of as variant

        return variant(module)
    package = package_of(module.cls)
    return _PROJECTS.get(package, package)


def _params(module: T7Module) -> int:
    return sum(
        module.fields[f].size for f in _PARAM_FIELDS
        if isinstance(module.fields.get(f), np.ndarray)
    )


def inspect_file(path: str, max_bytes: int | None = None) -> str:
    root = load_root(path) if max_bytes is None else load_root(path, max_bytes)
    lines: list[str] = []
    total = missing = 0
    projects: Counter[str] = Counter()

    def walk(module: T7Module, depth: int) -> None:
        nonlocal total, missing
        supported = lookup(module.cls) is not None
        count = _params(module)
        total += count
        missing += not supported
        project = project_of(module)
        projects[project] += 1
        mark = "ok " if supported else "NO "
        origin = f"  [{project}]" if project != CORE else ""
        extra = f"  {count:,} params" if count else ""
        lines.append(f"{mark} {'  ' * depth}{module.path}  {module.cls}{origin}{extra}")
        for child in module.children():
            walk(child, depth + 1)

    walk(root, 0)
    lines.append(f"{total:,} parameters; "
                 + ("every module is supported" if not missing
                    else f"{missing} module(s) have no converter (marked NO)"))
    lines.append("classes from: " + ", ".join(f"{p} ({n})" for p, n in projects.most_common()))
    return "\n".join(lines)
