"""Run a `.pte` in ExecuTorch's own runtime (the C++ runtime behind executorch.runtime),
as a phone would. Layer outputs are not observable: the XNNPACK delegate runs the fused
network as one call, so only the program's outputs are returned."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence

import numpy as np

from migrate.core.errors import UsageError, VerificationError
from migrate.core.model import RunResult, RuntimeStatus

INSTALL_HINT = "pip install 'torch7-migrate[executorch]'"
# ExecuTorch's ScalarType codes (c10) -> numpy
_DTYPES = {0: np.uint8, 1: np.int8, 3: np.int32, 4: np.int64, 6: np.float32, 7: np.float64,
           11: np.bool_}


def status(python: str | None = None) -> RuntimeStatus:
    if importlib.util.find_spec("executorch") is None:
        return RuntimeStatus(False, "not installed", INSTALL_HINT)
    return RuntimeStatus(True, f"executorch {importlib.metadata.version('executorch')}")


@contextlib.contextmanager
def _native_log():
    """Collect what ExecuTorch's C++ runtime writes to stderr (cpuinfo's probing of CPU
    files a virtual machine lacks, on every start): shown only if the run fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _last_lines(log) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return f" ({lines[-1][:200]})" if lines else ""


def _method(path: str):
    from executorch.runtime import Runtime

    with _native_log() as log:
        try:
            program = Runtime.get().load_program(path)
            return program.load_method("forward")
        except Exception as exc:  # ExecuTorch refuses a damaged or foreign file
            raise UsageError(f"ExecuTorch cannot load this program: {exc}{_last_lines(log)}"
                             [:400], file=path) from None


def _inputs(method, inputs: Sequence[np.ndarray]) -> list:
    import torch

    meta = method.metadata
    if meta.num_inputs() != len(inputs):
        raise UsageError(f"the program takes {meta.num_inputs()} input(s); {len(inputs)} given")
    tensors = []
    for k, array in enumerate(inputs):
        info = meta.input_tensor_meta(k)
        array = np.asarray(array)
        if tuple(array.shape) != tuple(info.sizes()):
            raise UsageError(f"input {k + 1} has shape {'x'.join(map(str, array.shape))}; the "
                             f"program takes {'x'.join(map(str, info.sizes()))}")
        dtype = _DTYPES.get(int(info.dtype()), np.float32)
        tensors.append(torch.from_numpy(np.array(array, dtype=dtype, order="C")))
    return tensors


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    method = _method(files["pte"])
    tensors = _inputs(method, inputs)
    with _native_log() as log:
        try:
            outputs = method.execute(tensors)
        except Exception as exc:
            raise VerificationError(f"ExecuTorch failed to run the program: {exc}"
                                    f"{_last_lines(log)}"[:500]) from None
    return RunResult([np.asarray(o.detach().numpy() if hasattr(o, "detach") else o).copy()
                      for o in outputs])


def run_many(jobs: Sequence[tuple[dict[str, str], Sequence[np.ndarray]]],
             python: str | None = None) -> list[RunResult | str]:
    """Several programs in this process: each result, or the error text of one that failed."""
    results: list[RunResult | str] = []
    for files, inputs in jobs:
        try:
            results.append(run(files, inputs))
        except (UsageError, VerificationError) as exc:
            results.append(exc.message)
    return results
