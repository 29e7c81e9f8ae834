"""Common graph -> `STEM.pte`: the PyTorch writer's generated module (built in memory with
its weights), exported with torch.export at the source's input shapes, lowered to
ExecuTorch with the XNNPACK partitioner (the delegate takes what XNNPACK runs; any other
op stays an ExecuTorch portable kernel) and serialized."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

import onnx_ir as ir

from migrate.core.errors import ConversionError, UsageError
from migrate.core.model import WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.writers.pytorch.program import generate
from migrate.writers.pytorch.writer import instantiate

# a .pte is a FlatBuffer whose file identifier (bytes 4-8) is "ET" and a version
PTE_IDENTIFIER = b"ET"


@contextlib.contextmanager
def _quiet_imports():
    """ExecuTorch's imports log warnings meant for its developers (torchao's CUDA kernels
    missing on a CPU machine, torch pytree deprecations): not for our users."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def pte_bytes(model: ir.Model, source=None) -> bytes:
    try:
        import torch

        with _quiet_imports():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
                XnnpackPartitioner,
            )
            from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise UsageError(f"--to executorch needs {exc.name or 'executorch'}: "
                         "pip install 'torch7-migrate[executorch]'") from None

    program = generate(model, source)
    module = instantiate(program)
    examples = tuple(torch.from_numpy(a) for a in program.example_inputs())
    try:
        exported = torch.export.export(module, examples)
        with _quiet_imports():
            lowered = to_edge_transform_and_lower(exported,
                                                  partitioner=[XnnpackPartitioner()])
            return bytes(lowered.to_executorch().buffer)
    except Exception as exc:  # an op ExecuTorch cannot take
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConversionError(f"ExecuTorch could not export the model: "
                              f"{type(exc).__name__}: {text}"[:500]) from None


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    path = os.path.join(out_dir, f"{stem}.pte")
    write_atomically({path: pte_bytes(model, options.source)})
    return WriteResult({"pte": path})


def recognize(paths: list[str]) -> dict[str, str] | None:
    """One ExecuTorch program file."""
    if len(paths) != 1:
        return None
    with open(paths[0], "rb") as fh:
        head = fh.read(8)
    return {"pte": paths[0]} if head[4:6] == PTE_IDENTIFIER else None
