"""Graph passes on the common graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from migrate.core.errors import UsageError


@dataclass
class Preprocessing:
    """What the archived model expects of its input, to be folded into the graph.

    The converted model then takes raw RGB input x and computes what the original
    computed on ((x in BGR order if bgr_to_rgb) - mean) * scale, with `mean` given
    per channel in the raw input's (RGB) order.
    """

    bgr_to_rgb: bool = False
    mean: Sequence[float] | None = None
    scale: float = 1.0

    @property
    def active(self) -> bool:
        return self.bgr_to_rgb or bool(self.mean) or self.scale != 1.0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """What the original model gets for a raw RGB input (channels: axis 1 of a
        batch, axis 0 of one CxHxW image)."""
        x = np.asarray(raw, dtype=np.float32)
        axis = 1 if x.ndim == 4 else 0
        if self.mean:
            shape = [1] * x.ndim
            shape[axis] = len(self.mean)
            x = x - np.asarray(self.mean, np.float32).reshape(shape)
        if self.bgr_to_rgb:
            x = np.flip(x, axis=axis)
        return np.ascontiguousarray(x * np.float32(self.scale))


def fold_input_preprocessing(model: ir.Model, pre: Preprocessing) -> list[str]:
    """Fold channel swap, mean and scale into the first convolution; returns notes."""
    graph = model.graph
    if len(graph.inputs) != 1:
        raise UsageError("input preprocessing needs a model with one input")
    data = graph.inputs[0]
    conv, channel_axis = _first_conv(data)
    weight_value, bias_value = conv.inputs[1], conv.inputs[2] if len(conv.inputs) > 2 else None
    weight = np.asarray(weight_value.const_value.numpy(), dtype=np.float64)
    channels = weight.shape[1]
    if conv.attributes.get_int("group", 1) != 1:
        raise UsageError("input preprocessing cannot be folded into a grouped convolution")
    mean = np.zeros(channels) if not pre.mean else np.asarray(pre.mean, dtype=np.float64)
    if mean.shape != (channels,):
        raise UsageError(f"--input-mean needs {channels} values for this model's input")
    # original input channel c reads raw channel perm[c]
    perm = list(reversed(range(channels))) if pre.bgr_to_rgb else list(range(channels))
    inverse = np.argsort(perm)
    new_weight = weight[:, inverse] * pre.scale
    notes = []
    if pre.bgr_to_rgb:
        notes.append("input channels BGR->RGB folded into the first convolution's weights")
    if pre.scale != 1.0:
        notes.append(f"input scale {pre.scale:g} folded into the first convolution's weights")
    bias = (np.zeros(weight.shape[0]) if bias_value is None
            else np.asarray(bias_value.const_value.numpy(), dtype=np.float64))
    pads = list(conv.attributes.get_ints("pads", [0, 0, 0, 0]))
    if mean.any() and any(pads):
        # Zero padding of the normalized input is `mean` in raw units: folding the mean
        # into the bias would be wrong at the borders, so subtract it exactly instead.
        shape = [1] * len(data.shape)
        shape[channel_axis] = channels
        mean_value = _constant(graph, mean.reshape(shape).astype(np.float32), "input_mean")
        sub = ir.node("Sub", [data, mean_value], metadata_props=dict(conv.metadata_props))
        sub.name, sub.outputs[0].name = "input_mean_node", "input_centered"
        sub.outputs[0].shape, sub.outputs[0].type = data.shape, data.type
        graph.insert_before(graph.node(0), sub)
        for use in list(data.uses()):
            if use.node is not sub:
                use.node.replace_input_with(use.idx, sub.outputs[0])
        notes.append("input mean subtracted by one Sub op (the first convolution pads its "
                     "input, so the mean cannot go into its bias)")
    else:
        bias = bias - np.einsum("ocij,c->o", new_weight, mean)
        if mean.any():
            notes.append("input mean folded into the first convolution's bias")
    conv.replace_input_with(1, _constant(graph, new_weight.astype(np.float32), "weight_folded"))
    if len(conv.inputs) < 3:
        conv.resize_inputs(3)
    conv.replace_input_with(2, _constant(graph, bias.astype(np.float32), "bias_folded"))
    return notes


def _first_conv(data: ir.Value) -> tuple[ir.Node, int]:
    consumers = [use.node for use in data.uses()]
    if len(consumers) == 1 and consumers[0].op_type == "Unsqueeze":  # unbatched input
        inner = [use.node for use in consumers[0].outputs[0].uses()]
        if len(inner) == 1 and inner[0].op_type == "Conv":
            return inner[0], 0
    if len(consumers) == 1 and consumers[0].op_type == "Conv":
        return consumers[0], 1
    raise UsageError("input preprocessing can only be folded when the input goes straight "
                     "into a convolution")


def _constant(graph: ir.Graph, array: np.ndarray, name: str) -> ir.Value:
    taken = {v.name for v in graph.initializers.values()}
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    value = ir.Value(name=name, shape=ir.Shape(list(array.shape)),
                     type=ir.TensorType(ir.DataType.FLOAT), const_value=ir.Tensor(array, name=name))
    graph.register_initializer(value)
    return value
