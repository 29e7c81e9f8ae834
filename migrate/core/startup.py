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
    if any(name in sys.modules for name in ("sympy", "onnx_ir")):
        return
    if importlib.util.find_spec("sympy") is None:
        return
    for name in _DEFERRED:
        module = _Deferred(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = module
