"""One model file in, converted files out: read -> common graph -> write -> verify."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx_ir as ir

from migrate.caffe2_side import find_caffe2_python, run_caffe2
from migrate.errors import MigrateError, UsageError, VerificationError
from migrate.graph import static_shape
from migrate.onnx_runtime import run_onnx
from migrate.verify import DEFAULT_ATOL, DEFAULT_RTOL, Comparison, compare, random_inputs
from readers.torch7.reader import read_torch7
from writers.caffe2 import build_nets, write_caffe2
from writers.onnx import write_onnx

TARGETS = ("caffe2", "onnx")


@dataclass
class ConvertOptions:
    target: str = "caffe2"
    out_dir: str = "."
    input_shapes: Sequence[Sequence[int]] | None = None
    verify: bool = True
    caffe2_python: str | None = None
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    seed: int = 0


@dataclass
class Verification:
    runtime: str  # what ran the written files
    comparison: Comparison | None = None
    skipped: str | None = None  # why it did not run


@dataclass
class ConversionSummary:
    source: str
    target: str
    root_class: str
    modules: int
    parameters: int
    parameter_bytes: int
    input_shapes: list[tuple[int, ...]]
    outputs: dict[str, str]
    verification: Verification | None
    notes: list[str] = field(default_factory=list)


def count_parameters(model: ir.Model) -> tuple[int, int]:
    count = nbytes = 0
    for value in model.graph.initializers.values():
        if value.const_value is not None:
            count += value.const_value.size
            nbytes += value.const_value.nbytes
    return count, nbytes


def convert_file(path: str, options: ConvertOptions) -> ConversionSummary:
    """Convert one model file; on any failure nothing is left in `options.out_dir`."""
    if options.target not in TARGETS:
        raise UsageError(f"unknown target '{options.target}' (choose from {', '.join(TARGETS)})")
    if not os.path.isfile(path):
        raise UsageError("no such file", file=path)
    result = read_torch7(path, options.input_shapes)
    model = result.model
    stem = os.path.splitext(os.path.basename(path))[0]
    shapes = [static_shape(v) for v in model.graph.inputs]
    params, param_bytes = count_parameters(model)

    os.makedirs(options.out_dir, exist_ok=True)
    # Write into a private folder beside the destination, verify there, then move
    # into place: a failed conversion or verification leaves nothing behind.
    staging = tempfile.mkdtemp(prefix=".migrate-", dir=options.out_dir)
    try:
        if options.target == "caffe2":
            staged = write_caffe2(build_nets(model, stem), staging, stem)
        else:
            staged = write_onnx(model, staging, stem)
        verification = None
        if options.verify:
            verification = _verify(model, staged, options, shapes)
            if verification.comparison is not None and not verification.comparison.passed:
                raise VerificationError(
                    f"{verification.runtime} output differs from the source model: "
                    f"{verification.comparison.describe()}", file=path)
        outputs = {}
        for key, staged_path in staged.items():
            final = os.path.join(options.out_dir, os.path.basename(staged_path))
            os.replace(staged_path, final)
            outputs[key] = final
    except MigrateError as exc:
        raise exc.with_file(path) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ConversionSummary(
        source=path, target=options.target, root_class=result.root_class,
        modules=result.module_count, parameters=params, parameter_bytes=param_bytes,
        input_shapes=shapes, outputs=outputs, verification=verification, notes=result.notes,
    )


def _verify(model: ir.Model, written: dict[str, str], options: ConvertOptions,
            shapes: list[tuple[int, ...]]) -> Verification:
    inputs = random_inputs(shapes, options.seed)
    reference = run_onnx(model, inputs)
    if options.target == "onnx":
        actual = run_onnx(written["onnx"], inputs)
        return Verification("onnxruntime (written .onnx)", compare(
            actual, reference, options.atol, options.rtol))
    python = find_caffe2_python(options.caffe2_python)
    if python is None:
        return Verification("Caffe2", skipped=(
            "Caffe2 side runtime not found: run tools/provision-caffe2.sh or pass "
            "--caffe2-python; the Caffe2 files were NOT executed"))
    actual = run_caffe2(python, written["init_net"], written["predict_net"], inputs)
    return Verification("Caffe2 (real runtime)", compare(
        actual, reference, options.atol, options.rtol))

