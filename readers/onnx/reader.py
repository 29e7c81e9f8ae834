"""ONNX model -> common graph.

The common graph is ONNX already; what a source file needs is normalisation:
- weights mapped, not copied (loader.py);
- local functions inlined (torch.onnx.export(dynamo=True) writes them);
- the opset converted to the common one with onnx's own version converter;
- symbolic dimensions fixed (--input-shape, else 1), constant and shape subgraphs
  folded, every value's shape inferred;
- each node tagged with the source layer it is (its name, else its first output), the
  same key the onnxruntime runtime gives the source file's node outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnx
import onnx.inliner
import onnx.version_converter
import onnx_ir as ir

from migrate.core.errors import (
    ConversionError,
    CorruptFileError,
    MigrateError,
    UnsupportedError,
    UsageError,
)
from migrate.core.formats.onnx import SOURCE_CLASS, SOURCE_PATH, layer_key
from migrate.core.graph import IR_VERSION, OPSET, check_reshape, node_origin, static_shape
from migrate.core.model import InputInfo, ReadOptions, SourceModel
from migrate.core.passes.fold import fold_constants
from migrate.readers.onnx.loader import load_onnx

MIN_OPSET = 1


def read(paths: Sequence[str], options: ReadOptions) -> SourceModel:
    (path,) = paths
    try:
        return _read(path, options)
    except MigrateError as exc:
        raise exc.with_file(path) from None
    except MemoryError:
        raise
    except Exception as exc:  # onnx's own code on fields that do not fit together
        raise ConversionError(f"cannot read this model: {type(exc).__name__}: {exc}"[:300],
                              file=path) from None


def _read(path: str, options: ReadOptions) -> SourceModel:
    loaded = load_onnx(path, options.max_bytes)
    proto = loaded.proto
    notes: list[str] = []
    version = _default_opset(proto)
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as exc:
            raise ConversionError(f"cannot inline its local functions: {exc}"[:300]) from None
        notes.append(f"{len(loaded.proto.functions)} local functions inlined")
    original = proto
    if version != OPSET:
        proto = _convert_opset(proto, version)
        notes.append(f"opset {version} converted to {OPSET}")
    names = _layer_keys(original, proto)
    _check_domains(proto)
    _check_tensor_only(proto)
    fixed = _fix_inputs(proto, options.input_shapes)
    if fixed:
        notes.append(fixed)
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as exc:  # onnx_ir's SerdeError on fields that do not fit together
        cause = exc.__cause__ or exc
        raise CorruptFileError(f"the model's graph is malformed: {type(cause).__name__}: "
                               f"{cause}"[:300]) from None
    for name, array in loaded.weights.items():
        value = model.graph.initializers.get(name)
        if value is not None:
            value.const_value = ir.Tensor(array, name=name)
    for node, (key, cls) in zip(model.graph, names, strict=True):
        node.metadata_props[SOURCE_PATH] = key
        node.metadata_props[SOURCE_CLASS] = cls
    model.ir_version = IR_VERSION
    model.opset_imports.clear()
    model.opset_imports[""] = OPSET
    layer_count = len(model.graph)
    if version < 7:
        _legacy_prelu_slopes(model)
    folded = fold_constants(model)
    if folded:
        notes.append(f"{folded} constant or shape computations folded")
    _outputs_have_producers(model.graph)
    _check_reshapes(model.graph)
    inputs = [InputInfo(v.name, list(static_shape(v)), dtype=_dtype_name(v),
                        layout="NCHW" if v.shape is not None and len(v.shape) == 4 else "")
              for v in model.graph.inputs]
    description = f"ONNX model (opset {version}" + (
        f", {proto.producer_name}" if proto.producer_name else "") + ")"
    return SourceModel(model, "onnx", [path], description, layer_count, layer_word="nodes",
                       inputs=inputs, notes=notes, runtime_files={"model": path})


def _legacy_prelu_slopes(model: ir.Model) -> None:
    """Before opset 7, PRelu's 1-D slope applied per channel (axis 1), not NumPy-style
    from the last axis; onnx's version converter leaves the slope as it was."""
    for node in model.graph:
        if node.op_type != "PRelu" or len(node.inputs) != 2 or node.inputs[1] is None \
                or node.inputs[1].const_value is None:
            continue
        slope = node.inputs[1].const_value.numpy()
        rank = len(node.inputs[0].shape or ())
        if slope.ndim == 1 and slope.size > 1 and rank > 2:
            shaped = slope.reshape([slope.size] + [1] * (rank - 2))
            value = ir.Value(name=f"{node.inputs[1].name}_per_channel",
                             shape=ir.Shape(list(shaped.shape)), type=node.inputs[1].type,
                             const_value=ir.Tensor(shaped))
            model.graph.register_initializer(value)
            node.replace_input_with(1, value)


def _layer_keys(original: onnx.ModelProto, converted: onnx.ModelProto) -> list[tuple[str, str]]:
    """The source layer of every node after the version converter, as keys of the
    ORIGINAL file's nodes (what onnxruntime reports when it runs the source file).

    The converter keeps node names and graph values but may add adapter nodes (e.g. opset
    13's single-axis Softmax becomes Flatten -> Softmax -> Reshape): a node that computes an
    original node's output, or keeps its name, is that node's layer; an added node belongs
    to the layer of the node that consumes it."""
    by_output: dict[str, tuple[str, str]] = {}
    by_name: dict[str, tuple[str, str]] = {}
    for i, node in enumerate(original.graph.node):
        key = layer_key(node, i)
        if node.output:
            by_output[node.output[0]] = key
        if node.name:
            by_name[node.name] = key
    nodes = list(converted.graph.node)
    keys: list[tuple[str, str] | None] = [
        by_output.get(n.output[0] if n.output else "") or by_name.get(n.name) for n in nodes]
    consumers: dict[str, int] = {}
    for i in range(len(nodes) - 1, -1, -1):
        if keys[i] is None:
            later = [consumers[o] for o in nodes[i].output if o in consumers]
            keys[i] = keys[later[0]] if later else layer_key(nodes[i], i)
        for name in nodes[i].input:
            consumers.setdefault(name, i)
            consumers[name] = min(consumers[name], i) if keys[i] else consumers[name]
    return [k for k in keys if k is not None]


