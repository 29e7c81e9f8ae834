"""Start-up time: defer sympy until something really uses it.

onnx_ir imports sympy (about 0.3 s, half of this tool's import time) for the
arithmetic of symbolic dimensions; the graphs built here have static shapes and
never use it. Until one of its attributes is read, a stand-in module takes its
place in sys.modules (and in place of the onnx_ir module whose top level reads
sympy attributes); the first attribute read imports the real module and makes
the stand-in its alias, so anything that does use sympy gets it as usual.

(importlib.util.LazyLoader cannot do this on Python 3.11: the `import sympy`
statement itself reads `__spec__`, which makes LazyLoader load the module.)
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

_DEFERRED = ("sympy", "onnx_ir._symbolic_shapes")


class _Deferred(types.ModuleType):
    def __getattr__(self, attr: str):
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(real.__dict__)  # later reads are plain attribute reads
        return getattr(real, attr)


def defer_sympy() -> None:
    """Defer sympy (and onnx_ir itself: commands that never build a graph, such as
    `migrate inspect` of a Torch7 file, need not pay for onnx and onnx_ir; the converter
    modules that `import onnx_ir as ir` only read it when they convert)."""
    if any(name in sys.modules for name in ("sympy", "onnx_ir")):
        return
    if importlib.util.find_spec("sympy") is None or importlib.util.find_spec("onnx_ir") is None:
        return
    for name in ("onnx_ir", *_DEFERRED):
        module = _Deferred(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = module
