"""Inference optimizations on the common graph (on by default; --no-optimize skips).

- BatchNormalization after a Conv / fully connected Gemm folds into its weights.
- A multiplication by a constant scalar (Dropout v1 at test time, MulConstant)
  after a Conv / Gemm folds into its weights; Dropout nodes disappear.
- Identity nodes and Unsqueeze/Squeeze pairs that undo each other disappear.

A folded node's output keeps the metadata of the last module it stands for, so
layer-by-layer reports still find every remaining module's output.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from migrate.core.graph import SOURCE_CLASS, SOURCE_PATH


def optimize(model: ir.Model, fold: bool = True) -> list[str]:
    """Optimize in place; returns one note per kind of change made. `fold=False` keeps
    every trainable layer (BatchNorm, scalings, Dropout): only no-ops are removed."""
    graph = model.graph
    counts = {"bn": 0, "scale": 0, "identity": 0, "squeeze": 0}
    changed = True
    while changed:
        changed = False
        for node in list(graph):
            if node.graph is None:  # removed earlier in this sweep
                continue
            if fold and node.op_type == "BatchNormalization" and _fold_batchnorm(graph, node):
                counts["bn"] += 1
                changed = True
            elif fold and node.op_type == "Mul" and _fold_scalar(graph, node):
                counts["scale"] += 1
                changed = True
            elif (node.op_type == "Identity" or fold and node.op_type == "Dropout") and \
                    _bypass(graph, node):
                counts["identity"] += 1
                changed = True
            elif node.op_type == "Squeeze" and _cancel_squeeze(graph, node):
                counts["squeeze"] += 1
                changed = True
    unused = [name for name, value in graph.initializers.items()
              if not value.uses() and not value.is_graph_output()]
    for name in unused:  # weights replaced by folded ones
        graph.initializers.pop(name)
    notes = []
    if counts["bn"]:
        notes.append(f"{counts['bn']} BatchNormalization folded into the preceding layer")
    if counts["scale"]:
        notes.append(f"{counts['scale']} constant scalings (e.g. Dropout v1) folded into "
                     "the preceding layer")
    if counts["identity"]:
        notes.append(f"{counts['identity']} identity/Dropout ops removed")
    if counts["squeeze"]:
        notes.append(f"{counts['squeeze']} Squeeze/Unsqueeze pairs removed")
    return notes


# -- helpers ------------------------------------------------------------------------

def _only_consumer(value: ir.Value, node: ir.Node) -> bool:
    users = {id(use.node) for use in value.uses()}
    return users == {id(node)} and not value.is_graph_output()


def _const(value: ir.Value | None) -> np.ndarray | None:
    if value is None or value.const_value is None:
        return None
    return np.asarray(value.const_value.numpy())


def _new_constant(graph: ir.Graph, array: np.ndarray, like: ir.Value) -> ir.Value:
    taken = set(graph.initializers)
    name, k = f"{like.name}_folded", 1
    while name in taken:
        k += 1
        name = f"{like.name}_folded{k}"
    value = ir.Value(name=name, shape=ir.Shape(list(array.shape)),
                     type=ir.TensorType(ir.DataType.FLOAT),
                     const_value=ir.Tensor(np.ascontiguousarray(array, np.float32), name=name))
    graph.register_initializer(value)
    return value


def _linear_producer(value: ir.Value) -> ir.Node | None:
    """The Conv or fully connected Gemm (constant weights) that computes `value`."""
    producer = value.producer()
    if producer is None or not _bias_fits(producer):
        return None
    if producer.op_type == "Conv" and _const(producer.inputs[1]) is not None:
        return producer
    if (producer.op_type == "Gemm" and producer.attributes.get_int("transB", 0) == 1
            and producer.attributes.get_int("transA", 0) == 0
            and producer.attributes.get_float("alpha", 1.0) == 1.0
            and producer.attributes.get_float("beta", 1.0) == 1.0
            and _const(producer.inputs[1]) is not None):
        return producer
    return None


def _bias_fits(producer: ir.Node) -> bool:
    """A bias (when there is one) of one value per output channel."""
    weight = _const(producer.inputs[1]) if len(producer.inputs) > 1 else None
    bias = _const(producer.inputs[2]) if len(producer.inputs) > 2 else None
    return weight is not None and weight.ndim >= 1 and (bias is None or
                                                        bias.size == weight.shape[0])


def _rescale(graph: ir.Graph, producer: ir.Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """producer's output becomes output * scale + shift (per output channel)."""
    weight = _const(producer.inputs[1]).astype(np.float64)
    n_out = weight.shape[0]
    bias_value = producer.inputs[2] if len(producer.inputs) > 2 else None
    bias = _const(bias_value)
    bias = np.zeros(n_out) if bias is None else bias.astype(np.float64)
    scaled = weight * scale.reshape([n_out] + [1] * (weight.ndim - 1))
    producer.replace_input_with(1, _new_constant(graph, scaled, producer.inputs[1]))
    new_bias = bias * scale + shift
    if len(producer.inputs) < 3:
        producer.resize_inputs(3)
    producer.replace_input_with(2, _new_constant(graph, new_bias, bias_value or
                                                 producer.inputs[1]))


