"""One model file in, converted files out: read -> common graph -> write -> verify."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from migrate.errors import MigrateError, UsageError, VerificationError
from migrate.graph import static_shape
from migrate.layerwise import LayerwiseResult, run_layerwise
from migrate.optimize import optimize
from migrate.passes import Preprocessing, fold_input_preprocessing
from migrate.report import ReportData, module_edges, write_report
from migrate.verify import DEFAULT_ATOL, DEFAULT_RTOL, random_inputs
from readers.torch7.reader import ReadResult, read_torch7
from readers.torch7.t7file import DEFAULT_MAX_BYTES
from writers.caffe2 import build_nets, write_caffe2
from writers.onnx import write_onnx

TARGETS = ("caffe2", "onnx")
MAX_VERIFY_ELEMENTS = 1 << 28  # 1 GB of float32 input


@dataclass
class ConvertOptions:
    target: str = "caffe2"
    out_dir: str = "."
    input_shapes: Sequence[Sequence[int]] | None = None
    inputs: Sequence[np.ndarray] | None = None  # verification input (default: random)
    verify: bool = True
    report: bool = False
    caffe2_python: str | None = None
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    seed: int = 0
    optimize: bool = True
    stem: str | None = None  # output file names (default: the model's file name)
    max_bytes: int = DEFAULT_MAX_BYTES
    preprocessing: Preprocessing = field(default_factory=Preprocessing)


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
    verification: LayerwiseResult | None
    input_description: str = ""
    notes: list[str] = field(default_factory=list)


def count_parameters(model: ir.Model) -> tuple[int, int]:
    """Elements and bytes of the floating-point constants (weights; not shapes or pads)."""
    count = nbytes = 0
    for value in model.graph.initializers.values():
        if value.const_value is not None and value.const_value.dtype.is_floating_point():
            count += value.const_value.size
            nbytes += value.const_value.nbytes
    return count, nbytes


def load_source(path: str, options: ConvertOptions) -> tuple[ReadResult, list[str]]:
    """The source model's common graph, with requested preprocessing folded in."""
    if os.path.isdir(path):
        raise UsageError("is a folder; `migrate batch FOLDER -o OUT` converts a whole archive",
                         file=path)
    if not os.path.isfile(path):
        raise UsageError("no such file", file=path)
    shapes = options.input_shapes
    if shapes is None and options.inputs is not None:
        shapes = [a.shape for a in options.inputs]
    result = read_torch7(path, shapes, options.max_bytes)
    notes = list(result.notes)
    if options.preprocessing.active:
        try:
            notes += fold_input_preprocessing(result.model, options.preprocessing)
        except MigrateError as exc:
            raise exc.with_file(path) from None
    return result, notes


def verification_inputs(model: ir.Model, options: ConvertOptions) -> tuple[list, str]:
    shapes = [static_shape(v) for v in model.graph.inputs]
    text = ", ".join("x".join(map(str, s)) for s in shapes)
    if sum(math.prod(s) for s in shapes) > MAX_VERIFY_ELEMENTS:
        raise UsageError(f"input {text} is too large to verify here (use --no-verify)")
    if options.inputs is not None:
        return [np.asarray(a, np.float32) for a in options.inputs], f"the given {text} input"
    return random_inputs(shapes, options.seed), f"a random {text} input (seed {options.seed})"


