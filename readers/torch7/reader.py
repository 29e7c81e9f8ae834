"""Torch7 model file -> common graph.

`read_torch7` deserializes the file (t7file), finds every module class we
cannot convert (all of them, before converting anything), then walks the module
tree calling one registered converter per module.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

import migrate.readers.torch7.converters  # noqa: F401  (registers every converter)
from migrate.core.errors import (
    ConversionError,
    CorruptFileError,
    MigrateError,
    UnsupportedModulesError,
    UsageError,
)
from migrate.core.model import InputInfo, ReadOptions, SourceModel
from migrate.readers.torch7 import t7file
from migrate.readers.torch7.inputs import candidate_input_shapes, plan_inputs
from migrate.readers.torch7.module import T7Module, lua_list
from migrate.readers.torch7.registry import VALUE_RANGE, lookup
from migrate.readers.torch7.values import TENSOR, flatten, leaf_count, nest

ROOT_PATH = "model"
MAX_MODULE_DEPTH = 200  # containers nested deeper than this are not a real network
# A module shared by several containers is visited (and converted) once per use, so a
# hostile file nesting shared containers could ask for 2^depth visits: real models,
# unrolled recurrent layers included, stay far below this.
MAX_MODULE_VISITS = 100_000


@dataclass
class ReadResult:
    model: ir.Model
    root_class: str
    module_count: int
    notes: list[str] = field(default_factory=list)


class BuildContext:
    """What a converter gets: graph-building helpers plus recursion into children."""

    def __init__(self, builder: Any) -> None:  # a migrate.core.graph.GraphBuilder
        self.builder = builder
        self.converted = 0
        self.notes: list[str] = []
        self._origin_stack: list[tuple[str, str]] = []
        # what recurrent modules (rnn's LSTM, GRU, ...) carry from one call to the next,
        # by module object: a module called again continues from it, as Torch7's does
        self.recurrent_state: dict[int, Any] = {}

    # -- recursion -----------------------------------------------------------
    def convert(self, module: T7Module, x: Any) -> Any:
        fn = lookup(module.cls)
        if fn is None:  # find_unsupported normally reports these up front
            raise UnsupportedModulesError([(module.path, module.cls)])
        if len(self._origin_stack) > MAX_MODULE_DEPTH:
            raise CorruptFileError(f"modules nested more than {MAX_MODULE_DEPTH} deep")
        if self.converted >= 2 * MAX_MODULE_VISITS:
            raise CorruptFileError(f"more than {2 * MAX_MODULE_VISITS:,} module conversions "
                                   "(shared containers nested over and over)")
        self._origin_stack.append((module.path, module.cls))
        self.builder.set_origin(module.path, module.cls)
        try:
            out = fn(self, module, x)
        except MigrateError as exc:
            if exc.where is None:
                exc.where = f"{module.path} ({module.cls})"
            raise
        except MemoryError:
            raise
        except Exception as exc:
            # A converter met fields it cannot make sense of (wrong types or sizes in a
            # damaged or unusual file): report where, not a traceback.
            raise ConversionError(
                f"cannot convert this module: {type(exc).__name__}: {exc}"[:500],
                where=f"{module.path} ({module.cls})") from exc
        finally:
            self._origin_stack.pop()
            if self._origin_stack:
                self.builder.set_origin(*self._origin_stack[-1])
        self.converted += 1
        return out

    def note(self, text: str) -> None:
        """Say something in the conversion summary (once per text)."""
        if text not in self.notes:
            self.notes.append(text)

    # -- graph helpers ---------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[ir.Value | None], hint: str | None = None,
           num_outputs: int = 1, **attributes: Any) -> ir.Value:
        return self.builder.op(op_type, inputs, attributes, hint=hint, num_outputs=num_outputs)

    def const(self, array: Any, hint: str = "const") -> ir.Value:
        return self.builder.constant(np.asarray(array), hint)

    def scalar(self, value: float, hint: str = "scalar") -> ir.Value:
        return self.builder.constant(np.asarray(value, dtype=np.float32), hint)

    def int64s(self, values: Sequence[int], hint: str = "shape") -> ir.Value:
        return self.builder.int64s(values, hint)

    def shape(self, x: ir.Value) -> tuple[int, ...]:
        from migrate.core.graph import static_shape

        return static_shape(x)

    def batched(self, x: ir.Value, rank: int, fn: Callable[[ir.Value], ir.Value]) -> ir.Value:
        """Apply `fn`, written for a batched input of `rank`, to a batched or unbatched x.

        Torch7 layers accept one sample without the batch dimension (e.g. CxHxW
        for a spatial layer); ONNX ops want the batch, so add it and take it off.
        """
        got = len(self.shape(x))
        if got == rank:
            return fn(x)
        if got == rank - 1:
            axes = self.int64s([0], "axes")
            y = fn(self.op("Unsqueeze", [x, axes]))
            return self.op("Squeeze", [y, axes])
        raise ConversionError(f"expects a {rank - 1}D or {rank}D input, got shape {self.shape(x)}")


def iter_modules(module: T7Module) -> Iterator[T7Module]:
    """Every module in the tree, depth first (containers before their children).

    Iterative, so hostile nesting cannot exhaust the stack; a container that
    contains itself is an error, a module shared by two containers is visited twice.
    """
    stack: list[tuple[T7Module, tuple[int, ...]]] = [(module, ())]
    visits = 0
    while stack:
        current, ancestors = stack.pop()
        visits += 1
        if visits > MAX_MODULE_VISITS:
            raise CorruptFileError(f"more than {MAX_MODULE_VISITS:,} modules (shared "
                                   "containers nested over and over)")
        if id(current.obj) in ancestors:
            raise CorruptFileError(f"{current.path} ({current.cls}) contains itself")
        if len(ancestors) > MAX_MODULE_DEPTH:
            raise CorruptFileError(f"modules nested more than {MAX_MODULE_DEPTH} deep")
        yield current
        inner = (*ancestors, id(current.obj))
        stack.extend((child, inner) for child in reversed(current.children()))


def find_unsupported(root: T7Module) -> list[tuple[str, str]]:
    return [(m.path, m.cls) for m in iter_modules(root) if lookup(m.cls) is None]


def load_root(path: str | os.PathLike, max_bytes: int = t7file.DEFAULT_MAX_BYTES) -> T7Module:
    obj = t7file.load(path, max_bytes=max_bytes)
    try:
        return T7Module(obj, ROOT_PATH)
    except ConversionError as exc:
        raise ConversionError(
            "the file holds no Torch7 module (it is a plain Lua value); "
            f"nothing to convert ({exc.message})",
            file=os.fspath(path),
        ) from None


def read_torch7(
    path: str | os.PathLike,
    input_shapes: Sequence[Sequence[int]] | None = None,
    max_bytes: int = t7file.DEFAULT_MAX_BYTES,
) -> ReadResult:
    """Deserialize a .t7 model and build the common graph for it."""
    file = os.fspath(path)
    root = load_root(file, max_bytes)
    name = os.path.splitext(os.path.basename(file))[0] or "model"
    try:
        return build_graph(root, name, input_shapes)
    except MigrateError as exc:
        raise exc.with_file(file) from None


def build_graph(
    root: T7Module, name: str, input_shapes: Sequence[Sequence[int]] | None = None
) -> ReadResult:
    """The common graph for a deserialized module tree."""
    unsupported = find_unsupported(root)
    if unsupported:
        raise UnsupportedModulesError(unsupported)
    # converters recurse once per container level (at most MAX_MODULE_DEPTH)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * MAX_MODULE_DEPTH + 1000))
    try:
        return _build_graph(root, name, input_shapes)
    finally:
        sys.setrecursionlimit(limit)


def _build_graph(
    root: T7Module, name: str, input_shapes: Sequence[Sequence[int]] | None
) -> ReadResult:
    if input_shapes:
        builder, ctx = _build(root, name, [list(s) for s in input_shapes])
    else:
        builder, ctx = _build_with_guessed_shape(root, name)
    notes = list(ctx.notes)
    if not input_shapes:
        guessed = ", ".join("x".join(map(str, v.shape)) for v in builder.graph.inputs)
        notes.append(f"input shape {guessed} inferred from the first layer (--input-shape to set)")
    if _stores_double(root):
        notes.append("double-precision weights converted to float32")
    return ReadResult(builder.model(), root.cls, ctx.converted, notes)


def _build_with_guessed_shape(root: T7Module, name: str):
    """Try plausible input sizes; prefer one whose outputs keep a batch of one."""
    first_error: MigrateError | None = None
    fallback = None
    queue = list(candidate_input_shapes(root))
    tried: list = []
    while queue:
        shapes = queue.pop(0)
        if shapes in tried:
            continue
        tried.append(shapes)
        try:
            builder, ctx = _build(root, name, shapes)
        except ConversionError as exc:
            first_error = first_error or exc
            better = _rescaled(shapes, getattr(exc, "elements", None))
            if better is not None:
                queue.insert(0, better)
            continue
        from migrate.core.graph import static_shape

        outputs = [static_shape(v) for v in builder.graph.outputs]
        if all(len(s) <= 1 or s[0] == 1 for s in outputs):
            return builder, ctx
        fallback = fallback or (builder, ctx)
    if fallback is not None:
        return fallback
    assert first_error is not None
    first_error.message += " (input shape was guessed: pass --input-shape)"
    raise first_error


def _rescaled(shapes: list[list[int]], elements: tuple[int, int] | None):
    """The image size that would give a flattening layer (nn.View) the element count it
    wants, from what a guessed size gave it (elements grow with the image's area): VGG's
    View(25088) seen with 64x64 inputs points straight at 224x224."""
    if elements is None or len(shapes) != 1 or len(shapes[0]) != 4:
        return None
    got, wanted = elements
    n, c, h, w = shapes[0]
    if h != w or got <= 0 or wanted <= 0:
        return None
    side = round(h * math.sqrt(wanted / got))
    return [[n, c, side, side]] if 0 < side <= 4096 and side != h else None


def _build(root: T7Module, name: str, shapes: list[list[int]]):
    # onnx (per-node shape inference) is imported when a graph is built, not for inspect
    from migrate.core.graph import GraphBuilder

    builder = GraphBuilder(name=name)
    ctx = BuildContext(builder)
    names = ["data"] if len(shapes) == 1 else [f"data{i}" for i in range(1, len(shapes) + 1)]
    inputs = [builder.add_input(n, s) for n, s in zip(names, shapes, strict=True)]
    out = ctx.convert(root, arrange_inputs(root, inputs))
    outputs = flatten(out)
    if not outputs:
        raise ConversionError("the model outputs an empty table: nothing to convert")
    builder.set_outputs(outputs)
    return builder, ctx


def arrange_inputs(root: T7Module, inputs: list[ir.Value]) -> Any:
    """The graph inputs as the model takes them: one tensor, or a (nested) table of them
    when the model's structure says so and the count matches, else a flat table."""
    if len(inputs) == 1:
        return inputs[0]
    template = plan_inputs(root).template
    if template != TENSOR and leaf_count(template) == len(inputs):
        return nest(inputs, template)
    return list(inputs)


def _stores_double(root: T7Module) -> bool:
    for m in iter_modules(root):
        for name in ("weight", "bias", "running_mean"):
            value = m.fields.get(name)
            if isinstance(value, np.ndarray) and value.dtype == np.float64:
                return True
    return False


def read(paths: Sequence[str], options: ReadOptions) -> SourceModel:
    """The reader registry's entry point: one .t7 file -> SourceModel."""
    (path,) = paths
    result = read_torch7(path, options.input_shapes, options.max_bytes)
    inputs = [_input_info(v) for v in result.model.graph.inputs]
    return SourceModel(result.model, "torch7", [path], result.root_class, result.module_count,
                       layer_word="modules", inputs=inputs, notes=result.notes)


def _input_info(value: ir.Value) -> InputInfo:
    """What the model expects of one input. Converters of index-taking modules (e.g.
    LookupTable) turn the inputs they read into integer inputs and record the valid
    values (see converters/indexing.py)."""
    dtype = value.dtype.numpy().name if value.dtype is not None else "float32"
    image = len(value.shape) == 4 and dtype.startswith("float")
    value_range = value.meta.get(VALUE_RANGE)
    expects = f"integers {value_range[0]}..{value_range[1]} ({dtype})" if value_range else ""
    from migrate.core.graph import static_shape

    return InputInfo(value.name, list(static_shape(value)), dtype=dtype,
                     layout="NCHW" if image else "", expects=expects, value_range=value_range)


def inspect(paths: Sequence[str], options: ReadOptions) -> str:
    from migrate.readers.torch7.inspect import inspect_file

    return inspect_file(paths[0], options.max_bytes)


def load_arrays(path: str) -> list[np.ndarray]:
    """The tensors of a Torch7 data file (a tensor, or a table of them, nested tables
    flattened in order): for --input and --expected."""
    value = t7file.load(path)
    arrays: list[np.ndarray] = []

    def collect(item: Any, depth: int = 0) -> None:
        if depth > 16:
            raise CorruptFileError("tables nested too deep for a data file", file=path)
        if isinstance(item, np.ndarray):
            arrays.append(np.array(item))
        elif isinstance(item, dict):
            for entry in lua_list(item):
                collect(entry, depth + 1)
        elif isinstance(item, list):
            for entry in item:
                collect(entry, depth + 1)
        else:
            raise UsageError(f"holds a {type(item).__name__}, not tensors", file=path)

    collect(value)
    if not arrays:
        raise UsageError("holds no tensors", file=path)
    return arrays


__all__ = ["BuildContext", "ReadResult", "read", "read_torch7", "lua_list", "find_unsupported"]


def supported_module_line() -> str:
    """The README's list of supported module classes (kept in sync by a test)."""
    from migrate.readers.torch7.registry import supported_classes

    return ", ".join(f"`{name}`" for name in supported_classes())
