"""PyTorch model -> common graph.

Route: torch.export -> core ATen -> our graph, one converter per operator family
(converters/), rather than torch.onnx.export(dynamo=True) -> the ONNX reader. Both
were measured on the five test models (bench/bench_pytorch_route.py):

  route A (this one): 5 of 5 read; max |error| vs PyTorch 4.8e-7; every module a
    layer of the report (69 for ResNet-18);
  route B (exporter):  3 of 5 read (onnx's opset 18 -> 17 conversion leaves
    ReduceMean's noop_with_empty_axes behind: ResNet-18 and MobileNetV2 fail); the
    module scopes the exporter writes are dropped by that conversion (0 layers by
    module path, nodes named node_Conv_291), its optimizer has folded BatchNorm into
    Conv before we see it; 1.3-3x slower; needs onnxscript.

So this route, because it is:
- exact: every op is translated with PyTorch's own semantics written out (ceil_mode,
  count_include_pad, align_corners, the GELU formula), and each node's shape is
  checked against the one PyTorch traced;
- maintainable: core ATen is a fixed, documented operator set (~180 ops) that
  torch.export guarantees to produce; no second exporter (onnxscript) between
  PyTorch and the graph, whose output changes between releases;
- keyed by module: nodes carry `nn_module_stack`, so every node of the graph gets the
  module path of the original nn.Module (`layer1.0.conv1`, `torch.nn.Conv2d`), the
  same key the PyTorch runtime gives each layer's output when it runs the `.pt2`.

Sources:
- `.pt2` ExportedProgram (torch.export.save), checked before loading (nothing
  unpickled but tensors, no compiled code: migrate.core.formats.torch_export);
- a checkpoint (torch.save of a state_dict, often nested, often named `.t7` by old
  PyTorch code) plus the model's code (--model-class FILE.py:NAME --input-shape);
- a live `torch.nn.Module` (with example_inputs) or ExportedProgram, from Python.
Checkpoints and live modules are exported here and saved to a temporary `.pt2`,
which the PyTorch runtime runs as the reference.

A conversion reads its source twice (the graph it optimizes, and the graph it
verifies against); exporting and decomposing is the costly part (seconds for a
ResNet), so the last prepared programs are kept: for files, keyed by their status
(size, time, inode), as long as they are among the last few read; for a live module,
for exactly one more read, keyed by its weights' versions and its structure (a
module can change in ways no key sees).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from migrate.core.errors import CorruptFileError, MigrateError, UnsupportedError, UsageError
from migrate.core.formats.torch_export import load_exported, short_class
from migrate.core.model import ReadOptions, SourceModel
from migrate.core.sniff import pytorch_kind, read_head
from migrate.readers.pytorch import loading
from migrate.readers.pytorch.graph import convert_program


@dataclass
class Prepared:
    """A source made ready for conversion: its decomposed (core ATen) program."""

    program: Any  # torch.export.ExportedProgram, decomposed
    runtime_files: dict[str, str]  # what the PyTorch runtime runs as the reference
    what: str  # "ExportedProgram", "checkpoint of ResNet18 from models.py", ...
    root: str  # the top module's class
    input_shapes: Sequence[Sequence[int]] | None = None  # for programs read from a file
    notes: list[str] = field(default_factory=list)

    @property
    def weight_bytes(self) -> int:
        tensors = list(self.program.state_dict.values()) + list(self.program.constants.values())
        return sum(t.nbytes for t in tensors if hasattr(t, "nbytes"))


_KEPT: OrderedDict[Any, Prepared] = OrderedDict()  # see the module doc
_KEEP = 8  # programs, and at most this many bytes of weights, the newest always
_KEEP_BYTES = 1 << 30


def _kept(key: Any, make, *, once: bool = False) -> Prepared:
    """The prepared program for `key`, made (and kept) when not kept already; `once`:
    kept for one more read only."""
    if key is not None and key in _KEPT:
        if once:
            return _KEPT.pop(key)
        _KEPT.move_to_end(key)
        return _KEPT[key]
    prepared = make()
    if key is not None:
        _KEPT[key] = prepared
        while len(_KEPT) > 1 and (len(_KEPT) > _KEEP or
                                  sum(p.weight_bytes for p in _KEPT.values()) > _KEEP_BYTES):
            _KEPT.popitem(last=False)
    return prepared


def _file_key(path: str, *extra: Any) -> tuple:
    info = os.stat(path)
    return (os.path.realpath(path), info.st_size, info.st_mtime_ns, info.st_ino, *extra)


def _module_key(module: Any, example: tuple[Any, ...]) -> tuple | None:
    """Changes to weights (in place or replaced), to the module tree or to any module's
    settings (repr shows ceil_mode, eps, ...) make a different key; None: not kept."""
    try:
        tensors = tuple((name, t.data_ptr(), t._version) for name, t in
                        list(module.named_parameters()) + list(module.named_buffers()))
        tree = tuple((name, id(m)) for name, m in module.named_modules())
        inputs = tuple((tuple(x.shape), str(x.dtype)) for x in example)
        return ("module", id(module), tensors, tree, repr(module), inputs)
    except Exception:  # an unusual module (a repr that fails, ...): simply not kept
        return None


def read(paths: Sequence[str], options: ReadOptions) -> SourceModel:
    (path,) = paths
    try:
        loading.require_torch()
        kind = pytorch_kind(read_head(path))
        if kind == "exported":
            prepared = _kept(_file_key(path, options.max_bytes, _shapes(options)),
                             lambda: _prepare_file(path, options))
        elif kind in ("checkpoint", "legacy"):
            prepared = _kept(_checkpoint_key(path, options),
                             lambda: _prepare_checkpoint(path, options))
        elif kind == "torchscript":
            raise UnsupportedError(
                "a TorchScript module (torch.jit.save): its code is not run here. Build the "
                "model from its Python code and export it (torch.export.save, or migrate."
                "convert(module, example_inputs=...)), or save its weights (torch.save("
                "torch.jit.load(f).state_dict(), 'weights.pt')) and give them with "
                "--model-class FILE.py:NAME")
        else:
            raise CorruptFileError(f"a damaged PyTorch file: {_zip_problem(path)}")
        return _source(prepared, [path])
    except MigrateError as exc:
        raise exc.with_file(path) from None


def _zip_problem(path: str) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"its zip directory cannot be read ({exc})"
    return f"entry {bad} is damaged" if bad else "its entries are not a PyTorch archive's"


def _shapes(options: ReadOptions) -> tuple | None:
    if options.input_shapes is None:
        return None
    return tuple(tuple(int(d) for d in s) for s in options.input_shapes)


def _checkpoint_key(path: str, options: ReadOptions) -> tuple | None:
    if options.model_class is None or options.example_inputs is not None:
        return None
    code = options.model_class.rpartition(":")[0]
    if not os.path.isfile(code):
        return None
    return _file_key(path, options.max_bytes, _shapes(options), options.model_class,
                     _file_key(code))


def _prepare_file(path: str, options: ReadOptions) -> Prepared:
    program = load_exported(path, options.max_bytes)
    return Prepared(_decompose(program), {"model": path}, "ExportedProgram",
                    _root_class(program), input_shapes=options.input_shapes)


def _prepare_checkpoint(path: str, options: ReadOptions) -> Prepared:
    loaded = loading.load_checkpoint(path, options.max_bytes)
    state, where = loading.find_state_dict(loaded)
    if options.model_class is None:
        names = ", ".join(list(state)[:4])
        raise UsageError(
            f"a PyTorch checkpoint holds weights only ({len(state)} tensors: {names}, ...), "
            "not the network: give the model's code and input shape, e.g. --model-class "
            "models.py:ResNet18 --input-shape 1x3x32x32")
    if options.input_shapes is None and options.example_inputs is None:
        raise UsageError("a checkpoint with --model-class needs --input-shape (e.g. 1x3x32x32) "
                         "to trace the model")
    module, description = loading.build_model(options.model_class)
    state, fixed = loading.match_keys(state, list(module.state_dict()))
    loading.load_weights(module, state, description)
    notes = [f"weights from the checkpoint's '{where}' entry" if where else
             "weights from the checkpoint's state_dict"] + ([fixed] if fixed else [])
    example = loading.example_tensors(options.example_inputs, options.input_shapes)
    module.eval()  # built here for inference: no note about its mode
    return _prepare_traced(loading.export_module(module, example, notes),
                           f"checkpoint of {description}", notes)


def _prepare_traced(program: Any, what: str, notes: list[str]) -> Prepared:
    """A program exported here: PyTorch runs a saved copy of it as the reference."""
    return Prepared(_decompose(program), {"model": loading.save_for_reference(program)}, what,
                    _root_class(program), notes=notes)


# Kept whole, not decomposed to core ATen: PyTorch decomposes these into index
# arithmetic or long chains, while each is exactly one ONNX op (Resize, Pad with
# reflect/edge, the attention formula: converters/).
_KEEP_WHOLE = ("upsample", "reflection_pad", "replication_pad", "scaled_dot_product_attention")


def _decomposition_table() -> dict:
    import torch

    table = torch.export.default_decompositions()
    for op in list(table):
        if any(name in str(op) for name in _KEEP_WHOLE):
            del table[op]
    return table


def _decompose(program: Any) -> Any:
    try:
        with loading.quiet_torch():
            return program.run_decompositions(_decomposition_table())
    except MemoryError:
        raise
    except Exception as exc:
        raise UnsupportedError(f"torch.export's decompositions fail on it: "
                               f"{loading.first_line(exc)}"[:400]) from None


def read_object(obj: Any, options: ReadOptions) -> SourceModel:
    """A live torch.nn.Module (traced with options.example_inputs, else random inputs
    of options.input_shapes) or a torch.export.ExportedProgram."""
    torch = loading.require_torch()
    if isinstance(obj, torch.export.ExportedProgram):
        def make() -> Prepared:
            return Prepared(_decompose(obj), {"model": loading.save_for_reference(obj)},
                            "ExportedProgram", _root_class(obj),
                            input_shapes=options.input_shapes)

        return _source(_kept(("program", id(obj), _shapes(options)), make, once=True), [])
    example = loading.example_tensors(options.example_inputs, options.input_shapes)

    def trace() -> Prepared:
        notes: list[str] = []
        program = loading.export_module(obj, example, notes)
        return _prepare_traced(program, f"module {type(obj).__name__}", notes)

    if not isinstance(obj, torch.nn.Module):
        raise UsageError(f"cannot convert a {type(obj).__name__}")
    return _source(_kept(_module_key(obj, example), trace, once=True), [])


def _source(prepared: Prepared, paths: list[str]) -> SourceModel:
    """A fresh common graph of a prepared program (cheap: weights are not copied)."""
    converted = convert_program(prepared.program, prepared.input_shapes,
                                name=prepared.root or "model")
    what, root = prepared.what, prepared.root
    description = f"PyTorch {what}" + (f" ({root})" if root and root not in what else "")
    return SourceModel(converted.model, "pytorch", paths, description, len(converted.layers),
                       layer_word="layers", inputs=converted.inputs,
                       notes=prepared.notes + converted.notes,
                       runtime_files=dict(prepared.runtime_files))


def _root_class(program: Any) -> str:
    for node in program.graph_module.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            path, cls = next(iter(stack.values()))
            if path == "":
                return short_class(str(cls)).rsplit(".", 1)[-1]
    return ""


def inspect(paths: Sequence[str], options: ReadOptions) -> str:
    """Layers, common-graph operators, parameters."""
    source = read(paths, options)
    counts = source.op_counts()
    params = source.parameter_count()
    shapes = ", ".join("x".join(map(str, i.shape)) for i in source.inputs)
    lines = [f"{os.path.basename(paths[0])}: {source.description}, {source.layer_count} layers,"
             f" {params:,} parameters, input {shapes}", "  common-graph ops:"]
    lines += [f"    {op:<24} {n}" for op, n in counts.items()]
    lines += [f"  note: {n}" for n in source.notes]
    return "\n".join(lines)