def convert_file(path: str, options: ConvertOptions) -> ConversionSummary:
    """Convert one model file; on any failure no model file is left in `out_dir`
    (with --report, a failed verification still leaves its report)."""
    if options.target not in TARGETS:
        raise UsageError(f"unknown target '{options.target}' (choose from {', '.join(TARGETS)})")
    result, notes = load_source(path, options)
    model = result.model
    stem = options.stem or os.path.splitext(os.path.basename(path))[0]
    params, param_bytes = count_parameters(model)
    reference = model
    if options.optimize:
        if options.verify or options.report:
            # verify against the graph as read, not the optimized one
            reference = load_source(path, options)[0].model
        notes += optimize(model)

    os.makedirs(options.out_dir, exist_ok=True)
    # Write into a private folder beside the destination, verify there, then move
    # into place: a failed conversion or verification leaves nothing behind.
    staging = tempfile.mkdtemp(prefix=".migrate-", dir=options.out_dir)
    failure: VerificationError | None = None
    try:
        if options.target == "caffe2":
            nets = build_nets(model, stem, optimize=options.optimize)
            notes += nets.notes
            staged = write_caffe2(nets, staging, stem)
        else:
            staged = write_onnx(model, staging, stem)
        verification, description = None, ""
        if options.verify or options.report:
            inputs, description = verification_inputs(reference, options)
            verification = run_layerwise(reference, staged, inputs, options.atol,
                                         options.rtol, options.caffe2_python)
            if verification.outputs is not None and not verification.outputs.passed:
                failure = VerificationError(
                    f"{verification.runtime} output differs from the source model: "
                    f"{verification.outputs.describe()}"
                    + (f"; first divergence at {verification.first_divergence.label}"
                       if verification.first_divergence else ""), file=path)
        final = {key: os.path.join(options.out_dir, os.path.basename(p))
                 for key, p in staged.items()}
        if options.report and verification is not None:
            data = ReportData(path, options.target, final, description, options.atol,
                              options.rtol, params, notes, verification,
                              module_edges(reference))
            write_report(data, os.path.join(staging, f"{stem}.report.html"),
                         os.path.join(staging, f"{stem}.report.json"))
            for kind in ("html", "json"):
                name = f"{stem}.report.{kind}"
                os.replace(os.path.join(staging, name), os.path.join(options.out_dir, name))
                final[f"report_{kind}"] = os.path.join(options.out_dir, name)
        if failure is not None:
            if options.report:
                failure.message += f" (see {final['report_html']})"
            raise failure
        for key, staged_path in staged.items():
            os.replace(staged_path, final[key])
    except MigrateError as exc:
        raise exc.with_file(path) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ConversionSummary(
        source=path, target=options.target, root_class=result.root_class,
        modules=result.module_count, parameters=params, parameter_bytes=param_bytes,
        input_shapes=[static_shape(v) for v in model.graph.inputs], outputs=final,
        verification=verification, input_description=description, notes=notes,
    )


def classify_converted(paths: Sequence[str]) -> dict[str, str]:
    """Which converted file is which: an .onnx, or a Caffe2 init/predict pair."""
    from writers.caffe2.caffe2_pb2 import NetDef

    if len(paths) == 1 and paths[0].endswith(".onnx"):
        return {"onnx": paths[0]}
    if len(paths) != 2:
        raise UsageError("give either one .onnx file or a Caffe2 init_net and predict_net")
    kinds = {}
    for p in paths:
        try:
            net = NetDef.FromString(open(p, "rb").read())
        except OSError as exc:
            raise UsageError(f"cannot read: {exc.strerror}", file=p) from None
        except Exception:
            raise UsageError("not a Caffe2 NetDef", file=p) from None
        is_init = bool(net.op) and all(op.type.endswith("Fill") for op in net.op)
        kinds["init_net" if is_init else "predict_net"] = p
    if set(kinds) != {"init_net", "predict_net"}:
        raise UsageError("could not tell the init_net from the predict_net")
    return kinds


def verify_files(source: str, converted: Sequence[str], options: ConvertOptions
                 ) -> tuple[LayerwiseResult, ReportData]:
    """Layer-by-layer check of already written files against their source model."""
    written = classify_converted(converted)
    result, notes = load_source(source, options)
    inputs, description = verification_inputs(result.model, options)
    layerwise = run_layerwise(result.model, written, inputs, options.atol, options.rtol,
                              options.caffe2_python)
    params, _ = count_parameters(result.model)
    target = "onnx" if "onnx" in written else "caffe2"
    data = ReportData(source, target, written, description, options.atol, options.rtol,
                      params, notes, layerwise, module_edges(result.model))
    return layerwise, data
