"""PyTorch as a runtime: runs the files of a PyTorch model, dispatched on their roles.

- "model": a source `.pt2` ExportedProgram (exported.py), each layer's output under
  the key the PyTorch reader gives it.
- "code", "weights", "meta": a module the PyTorch writer generated (STEM.py,
  STEM.safetensors, STEM.json; generated.py), each layer's output under its source path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from migrate.core.errors import VerificationError
from migrate.core.model import RunResult, RuntimeStatus

INSTALL_HINT = "pip install 'torch7-migrate[torch]'"


def status(python: str | None = None) -> RuntimeStatus:
    try:
        import torch
    except ImportError:
        return RuntimeStatus(False, "not installed", INSTALL_HINT)
    return RuntimeStatus(True, f"torch {torch.__version__}")


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    if "model" in files:  # a source ExportedProgram (the PyTorch reader's role)
        from migrate.runtimes.torch import exported

        return exported.run(files["model"], inputs, layers=layers)
    if {"code", "weights", "meta"} <= set(files):  # a module the PyTorch writer generated
        from migrate.runtimes.torch import generated

        return generated.run(files, inputs, layers=layers)
    raise VerificationError(f"PyTorch cannot run files of roles {', '.join(sorted(files))}")