def _absorb(graph: ir.Graph, producer: ir.Node, node: ir.Node) -> None:
    """Remove `node` (now computed by `producer`) and give producer its identity."""
    out = node.outputs[0]
    kept = producer.outputs[0]
    if out.is_graph_output():
        # keep the graph output's name: rename the producer's output instead
        index = list(graph.outputs).index(out)
        out.replace_all_uses_with(kept)
        name = out.name
        out.name = f"{name}_removed"
        kept.name = name
        graph.outputs[index] = kept
    else:
        out.replace_all_uses_with(kept)
    for key in (SOURCE_PATH, SOURCE_CLASS):
        if key in node.metadata_props:
            producer.metadata_props[key] = node.metadata_props[key]
    graph.remove(node, safe=True)


def _fold_batchnorm(graph: ir.Graph, node: ir.Node) -> bool:
    producer = _linear_producer(node.inputs[0])
    if producer is None or not _only_consumer(node.inputs[0], node):
        return False
    params = [_const(v) for v in node.inputs[1:5]]
    if any(p is None for p in params):
        return False
    gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    channels = _const(producer.inputs[1]).shape[0]
    if any(p.size != channels for p in (gamma, beta, mean, var)):
        return False  # not one value per output channel: leave it to the runtime
    eps = node.attributes.get_float("epsilon", 1e-5)
    scale = gamma / np.sqrt(var + eps)
    _rescale(graph, producer, scale, beta - mean * scale)
    _absorb(graph, producer, node)
    return True


def _fold_scalar(graph: ir.Graph, node: ir.Node) -> bool:
    a, b = node.inputs
    factor = _const(b)
    x = a
    if factor is None:
        factor, x = _const(a), b
    if factor is None or factor.size != 1 or x is None:
        return False
    producer = _linear_producer(x)
    if producer is None or not _only_consumer(x, node):
        return False
    n_out = _const(producer.inputs[1]).shape[0]
    k = float(factor.reshape(-1)[0])
    _rescale(graph, producer, np.full(n_out, k), np.zeros(n_out))
    _absorb(graph, producer, node)
    return True


def _bypass(graph: ir.Graph, node: ir.Node) -> bool:
    out = node.outputs[0]
    source = node.inputs[0]
    if out.is_graph_output() or source is None:
        return False
    out.replace_all_uses_with(source)
    graph.remove(node, safe=True)
    return True


def _cancel_squeeze(graph: ir.Graph, node: ir.Node) -> bool:
    """Squeeze(axes) followed only by Unsqueeze(same axes): both go."""
    out = node.outputs[0]
    users = [use.node for use in out.uses()]
    if out.is_graph_output() or len(users) != 1 or users[0].op_type != "Unsqueeze":
        return False
    unsqueeze = users[0]
    axes_a, axes_b = _const(node.inputs[1]), _const(unsqueeze.inputs[1])
    if axes_a is None or axes_b is None or sorted(axes_a.tolist()) != sorted(axes_b.tolist()):
        return False
    if unsqueeze.outputs[0].is_graph_output():
        return False
    unsqueeze.outputs[0].replace_all_uses_with(node.inputs[0])
    graph.remove(unsqueeze, safe=True)
    graph.remove(node, safe=True)
    return True
