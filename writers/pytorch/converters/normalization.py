"""Normalization layers: nn.BatchNorm1d/2d/3d (running statistics, eps, momentum),
nn.InstanceNorm1d/2d/3d, nn.LocalResponseNorm, nn.LayerNorm."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, literal
from migrate.writers.pytorch.registry import op_converter

_DEFAULT_EPS = np.float32(1e-5)


def _eps(node, default: float = 1e-5) -> str | None:
    """`eps=...` unless it is PyTorch's default 1e-5 (both as float32, ONNX's attribute
    type)."""
    eps = np.float32(node.attributes.get_float("epsilon", default))
    return None if eps == _DEFAULT_EPS else f"eps={literal(eps, np.float32)}"


def _vector(g: CodeGen, value, what: str, channels: int) -> np.ndarray:
    array = g.need_const(value, what)
    if array.size != channels:
        raise ConversionError(f"its {what} has {array.size} values for {channels} channels")
    return array.reshape(channels)


def _rank_suffix(g: CodeGen, x, layer: str) -> str:
    rank = len(g.shape(x))
    if rank in (2, 3):
        return "1d"
    if rank in (4, 5):
        return f"{rank - 2}d"
    raise ConversionError(f"{layer} of a {rank}-D input has no torch.nn layer")


@op_converter("BatchNormalization")
def batch_norm(g: CodeGen, node) -> None:
    if node.attributes.get_int("training_mode", 0):
        raise ConversionError("BatchNormalization in training mode is not an inference layer")
    if any(g.last_use(v) >= 0 for v in node.outputs[1:]):
        raise ConversionError("BatchNormalization's running-statistics outputs are not "
                              "computed in evaluation")
    x = node.inputs[0]
    channels = g.shape(x)[1]
    params = {"weight": _vector(g, node.inputs[1], "scale", channels),
              "bias": _vector(g, node.inputs[2], "bias", channels),
              "running_mean": _vector(g, node.inputs[3], "mean", channels),
              "running_var": _vector(g, node.inputs[4], "variance", channels),
              "num_batches_tracked": np.zeros((), np.int64)}
    options = [str(channels)]
    eps = _eps(node)
    if eps:
        options.append(eps)
    # ONNX's momentum weighs the running value, PyTorch's the new batch statistic
    momentum = round(1.0 - node.attributes.get_float("momentum", 0.9), 6)
    if momentum != 0.1:
        options.append(f"momentum={momentum!r}")
    suffix = _rank_suffix(g, x, "batch normalization")
    layer = g.module("bn", f"nn.BatchNorm{suffix}({', '.join(options)})", params)
    g.emit(f"{layer}({g.ref(x)})", outputs=node.outputs[:1])


@op_converter("InstanceNormalization")
def instance_norm(g: CodeGen, node) -> None:
    x = node.inputs[0]
    channels = g.shape(x)[1]
    params = {"weight": _vector(g, node.inputs[1], "scale", channels),
              "bias": _vector(g, node.inputs[2], "bias", channels)}
    options = [str(channels)]
    eps = _eps(node)
    if eps:
        options.append(eps)
    options.append("affine=True")
    suffix = _rank_suffix(g, x, "instance normalization")
    if len(g.shape(x)) == 2:
        raise ConversionError("instance normalization of a 2-D input has no torch.nn layer")
    layer = g.module("norm", f"nn.InstanceNorm{suffix}({', '.join(options)})", params)
    g.emit(f"{layer}({g.ref(x)})")


@op_converter("LRN")
def local_response_norm(g: CodeGen, node) -> None:
    size = node.attributes.get_int("size", 0)
    if size % 2 == 0:
        # ONNX centres an even window one channel later than PyTorch does
        raise ConversionError(f"LRN over an even number of channels ({size}) has no "
                              "PyTorch equivalent")
    alpha = node.attributes.get_float("alpha", 1e-4)
    beta = node.attributes.get_float("beta", 0.75)
    bias = node.attributes.get_float("bias", 1.0)
    args = [str(size)]
    if np.float32(alpha) != np.float32(1e-4):
        args.append(f"alpha={literal(alpha, np.float32)}")
    if np.float32(beta) != np.float32(0.75):
        args.append(f"beta={literal(beta, np.float32)}")
    if bias != 1.0:
        args.append(f"k={literal(bias, np.float32)}")
    layer = g.module("lrn", f"nn.LocalResponseNorm({', '.join(args)})")
    g.emit(f"{layer}({g.ref(node.inputs[0])})")


@op_converter("LayerNormalization")
def layer_norm(g: CodeGen, node) -> None:
    if any(g.last_use(v) >= 0 for v in node.outputs[1:]):
        raise ConversionError("LayerNormalization's mean and inverse deviation outputs have "
                              "no torch.nn equivalent")
    x = node.inputs[0]
    shape = g.shape(x)
    axis = node.attributes.get_int("axis", -1)
    axis = axis + len(shape) if axis < 0 else axis
    normalized = list(shape[axis:])
    scale = g.need_const(node.inputs[1], "scale")
    params = {"weight": np.ascontiguousarray(np.broadcast_to(scale, normalized))}
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is not None:
        params["bias"] = np.ascontiguousarray(
            np.broadcast_to(g.need_const(bias, "bias"), normalized))
    options = [str(normalized[0]) if len(normalized) == 1 else str(tuple(normalized))]
    eps = _eps(node)
    if eps:
        options.append(eps)
    if bias is None:
        options.append("bias=False")
    layer = g.module("norm", f"nn.LayerNorm({', '.join(options)})", params)
    g.emit(f"{layer}({g.ref(x)})", outputs=node.outputs[:1])
