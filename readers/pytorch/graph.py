"""An ExportedProgram (core ATen operators) -> the common graph, node by node.

Every FX node is converted by the converter registered for its operator, tagged with
its layer key (`migrate.core.formats.torch_export.layer_keys`: the module path in the
original nn.Module, e.g. `layer1.0.conv1`). Nodes whose inputs are all known without
running the model (weights, sizes) are computed by PyTorch itself and become
constants. After each node, the shape the conversion gives is checked against the
shape PyTorch traced: a mismatch is a conversion error, never a silently different
model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

import migrate.readers.pytorch.converters  # noqa: F401  (registers every converter)
from migrate.core.errors import ConversionError, MigrateError, UnsupportedError, UsageError
from migrate.core.formats.torch_export import layer_keys
from migrate.core.graph import GraphBuilder, static_shape
from migrate.core.model import InputInfo
from migrate.readers.pytorch.context import Const, ExportContext, ir_dtype
from migrate.readers.pytorch.registry import lookup, op_name

# Python-level ops on sizes and scalars: computed directly
_ARITHMETIC = {"_operator.add", "_operator.sub", "_operator.mul", "_operator.floordiv",
               "_operator.truediv", "_operator.mod", "_operator.neg", "_operator.pow"}


@dataclass
class ConvertedProgram:
    model: ir.Model
    inputs: list[InputInfo]
    layers: list[tuple[str, str]] = field(default_factory=list)  # (key, class), in order
    ops: dict[str, int] = field(default_factory=dict)  # operator -> count
    notes: list[str] = field(default_factory=list)


def _tensor_meta(node: Any) -> tuple[list[Any], Any]:
    val = node.meta.get("val")
    if val is None or not hasattr(val, "shape"):
        raise ConversionError(f"input '{node.name}' has no traced tensor metadata")
    return list(val.shape), val.dtype


def _input_shape(node: Any, given: Sequence[int] | None) -> list[int]:
    """Concrete dims for a program input: the given shape where the program's dims are
    symbolic (exported with dynamic_shapes), else the traced ones."""
    dims, _ = _tensor_meta(node)
    traced = [d if type(d) is int else int(d.node.hint) if d.node.hint is not None else None
              for d in dims]
    if given is None:
        if any(d is None for d in traced):
            raise UsageError(f"input '{node.name}' has symbolic dims without an example "
                             "size: pass --input-shape")
        return traced  # type: ignore[return-value]
    given = [int(d) for d in given]
    fixed = ["x".join(str(d) if type(d) is int else "?" for d in dims)]
    if len(given) != len(dims) or any(type(d) is int and d != g
                                      for d, g in zip(dims, given, strict=False)):
        raise UsageError(f"input '{node.name}' was exported with shape {fixed[0]} (? = "
                         f"dynamic); --input-shape gives {'x'.join(map(str, given))}: export "
                         "with dynamic_shapes to change a fixed size")
    return given


def _fold(node: Any, args: Any, kwargs: Any) -> Any:
    """Run one op on constants with PyTorch itself (exact by construction)."""
    import torch

    tags = getattr(node.target, "tags", ())
    if torch.Tag.nondeterministic_seeded in tags:
        raise UnsupportedError(f"{op_name(node.target)} draws random numbers: a converted "
                               "model would fix them once")

    def unwrap(x):
        return x.tensor if isinstance(x, Const) else x

    t_args = torch.fx.node.map_aggregate(args, unwrap)
    t_kwargs = torch.fx.node.map_aggregate(kwargs, unwrap)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # read-only (memory-mapped) weights
        result = node.target(*t_args, **t_kwargs)

    # a view of a weight keeps the weight's name (e.g. fc.weight transposed)
    sources = []
    torch.fx.node.map_aggregate(args, lambda x: sources.append(x.name)
                                if isinstance(x, Const) else None)
    name = sources[0] if sources else node.name

    def wrap(x):
        return Const(x, name) if isinstance(x, torch.Tensor) else x

    return torch.fx.node.map_aggregate(result, wrap)


def _has_graph_value(args: Any) -> bool:
    import torch

    found = []
    torch.fx.node.map_aggregate(args, lambda x: found.append(x) if isinstance(x, ir.Value)
                                else None)
    return bool(found)


def _check_shape(ctx: ExportContext, out: Any, where: str) -> None:
    expected = ctx.expected_shape()
    if expected is None or not isinstance(out, ir.Value):
        return
    got = static_shape(out)
    if got != expected:
        raise ConversionError(f"the conversion computes shape {list(got)} where PyTorch "
                              f"computes {list(expected)}", where=where)


# sizes of the inputs: fixed numbers once the input shapes are (the graph is static)
_STATIC_SIZES = {"aten.sym_size", "aten.sym_numel", "aten.sym_stride"}


def input_dependent(graph: Any, user_inputs: set[str]) -> set[str]:
    """Nodes whose value depends on the model's input values; all others are computed
    here, by PyTorch, from weights and sizes (and need no converter)."""
    dependent = set(user_inputs)
    for node in graph.nodes:
        if node.op != "call_function" or op_name(node.target) in _STATIC_SIZES:
            continue
        if any(arg.name in dependent for arg in node.all_input_nodes):
            dependent.add(node.name)
    return dependent


def unsupported_ops(graph: Any, keys: dict[str, tuple[str, str]],
                    dependent: set[str]) -> list[str]:
    found: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op != "call_function" or node.name not in dependent:
            continue
        name = op_name(node.target)
        if lookup(name) is None and name not in _ARITHMETIC:
            key, cls = keys.get(node.name, (node.name, ""))
            found.setdefault(name, []).append(f"{key} ({cls})")
    return [f"{op} at {', '.join(where[:5])}" + (f" and {len(where) - 5} more"
                                                 if len(where) > 5 else "")
            for op, where in found.items()]


def convert_program(program: Any, input_shapes: Sequence[Sequence[int]] | None,
                    name: str = "model") -> ConvertedProgram:
    """The common graph of a (decomposed) ExportedProgram."""
    import torch
    from torch.export.graph_signature import InputKind, OutputKind

    graph = program.graph_module.graph
    keys = layer_keys(graph.nodes)
    signature = program.graph_signature
    user_inputs = {spec.arg.name for spec in signature.input_specs
                   if spec.kind == InputKind.USER_INPUT}
    missing = unsupported_ops(graph, keys, input_dependent(graph, user_inputs))
    if missing:
        raise UnsupportedError("PyTorch operators with no converter: " + "; ".join(missing))
    specs = {spec.arg.name: spec for spec in signature.input_specs
             if hasattr(spec.arg, "name")}
    user = [spec for spec in signature.input_specs if spec.kind == InputKind.USER_INPUT]
    if input_shapes is not None and len(input_shapes) != len(user):
        raise UsageError(f"--input-shape gives {len(input_shapes)} shape(s); the program "
                         f"takes {len(user)} input(s): {', '.join(s.arg.name for s in user)}")

    builder = GraphBuilder(name)
    ctx = ExportContext(builder)
    env: dict[str, Any] = {}
    inputs: list[InputInfo] = []
    result = ConvertedProgram(None, inputs)  # type: ignore[arg-type]
    seen_layers: dict[str, str] = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            env[node.name] = _placeholder(program, node, specs.get(node.name), builder,
                                          input_shapes, len(inputs), inputs)
            continue
        if node.op == "output":
            outputs = _outputs(node, env, signature.output_specs, OutputKind)
            builder.set_outputs([ctx.value(v) for v in outputs])
            continue
        if node.op != "call_function":
            raise UnsupportedError(f"graph node '{node.name}' is a {node.op}, not an operator "
                                   "call (a program with submodules or control flow)")
        key, cls = keys.get(node.name, (node.name, ""))
        builder.set_origin(key, cls)
        where = f"{key} ({cls})"
        name_of_op = op_name(node.target)
        args = torch.fx.node.map_arg(node.args, lambda n: env[n.name])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n.name])
        ctx.node = node
        try:
            if not _has_graph_value((args, kwargs)):
                out = _fold(node, args, kwargs)
            else:
                fn = lookup(name_of_op)
                assert fn is not None
                out = fn(ctx, *args, **kwargs)
                result.ops[name_of_op] = result.ops.get(name_of_op, 0) + 1
                seen_layers.setdefault(key, cls)
            _check_shape(ctx, out, where)
        except MigrateError as exc:
            if exc.where is None:
                exc.where = where
            raise
        except MemoryError:
            raise
        except Exception as exc:
            raise ConversionError(f"cannot convert {name_of_op}: {type(exc).__name__}: "
                                  f"{exc}"[:500], where=where) from exc
        env[node.name] = out
    result.model = builder.model()
    result.layers = list(seen_layers.items())
    result.notes = ctx.notes
    return result


def _placeholder(program, node, spec, builder: GraphBuilder, input_shapes, index: int,
                 inputs: list[InputInfo]) -> Any:
    from torch.export.graph_signature import InputKind

    if spec is None or spec.kind == InputKind.USER_INPUT:
        shape = _input_shape(node, input_shapes[index] if input_shapes is not None else None)
        _, dtype = _tensor_meta(node)
        if str(dtype) == "torch.bfloat16":
            raise UnsupportedError(f"input '{node.name}' is bfloat16: the model computes in "
                                   "bfloat16, which no target here runs; convert "
                                   "model.float() with float32 inputs")
        value = builder.add_input(node.name, shape, ir_dtype(dtype))
        inputs.append(InputInfo(node.name, shape, dtype=str(dtype).replace("torch.", ""),
                                layout="NCHW" if len(shape) == 4 else "",
                                value_range=_index_range(program, node)))
        return value
    if spec.kind == InputKind.PARAMETER:
        return Const(program.state_dict[spec.target], spec.target)
    if spec.kind == InputKind.BUFFER:
        table = program.state_dict if spec.persistent else program.constants
        return Const(table[spec.target], spec.target)
    if spec.kind == InputKind.CONSTANT_TENSOR:
        return Const(program.constants[spec.target], spec.target)
    raise UnsupportedError(f"the program takes a {spec.kind.name.lower()} input "
                           f"('{node.name}'), which no target here expresses")


def _index_range(program, node) -> tuple[int, int] | None:
    """Word indices into an nn.Embedding: the rows it has (what a test input may hold)."""
    for user in node.users:
        if op_name(user.target) == "aten.embedding" and user.args[1] is node:
            weight = user.args[0]
            val = weight.meta.get("val") if hasattr(weight, "meta") else None
            if val is not None and type(val.shape[0]) is int:
                return 0, int(val.shape[0]) - 1
    return None


def _outputs(node, env, output_specs, kinds) -> list[Any]:
    flat = node.args[0]
    flat = flat if isinstance(flat, list | tuple) else [flat]
    values = []
    for spec, item in zip(output_specs, flat, strict=True):
        if spec.kind != kinds.USER_OUTPUT:
            if spec.kind in (kinds.BUFFER_MUTATION, kinds.USER_INPUT_MUTATION):
                raise UnsupportedError("the program changes its buffers or inputs in place "
                                       "(a model in training mode? call model.eval())")
            continue
        value = env[item.name] if hasattr(item, "name") else item
        if not isinstance(value, ir.Value | Const):
            raise UnsupportedError(f"output {len(values)} is a {type(value).__name__}, "
                                   "not a tensor")
        values.append(value)
    return values
