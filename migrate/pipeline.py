"""One model in, converted files out: read -> common graph -> passes -> write -> verify.

Formats are known only through the registries (migrate.core.registry): the reader is
found by the files' content, the writer by the target's name, the runtimes by the
reader's and the writer's declared runtime.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from migrate.core.detect import recognize_converted, resolve_source, split_source_and_converted
from migrate.core.errors import MigrateError, UsageError, VerificationError
from migrate.core.model import (
    DEFAULT_MAX_BYTES,
    InputInfo,
    ReadOptions,
    RunResult,
    SourceModel,
    WriteOptions,
)
from migrate.core.passes.preprocessing import Preprocessing, fold_input_preprocessing
from migrate.core.registry import READERS, WRITERS, ReaderSpec
from migrate.verify.compare import DEFAULT_ATOL, DEFAULT_RTOL
from migrate.verify.layerwise import (
    LayerwiseResult,
    compare_runs,
    run_files,
    runtime_label,
    runtime_missing,
)

MAX_VERIFY_ELEMENTS = 1 << 28  # 1 GB of float32 input


@dataclass
class ConvertOptions:
    target: str = "caffe2"
    out_dir: str = "."
    input_shapes: Sequence[Sequence[int]] | None = None
    inputs: Sequence[np.ndarray] | None = None  # verification input (default: random)
    # outputs the original framework computed on `inputs`: the reference when given
    expected: Sequence[np.ndarray] | None = None
    expected_label: str = ""  # where `expected` came from, for the summary
    verify: bool = True
    report: bool = False
    # interpreters of side runtimes, by runtime name (else found on PATH / provisioned)
    runtime_python: dict[str, str] = field(default_factory=dict)
    caffe2_python: str | None = None  # same as runtime_python["caffe2"]
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    seed: int = 0
    optimize: bool = True
    stem: str | None = None  # output file names (default: the model's file name)
    max_bytes: int = DEFAULT_MAX_BYTES
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    allow_random_init: bool = False
    model_class: str | None = None
    example_inputs: Sequence[Any] | None = None
    writer_options: dict[str, Any] = field(default_factory=dict)

    def pythons(self) -> dict[str, str]:
        found = dict(self.runtime_python)
        if self.caffe2_python:
            found.setdefault("caffe2", self.caffe2_python)
        return found

    def read_options(self) -> ReadOptions:
        shapes = self.input_shapes
        if shapes is None and self.inputs is not None:
            shapes = [np.shape(a) for a in self.inputs]
        return ReadOptions(input_shapes=shapes, max_bytes=self.max_bytes,
                           allow_random_init=self.allow_random_init,
                           model_class=self.model_class, example_inputs=self.example_inputs)


@dataclass
class ConversionSummary:
    source: str
    source_format: str
    target: str
    description: str
    layers: int
    layer_word: str
    parameters: int
    parameter_bytes: int
    inputs: list[InputInfo]
    outputs: dict[str, str]
    verification: LayerwiseResult | None
    input_description: str = ""
    notes: list[str] = field(default_factory=list)
    fixups: list[str] = field(default_factory=list)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(i.shape) for i in self.inputs]

    def __str__(self) -> str:
        return format_summary(self)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _size_of(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def format_summary(s: ConversionSummary) -> str:
    """The summary the command line prints."""
    shapes = ", ".join("x".join(map(str, i.shape)) for i in s.inputs)
    lines = [f"migrate: {s.source} -> {s.target}",
             f"  source      {s.description} ({s.source_format}), {s.layers} {s.layer_word} "
             f"converted, input {shapes}"]
    for info in s.inputs:
        if info.expects:
            lines.append(f"  input       {info.name}: {info.expects}")
    lines.append(f"  parameters  {s.parameters:,} ({_human_bytes(s.parameter_bytes)})")
    for path in s.outputs.values():
        lines.append(f"  wrote       {path} ({_human_bytes(_size_of(path))})")
    lines += [f"  fix-up      {f}" for f in s.fixups]
    lines += [f"  note        {n}" for n in s.notes]
    v = s.verification
    if v is None:
        lines.append("  verified    no (--no-verify)")
    elif not v.executed:
        lines.append(f"  verified    NOT RUN: {v.skipped}")
    else:
        lines += [f"  note        {n}" for n in v.notes]
        lines.append(f"  verified    {v.runtime} vs {v.reference} on {s.input_description}: "
                     f"{v.outputs.describe()}")
    return "\n".join(lines)


def count_parameters(model) -> tuple[int, int]:
    """Elements and bytes of the floating-point constants (weights; not shapes or pads)."""
    count = nbytes = 0
    for value in model.graph.initializers.values():
        if value.const_value is not None and value.const_value.dtype.is_floating_point():
            count += value.const_value.size
            nbytes += value.const_value.nbytes
    return count, nbytes


# -- reading ------------------------------------------------------------------------------

def _paths(source: Any) -> list[str] | None:
    if isinstance(source, str | os.PathLike):
        return [os.fspath(source)]
    if isinstance(source, list | tuple) and all(isinstance(p, str | os.PathLike) for p in source):
        return [os.fspath(p) for p in source]
    return None


def _object_reader(source: Any) -> ReaderSpec:
    for spec in READERS.all():
        if spec.accepts_object is not None and spec.accepts_object(source):
            return spec
    raise UsageError(f"cannot convert a {type(source).__name__}: give model file path(s)"
                     + "".join(f", or a {s.title} object" for s in READERS.all()
                               if s.accepts_object is not None))


def read_source(source: Any, options: ConvertOptions) -> SourceModel:
    """The source model's common graph, with requested preprocessing folded in."""
    paths = _paths(source)
    read_options = options.read_options()
    if paths is None:
        spec = _object_reader(source)
        result = spec.load().read_object(source, read_options)
    else:
        spec, ordered = resolve_source(paths)
        try:
            result = spec.load().read(ordered, read_options)
        except MigrateError as exc:
            raise exc.with_file(ordered[0]) from None
    if options.preprocessing.active:
        try:
            result.fixups += fold_input_preprocessing(result.model, options.preprocessing)
        except MigrateError as exc:
            raise exc.with_file(result.paths[0] if result.paths else "model") from None
    return result


