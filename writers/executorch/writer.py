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
from migrate.core.formats.onnx import SOURCE_PATH
from migrate.core.graph import node_origin
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


def pte_bytes(model: ir.Model, source=None, notes: list[str] | None = None) -> bytes:
    """The program, serialized; what was changed on the way is appended to `notes`."""
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

    from migrate.writers.executorch.planes import split_depth  # needs torch: imported here

    program = generate(model, source)
    module = instantiate(program)
    planar = split_depth(module)
    if planar and notes is not None:
        notes.append(f"{planar} 3-D convolution/pooling layer(s) run as 2-D ops over depth "
                     "planes (ExecuTorch's runtime has no 3-D kernels): the same numbers")
    examples = tuple(torch.from_numpy(a) for a in program.example_inputs())
    try:
        exported = torch.export.export(module, examples)
        with _quiet_imports():
            lowered = to_edge_transform_and_lower(exported,
                                                  partitioner=[XnnpackPartitioner()])
    except Exception as exc:  # an op ExecuTorch cannot take
        raise _export_error(exc) from None
    _check_runtime_kernels(lowered.exported_program().graph, model, program)
    try:
        with _quiet_imports():
            return bytes(lowered.to_executorch().buffer)
    except Exception as exc:
        raise _export_error(exc) from None


def _export_error(exc: Exception) -> ConversionError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ConversionError(f"ExecuTorch could not export the model: "
                           f"{type(exc).__name__}: {text}"[:500])


# ExecuTorch's portable convolution kernel takes 1-D and 2-D convolutions only (a 5-D input
# fails when the program runs, error 0x12) and XNNPACK delegates 2-D ones only
_PORTABLE_CONV_MAX_RANK = 4


def _check_runtime_kernels(graph, model: ir.Model, program) -> None:
    """Refuse, naming the source layer, a program that ExecuTorch's runtime would not load
    (an operator without a kernel in the runtime shipped with the pip package) or not run
    (a 3-D convolution left to the portable kernels): the .pte would be written but
    useless. Known only after lowering: what XNNPACK takes needs no portable kernel."""
    with _quiet_imports():
        from executorch.extension.pybindings import portable_lib
    kernels = {name.split(".")[0] for name in portable_lib._get_operator_names()}
    for node in graph.nodes:
        schema = getattr(getattr(node.target, "_op", None), "_schema", None)
        if node.op != "call_function" or schema is None:
            continue
        if schema.name not in kernels:
            lacks = f"no kernel for {schema.name}"
        elif schema.name == "aten::convolution" and _rank(node.args[0]) > _PORTABLE_CONV_MAX_RANK:
            lacks = f"no {_rank(node.args[0]) - 2}-D convolution"
        else:
            continue
        raise ConversionError(f"ExecuTorch's runtime (portable kernels and XNNPACK) has "
                              f"{lacks}: this layer cannot run in a .pte",
                              where=_source_layer(node, model, program))


def _rank(arg) -> int:
    value = getattr(arg, "meta", {}).get("val")
    return value.dim() if value is not None else 0


def _source_layer(node, model: ir.Model, program) -> str | None:
    """The source layer an exported node computes: the generated submodule it runs in
    (torch.export's nn_module_stack) is named in the program's layer table."""
    stack = list(node.meta.get("nn_module_stack", {}).values())
    if not stack:
        return None
    attribute = stack[-1][0]
    for path, entry in program.layers.items():
        if entry.get("module") == attribute:
            for source_node in model.graph:
                if source_node.metadata_props.get(SOURCE_PATH) == path:
                    return node_origin(source_node)
            return path
    return None


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    path = os.path.join(out_dir, f"{stem}.pte")
    notes: list[str] = []
    write_atomically({path: pte_bytes(model, options.source, notes)})
    return WriteResult({"pte": path}, notes)


def recognize(paths: list[str]) -> dict[str, str] | None:
    """One ExecuTorch program file."""
    if len(paths) != 1:
        return None
    with open(paths[0], "rb") as fh:
        head = fh.read(8)
    return {"pte": paths[0]} if head[4:6] == PTE_IDENTIFIER else None
