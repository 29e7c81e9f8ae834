"""Constant and shape folding on the common graph.

Exporters leave computations on constants in the graph: `Constant` nodes, the
Shape -> Gather -> Concat -> Reshape chains of dynamic-shape code, ConstantOfShape
fills. With static shapes all of them are constants; folding them leaves the targets
only the layers themselves. Each node's output types and shapes are (re)inferred in
graph order, so later nodes see folded values.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError, MigrateError
from migrate.core.graph import check_size, infer_node

# Folded by evaluating the node when its inputs hold at most this many elements
_MAX_EVAL_ELEMENTS = 1 << 20
# Never folded: their value is not a function of their inputs
_NOT_PURE = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                       "Multinomial", "Bernoulli", "If", "Loop", "Scan"})


def fold_constants(model: ir.Model) -> int:
    """Fold in place; returns how many nodes became constants."""
    graph = model.graph
    folded = 0
    for node in list(graph):
        try:
            infer_node(node)
            for out in node.outputs:
                check_size(out, f"output of {_where(node)}")
            value = _fold(node)
        except MigrateError as exc:
            exc.where = exc.where or _where(node)
            raise
        except MemoryError:
            raise
        except Exception as exc:  # attributes or inputs that do not fit the op (a damaged file)
            raise ConversionError(f"cannot process it: {type(exc).__name__}: {exc}"[:300],
                                  where=_where(node)) from None
        if value is None:
            continue
        out = node.outputs[0]
        if out.is_graph_output():
            continue
        const = _constant(graph, value, out.name)
        out.replace_all_uses_with(const)
        graph.remove(node, safe=True)
        folded += 1
    _drop_unused_initializers(graph)
    return folded


def _where(node: ir.Node) -> str:
    return f"node '{node.name or node.outputs[0].name}' ({node.op_type})"


def _constant(graph: ir.Graph, array: np.ndarray, name: str) -> ir.Value:
    taken = set(graph.initializers)
    base, k = f"{name}_const", 1
    new = base
    while new in taken:
        k += 1
        new = f"{base}{k}"
    value = ir.Value(name=new, shape=ir.Shape(list(array.shape)),
                     type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.Tensor(array, name=new))
    graph.register_initializer(value)
    return value


def _const(value: ir.Value | None) -> np.ndarray | None:
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def _fold(node: ir.Node) -> np.ndarray | None:
    if node.domain not in ("", "ai.onnx") or node.op_type in _NOT_PURE:
        return None
    if len(node.outputs) != 1:
        return None
    op = node.op_type
    if op == "Constant":
        return _constant_node(node)
    if op == "Shape":
        shape = node.inputs[0].shape
        if shape is None or not all(isinstance(d, int) for d in shape):
            return None
        dims = np.asarray(list(shape), dtype=np.int64)
        start = node.attributes.get_int("start", 0)
        end = node.attributes.get_int("end", len(dims))
        return dims[start:end]
    if op == "Size":
        shape = node.inputs[0].shape
        if shape is None or not all(isinstance(d, int) for d in shape):
            return None
        return np.asarray(math.prod(shape), dtype=np.int64)
    inputs = [v for v in node.inputs if v is not None]
    arrays = [_const(v) for v in inputs]
    if any(a is None for a in arrays):
        return None
    if op == "ConstantOfShape":
        # a fill (e.g. the weights of ONNX's "light" test models): a view that takes
        # no memory, whatever its size
        attr = node.attributes.get("value")
        fill = attr.as_tensor().numpy().reshape(-1) if attr is not None else np.zeros(1, np.float32)
        return np.broadcast_to(fill[:1].reshape(()), tuple(int(d) for d in arrays[0]))
    if op == "Identity":
        return arrays[0]
    if sum(a.size for a in arrays) > _MAX_EVAL_ELEMENTS:
        return None
    out = node.outputs[0]
    if out.shape is not None and all(isinstance(d, int) for d in out.shape) and \
            math.prod(out.shape) > _MAX_EVAL_ELEMENTS:
        return None
    return _evaluate(node, inputs, arrays)


def _constant_node(node: ir.Node) -> np.ndarray | None:
    for name, attr in node.attributes.items():
        if name == "value":
            return attr.as_tensor().numpy()
        if name == "value_float":
            return np.asarray(attr.as_float(), dtype=np.float32)
        if name == "value_floats":
            return np.asarray(list(attr.as_floats()), dtype=np.float32)
        if name == "value_int":
            return np.asarray(attr.as_int(), dtype=np.int64)
        if name == "value_ints":
            return np.asarray(list(attr.as_ints()), dtype=np.int64)
    return None


def _evaluate(node: ir.Node, inputs: list[ir.Value], arrays: list[np.ndarray]
              ) -> np.ndarray | None:
    """Run one node with onnx's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    from migrate.core.graph import OPSET

    proto = ir.serde.serialize_node(node)
    try:
        evaluator = ReferenceEvaluator(proto, opsets={"": OPSET})
        feeds = {v.name: np.asarray(a) for v, a in zip(inputs, arrays, strict=True)}
        (result,) = evaluator.run(None, feeds)[:1]
    except Exception:  # not foldable here: leave the node to the target
        return None
    return np.asarray(result)


def _drop_unused_initializers(graph: ir.Graph) -> None:
    for name in [n for n, v in graph.initializers.items()
                 if not v.uses() and not v.is_graph_output()]:
        graph.initializers.pop(name)