def load(source: Any, **options: Any):
    """The common graph (onnx_ir.Model) of a source model: path(s) or a live object."""
    return read_source(source, ConvertOptions(**options)).model


# -- verification -------------------------------------------------------------------------

def _input_text(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


def verification_inputs(source: SourceModel, options: ConvertOptions
                        ) -> tuple[list[np.ndarray], str]:
    graph_inputs = list(source.model.graph.inputs)
    shapes = [tuple(int(d) for d in v.shape) for v in graph_inputs]
    text = _input_text(shapes)
    if sum(math.prod(s) for s in shapes) > MAX_VERIFY_ELEMENTS:
        raise UsageError(f"input {text} is too large to verify here (use --no-verify)")
    if options.inputs is not None:
        given = [np.asarray(a) for a in options.inputs]
        if len(given) != len(shapes):
            raise UsageError(f"{len(given)} --input array(s) given; the model takes "
                             f"{len(shapes)} input(s) of shape {text}")
        infos = {i.name: i for i in source.inputs}
        for k, (array, shape) in enumerate(zip(given, shapes, strict=True)):
            if tuple(array.shape) != shape:
                raise UsageError(f"--input {k + 1} has shape {_input_text([array.shape])}; the "
                                 f"model expects {_input_text([shape])} (--input-shape sets it "
                                 "where the model allows)")
            info = infos.get(graph_inputs[k].name)
            if info is not None and np.dtype(info.dtype).kind in "iu" and array.dtype.kind == "f":
                # indices saved as floats (e.g. a FloatTensor of word indices): every runtime
                # gets the integers the model takes
                if not np.array_equal(array, np.trunc(array)):
                    raise UsageError(f"--input {k + 1} holds fractions; the model takes "
                                     f"{info.dtype} integers there")
                given[k] = array.astype(info.dtype)
        return given, f"the given {text} input"
    rng = np.random.default_rng(options.seed)
    arrays = []
    infos = {i.name: i for i in source.inputs}
    for value, shape in zip(graph_inputs, shapes, strict=True):
        info = infos.get(value.name)
        dtype = np.dtype(info.dtype if info else "float32")
        if dtype.kind in "iu":
            low, high = (info.value_range if info and info.value_range else (0, 10))
            arrays.append(rng.integers(low, high, size=shape, endpoint=True).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays, f"a random {text} input (seed {options.seed})"


def reference_run(source: SourceModel, graph, inputs: list[np.ndarray],
                  options: ConvertOptions) -> tuple[RunResult, str, list[str]]:
    """What the converted model must reproduce: the recorded outputs (--expected), the
    source run in its own real runtime, or the source's common graph in onnxruntime."""
    from migrate.runtimes.ort.api import run_model

    if options.expected is not None:
        label = options.expected_label or "the given outputs"
        return RunResult([np.asarray(a) for a in options.expected]), f"the expected outputs " \
            f"({label})", []
    notes = []
    spec = READERS.get(source.format)
    runtime = spec.runtime if spec else None
    if runtime and source.runtime_files:
        why = runtime_missing(runtime, options.pythons())
        if why is None:
            feed = inputs
            if options.preprocessing.active:
                feed = [options.preprocessing.apply(a) for a in inputs]
            try:
                run = run_files(runtime, source.runtime_files, feed, layers=True,
                                python=options.pythons())
                return run, f"the source files in {runtime_label(runtime)}", notes
            except MigrateError as exc:
                notes.append(f"the source's own runtime failed ({exc.message}); compared with "
                             "the source graph in onnxruntime instead")
        else:
            notes.append(f"{why}; compared with the source graph in onnxruntime instead")
    return run_model(graph, inputs, layers=True), "the source graph in onnxruntime", notes


def verify_written(source: SourceModel, graph, writer: str, files: dict[str, str],
                   inputs: list[np.ndarray], options: ConvertOptions) -> LayerwiseResult:
    """Run the written files in their target's real runtime and compare layer by layer."""
    spec = WRITERS.get(writer)
    assert spec is not None
    runtime = spec.runtime
    reference, label, notes = reference_run(source, graph, inputs, options)
    why = runtime_missing(runtime, options.pythons())
    if why is not None:
        return LayerwiseResult(runtime_label(runtime), executed=False, reference=label,
                               skipped=f"{why}: the {spec.name} files were NOT executed",
                               notes=notes)
    candidate = run_files(runtime, files, inputs, layers=True, python=options.pythons())
    result = compare_runs(graph, reference, candidate, runtime=runtime_label(runtime),
                          reference_label=label, atol=options.atol, rtol=options.rtol)
    result.notes = notes
    return result


# -- converting ---------------------------------------------------------------------------

def check_out_dir(path: str) -> None:
    """Fail early (before reading a model) when the output folder cannot be made."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError("the output folder (-o) is a file, not a folder", file=path)
    ancestor = os.path.abspath(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise UsageError(f"cannot create the output folder (-o): {ancestor} is a file",
                         file=path)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create the output folder (-o): {ancestor} is not writable",
                         file=path)


def prepare_out_dir(path: str) -> None:
    check_out_dir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder (-o): {exc.strerror or exc}",
                         file=path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError("cannot write into the output folder (-o): permission denied",
                         file=path)


def _move_into_place(staged: str, final: str) -> None:
    if os.path.isdir(staged) and os.path.isdir(final):
        shutil.rmtree(final)  # a folder output (e.g. a SavedModel) replaces the old one
    os.replace(staged, final)


def _stem(source: SourceModel, options: ConvertOptions) -> str:
    if options.stem:
        return options.stem
    if source.stem:
        return source.stem
    if source.paths:
        return os.path.splitext(os.path.basename(source.paths[0]))[0] or "model"
    return "model"


def convert(source: Any, to: str = "caffe2", out_dir: str = ".", **options: Any
            ) -> ConversionSummary:
    """Convert a model (path(s) or live object) and verify it."""
    return convert_source(source, ConvertOptions(target=to, out_dir=out_dir, **options))


def convert_source(source: Any, options: ConvertOptions) -> ConversionSummary:
    """Convert one model; on any failure no model file is left in `out_dir`
    (with --report, a failed verification still leaves its report)."""
    writer = WRITERS.get(options.target)
    if writer is None:
        raise UsageError(f"unknown target '{options.target}' (choose from "
                         f"{', '.join(WRITERS.names())})")
    check_out_dir(options.out_dir)
    src = read_source(source, options)
    name = src.paths[0] if src.paths else type(source).__name__
    try:
        prepare_out_dir(options.out_dir)
        return _convert(source, src, writer.name, options)
    except MigrateError as exc:
        raise exc.with_file(name) from None


def _convert(source: Any, src: SourceModel, target: str, options: ConvertOptions
             ) -> ConversionSummary:
    from migrate.core.passes.optimize import optimize
    from migrate.verify.report import ReportData, module_edges, write_report

    writer = WRITERS.get(target)
    assert writer is not None
    model = src.model
    stem = _stem(src, options)
    params, param_bytes = count_parameters(model)
    notes = list(src.notes)
    fixups = list(src.fixups)
    checking = options.verify or options.report
    reference = model
    if options.optimize:
        if checking:
            reference = read_source(source, options).model  # verify against the graph as read
        fixups += optimize(model, fold=writer.fold_weights)
    inputs, description = verification_inputs(src, options) if checking else ([], "")

    # Write into a private folder beside the destination, verify there, then move
    # into place: a failed conversion or verification leaves nothing behind.
    try:
        staging = tempfile.mkdtemp(prefix=".migrate-", dir=options.out_dir)
    except OSError as exc:
        raise UsageError(f"cannot write into the output folder: {exc.strerror or exc}",
                         file=options.out_dir) from None
    failure: VerificationError | None = None
    verification = None
    try:
        written = writer.load().write(model, staging, stem, WriteOptions(
            optimize=options.optimize, extra=dict(options.writer_options), source=src))
        fixups += written.notes
        staged = written.files
        if checking:
            verification = verify_written(src, reference, target, staged, inputs, options)
            if verification.executed and not verification.outputs.passed:
                failure = VerificationError(
                    f"{verification.runtime} output differs from {verification.reference}: "
                    f"{verification.outputs.describe()}"
                    + (f"; first divergence at {verification.first_divergence.label}"
                       if verification.first_divergence else ""))
        final = {key: os.path.join(options.out_dir, os.path.basename(p))
                 for key, p in staged.items()}
        if options.report and verification is not None:
            data = ReportData(", ".join(src.paths) or stem, target,
                              {} if failure else final, description, options.atol,
                              options.rtol, params, fixups, verification,
                              module_edges(reference), notes=notes)
            report_files = {}
            for kind in ("html", "json"):
                report_files[kind] = os.path.join(staging, f"{stem}.report.{kind}")
            write_report(data, report_files["html"], report_files["json"])
            for kind, staged_report in report_files.items():
                final_report = os.path.join(options.out_dir, os.path.basename(staged_report))
                os.replace(staged_report, final_report)
                final[f"report_{kind}"] = final_report
        if failure is not None:
            if options.report:
                failure.message += f" (see {final['report_html']})"
            raise failure
        for key, staged_path in staged.items():
            _move_into_place(staged_path, final[key])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ConversionSummary(
        source=", ".join(src.paths) or type(source).__name__, source_format=src.format,
        target=target, description=src.description, layers=src.layer_count,
        layer_word=src.layer_word, parameters=params, parameter_bytes=param_bytes,
        inputs=src.inputs, outputs=final, verification=verification,
        input_description=description, notes=notes, fixups=fixups)


def verify_files(paths: Sequence[str], options: ConvertOptions):
    """`migrate verify SOURCE... CONVERTED...`: layer-by-layer check of files written
    earlier against their source model. Returns (LayerwiseResult, ReportData)."""
    from migrate.verify.report import ReportData, module_edges

    spec, source_paths, converted = split_source_and_converted(paths)
    if not converted:
        raise UsageError("give the converted file(s) after the source model's file(s)")
    writer, files = recognize_converted(converted)
    src = read_source(source_paths, options)
    inputs, description = verification_inputs(src, options)
    result = verify_written(src, src.model, writer, files, inputs, options)
    params, _ = count_parameters(src.model)
    data = ReportData(", ".join(src.paths), writer, files, description, options.atol,
                      options.rtol, params, src.fixups, result, module_edges(src.model),
                      notes=src.notes)
    return result, data