def _default_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise UnsupportedError("the model imports no ONNX operator set")


def _convert_opset(proto: onnx.ModelProto, version: int) -> onnx.ModelProto:
    if version < MIN_OPSET:
        raise UnsupportedError(f"opset {version} is older than {MIN_OPSET}, the oldest read here "
                               "(re-export the model with a newer exporter)")
    try:
        return onnx.version_converter.convert_version(proto, OPSET)
    except Exception as exc:  # onnx raises RuntimeError / ConvertError with C++ text
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(f"onnx's version converter cannot take opset {version} to "
                               f"{OPSET}: {text}"[:400]) from None


_SEQUENCE_OPS = ("Sequence", "ConcatFromSequence", "SplitToSequence", "Optional")


def _check_tensor_only(proto: onnx.ModelProto) -> None:
    """Sequences and optionals have no counterpart in any target here."""
    found = [(n.name or n.output[0], n.op_type) for n in proto.graph.node
             if n.op_type.startswith(_SEQUENCE_OPS) or n.op_type == "ConcatFromSequence"]
    if found:
        where = ", ".join(f"node '{name}' ({op})" for name, op in found[:10])
        raise UnsupportedError(f"the model computes with ONNX sequences or optionals, which no "
                               f"target here expresses: {where}")


def _check_domains(proto: onnx.ModelProto) -> None:
    custom = [(n.name or n.output[0], n.domain, n.op_type) for n in proto.graph.node
              if n.domain not in ("", "ai.onnx")]
    if custom:
        where = ", ".join(f"node '{name}' ({domain}::{op})" for name, domain, op in custom[:20])
        raise UnsupportedError(f"operators outside the ONNX standard: {where}"
                               + (f" and {len(custom) - 20} more" if len(custom) > 20 else ""))


def _fix_inputs(proto: onnx.ModelProto, shapes: Sequence[Sequence[int]] | None) -> str:
    """Drop initializers listed as inputs (old exporters), fix every input's dims."""
    graph = proto.graph
    weights = {t.name for t in graph.initializer}
    real = [i for i in graph.input if i.name not in weights]
    if len(real) != len(graph.input):
        del graph.input[:]
        graph.input.extend(real)
    if shapes is not None and len(shapes) != len(real):
        raise UsageError(f"--input-shape gives {len(shapes)} shape(s); the model has "
                         f"{len(real)} input(s): {', '.join(i.name for i in real)}")
    note = []
    for k, value in enumerate(real):
        tensor_type = value.type.tensor_type
        dims = tensor_type.shape.dim
        if shapes is not None:
            declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            wanted = list(shapes[k])
            if declared and len(declared) != len(wanted):
                raise UsageError(f"input '{value.name}' has {len(declared)} dimensions; "
                                 f"--input-shape gives {len(wanted)}")
            del dims[:]
            for d in wanted:
                dims.add().dim_value = int(d)
            continue
        if not tensor_type.HasField("shape"):
            raise UsageError(f"input '{value.name}' has no declared shape: pass --input-shape")
        symbolic = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
        for d in dims:
            if not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = 1
        if symbolic:
            note.append(f"{value.name}: {', '.join(symbolic)} = 1")
    return ("symbolic input dimensions set (" + "; ".join(note) + "; --input-shape to choose)"
            ) if note else ""


def _check_reshapes(graph: ir.Graph) -> None:
    """A reshape that cannot fit its input fails here, naming the node, not in a runtime."""
    for node in graph:
        if node.op_type == "Reshape":
            try:
                check_reshape(node)
            except MigrateError as exc:
                exc.where = exc.where or node_origin(node)
                raise


def _outputs_have_producers(graph: ir.Graph) -> None:
    """An output that is an input or a constant gets an Identity node, as writers expect."""
    for k, value in enumerate(list(graph.outputs)):
        if value.producer() is None:
            node = ir.node("Identity", [value], metadata_props={SOURCE_PATH: value.name,
                                                               SOURCE_CLASS: "Identity"})
            node.outputs[0].name = f"{value.name}_output"
            node.outputs[0].shape, node.outputs[0].type = value.shape, value.type
            graph.append(node)
            graph.outputs[k] = node.outputs[0]


def _dtype_name(value: ir.Value) -> str:
    return np.dtype(value.dtype.numpy()).name if value.dtype is not None else "float32"


def inspect(paths: Sequence[str], options: ReadOptions) -> str:
    """Nodes by operator type, parameters, what each target writer supports."""
    source = read(paths, options)
    counts = source.op_counts()
    params = source.parameter_count()
    lines = [f"{os.path.basename(paths[0])}: {source.description}, {source.layer_count} nodes, "
             f"{params:,} parameters"]
    lines += [f"  {op:<24} {n}" for op, n in counts.items()]
    lines += [f"  note: {n}" for n in source.notes]
    return "\n".join(lines)
