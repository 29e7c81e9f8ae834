"""Lowered program -> TensorFlow SavedModel with a `serving_default` signature.

Each op kind maps to the TensorFlow call that computes what the LiteRT builtin of the
same name computes (LiteRT's kernels were written to match TensorFlow's). Weights are
`tf.Variable`s named `<source layer>/<role>` with Keras's names and layouts (a
convolution's `kernel` is (kh, kw, in, out), a dense `kernel` (in, out), batch norm's
`gamma`, `beta`, `moving_mean`, `moving_variance`), tracked as `layers[<layer>][<role>]`.
Each op runs in a name scope named after its source layer, so a graph viewer shows the
source's layers; the tensor holding each layer's output is recorded for verification.

This module imports TensorFlow; it is only imported for the "tf" target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from migrate.core.errors import ConversionError
from migrate.writers.tensorflow.program import Op, Program, Tensor

FUNCTION = "serve"  # the module's tf.function that serving_default calls


def scope_name(path: str) -> str:
    """A TensorFlow op/scope name for a source layer path: model.modules[3] ->
    model.modules.3 (TensorFlow names allow [A-Za-z0-9_.-/] only)."""
    name = re.sub(r"\[(\d+)\]", r".\1", path or "op")
    name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).strip("/") or "op"
    if not re.match(r"[A-Za-z0-9.]", name[0]):
        name = "l" + name
    return name


_ACT = {"NONE": lambda x: x, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6,
        "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0)}


def _kernel_layout(kind: str, role: str, data: np.ndarray) -> np.ndarray:
    """LiteRT's filter layout -> Keras's kernel layout."""
    if role not in ("kernel", "depthwise_kernel"):
        return data
    if kind == "CONV_2D":
        return data.transpose(1, 2, 3, 0)  # (O, kh, kw, I) -> (kh, kw, I, O)
    if kind == "DEPTHWISE_CONV_2D":
        return data  # reshaped at use: (1, kh, kw, C*m) -> (kh, kw, C, m)
    if kind == "TRANSPOSE_CONV":
        return data.transpose(1, 2, 0, 3)  # (O, kh, kw, I) -> (kh, kw, O, I)
    if kind == "FULLY_CONNECTED":
        return data.T  # (M, K) -> (K, M)
    return data


def _pads(a: dict) -> str:
    return a["padding"]


def _convolution(conv):
    """CONV_2D / CONV_3D: the same attributes, tf.nn.conv2d or tf.nn.conv3d."""
    def run(op: Op, x, k, b):
        a = op.attrs
        y = conv(x, k, strides=[1, *a["stride"], 1], padding=_pads(a),
                 dilations=[1, *a["dilation"], 1])
        return y if b is None else tf.nn.bias_add(y, b)
    return run


def _transposed(conv_transpose):
    """TRANSPOSE_CONV / CONV_3D_TRANSPOSE: tf.nn.conv2d_transpose or conv3d_transpose."""
    def run(op: Op, x, k, b):
        a = op.attrs
        y = conv_transpose(x, k, output_shape=list(a["output_shape"]),
                           strides=[1, *a["stride"], 1], padding=_pads(a))
        return y if b is None else tf.nn.bias_add(y, b)
    return run


def _depthwise(op: Op, x, k, b):
    a = op.attrs
    _, kh, kw, total = op.inputs[1].shape
    kernel = tf.reshape(k, (kh, kw, total // a["multiplier"], a["multiplier"]))
    y = tf.nn.depthwise_conv2d(x, kernel, strides=[1, *a["stride"], 1], padding=_pads(a),
                               dilations=a["dilation"])
    return y if b is None else tf.nn.bias_add(y, b)


def _dense(op: Op, x, k, b):
    k_in = op.inputs[1].shape[1]
    y = tf.matmul(tf.reshape(x, (-1, k_in)), k)
    if b is not None:
        y = tf.nn.bias_add(y, b)
    return tf.reshape(y, op.outputs[0].shape)


def _batch_norm(op: Op, x, gamma, beta, mean, var):
    trailing = len(op.inputs[0].shape) - 1 - op.attrs["axis"]
    shape = (-1,) + (1,) * trailing
    reshape = (lambda v: tf.reshape(v, shape)) if trailing else (lambda v: v)
    return tf.nn.batch_normalization(x, reshape(mean), reshape(var), reshape(beta),
                                     reshape(gamma), op.attrs["epsilon"])


def _pool(fn):
    def run(op: Op, x):
        a = op.attrs
        return fn(x, ksize=[1, *a["filter"], 1], strides=[1, *a["stride"], 1],
                  padding=_pads(a))

    return run


def _reduce(fn):
    return lambda op, x, axes: fn(x, axis=list(op.attrs["axes"]),
                                  keepdims=op.attrs["keep_dims"])


def _resize(raw):
    return lambda op, x, size: raw(images=x, size=list(op.attrs["size"]),
                                   align_corners=op.attrs["align_corners"],
                                   half_pixel_centers=op.attrs["half_pixel_centers"])


def _prelu(op: Op, x, alpha):
    return tf.maximum(x, 0.0) + alpha * tf.minimum(x, 0.0)


def _hard_swish(op: Op, x):
    return x * tf.nn.relu6(x + 3.0) / 6.0


_DTYPES = {"float32": tf.float32, "int32": tf.int32, "int64": tf.int64, "bool": tf.bool,
           "uint8": tf.uint8, "int8": tf.int8}

# kind -> fn(op, *inputs) -> output(s); shape/axis/perm inputs are taken from attrs
_OPS: dict[str, Callable[..., Any]] = {
    "CONV_2D": _convolution(tf.nn.conv2d),
    "DEPTHWISE_CONV_2D": _depthwise,
    "TRANSPOSE_CONV": _transposed(tf.nn.conv2d_transpose),
    "FULLY_CONNECTED": _dense,
    "CONV_3D": _convolution(tf.nn.conv3d),
    "CONV_3D_TRANSPOSE": _transposed(tf.nn.conv3d_transpose),
    "BATCH_NORM": _batch_norm,
    "MAX_POOL_2D": _pool(tf.nn.max_pool2d),
    "AVERAGE_POOL_2D": _pool(tf.nn.avg_pool2d),
    "PAD": lambda op, x, p: tf.pad(x, p),
    "PADV2": lambda op, x, p, v: tf.pad(x, p, constant_values=v),
    "MIRROR_PAD": lambda op, x, p: tf.pad(x, p, mode=op.attrs["mode"]),
    "RESHAPE": lambda op, x, s: tf.reshape(x, op.attrs["new_shape"]),
    "TRANSPOSE": lambda op, x, p: tf.transpose(x, op.attrs["perm"]),
    "CONCATENATION": lambda op, *xs: tf.concat(list(xs), axis=op.attrs["axis"]),
    "SPLIT_V": lambda op, x, sizes, axis: tf.split(x, list(op.attrs["sizes"]),
                                                   axis=op.attrs["axis"]),
    "STRIDED_SLICE": lambda op, x, b, e, s: tf.strided_slice(
        x, b, e, s, begin_mask=op.attrs.get("begin_mask", 0),
        end_mask=op.attrs.get("end_mask", 0)),
    "SOFTMAX": lambda op, x: tf.nn.softmax(x * op.attrs.get("beta", 1.0)
                                           if op.attrs.get("beta", 1.0) != 1.0 else x),
    "LOG_SOFTMAX": lambda op, x: tf.nn.log_softmax(x),
    "MEAN": _reduce(tf.reduce_mean),
    "SUM": _reduce(tf.reduce_sum),
    "REDUCE_MAX": _reduce(tf.reduce_max),
    "REDUCE_MIN": _reduce(tf.reduce_min),
    "REDUCE_PROD": _reduce(tf.reduce_prod),
    "BATCH_MATMUL": lambda op, a, b: tf.linalg.matmul(a, b, adjoint_a=op.attrs["adj_x"],
                                                      adjoint_b=op.attrs["adj_y"]),
    "ADD": lambda op, a, b: tf.add(a, b),
    "SUB": lambda op, a, b: tf.subtract(a, b),
    "MUL": lambda op, a, b: tf.multiply(a, b),
    "DIV": lambda op, a, b: tf.divide(a, b),
    "POW": lambda op, a, b: tf.pow(a, b),
    "MAXIMUM": lambda op, a, b: tf.maximum(a, b),
    "MINIMUM": lambda op, a, b: tf.minimum(a, b),
    "GREATER": lambda op, a, b: tf.greater(a, b),
    "GREATER_EQUAL": lambda op, a, b: tf.greater_equal(a, b),
    "LESS": lambda op, a, b: tf.less(a, b),
    "LESS_EQUAL": lambda op, a, b: tf.less_equal(a, b),
    "EQUAL": lambda op, a, b: tf.equal(a, b),
    "LOGICAL_AND": lambda op, a, b: tf.logical_and(a, b),
    "LOGICAL_OR": lambda op, a, b: tf.logical_or(a, b),
    "LOGICAL_NOT": lambda op, x: tf.logical_not(x),
    "SELECT_V2": lambda op, c, a, b: tf.where(c, a, b),
    "RELU": lambda op, x: tf.nn.relu(x),
    "RELU6": lambda op, x: tf.nn.relu6(x),
    "RELU_N1_TO_1": lambda op, x: tf.clip_by_value(x, -1.0, 1.0),
    "LOGISTIC": lambda op, x: tf.sigmoid(x),
    "TANH": lambda op, x: tf.tanh(x),
    "EXP": lambda op, x: tf.exp(x),
    "LOG": lambda op, x: tf.math.log(x),
    "SQRT": lambda op, x: tf.sqrt(x),
    "RSQRT": lambda op, x: tf.math.rsqrt(x),
    "ABS": lambda op, x: tf.abs(x),
    "NEG": lambda op, x: tf.negative(x),
    "FLOOR": lambda op, x: tf.floor(x),
    "CEIL": lambda op, x: tf.math.ceil(x),
    "ROUND": lambda op, x: tf.round(x),
    "SIN": lambda op, x: tf.sin(x),
    "COS": lambda op, x: tf.cos(x),
    "SIGN": lambda op, x: tf.sign(x),
    "ERF": lambda op, x: tf.math.erf(x),
    "GELU": lambda op, x: tf.nn.gelu(x, approximate=op.attrs.get("approximate", False)),
    "ELU": lambda op, x: tf.nn.elu(x),
    "LEAKY_RELU": lambda op, x: tf.nn.leaky_relu(x, alpha=op.attrs["alpha"]),
    "PRELU": _prelu,
    "HARD_SWISH": _hard_swish,
    "LOCAL_RESPONSE_NORMALIZATION": lambda op, x: tf.nn.local_response_normalization(
        x, depth_radius=op.attrs["radius"], bias=op.attrs["bias"], alpha=op.attrs["alpha"],
        beta=op.attrs["beta"]),
    "RESIZE_BILINEAR": _resize(tf.raw_ops.ResizeBilinear),
    "RESIZE_NEAREST_NEIGHBOR": _resize(tf.raw_ops.ResizeNearestNeighbor),
    "CAST": lambda op, x: tf.cast(x, _DTYPES[op.attrs["out_dtype"]]),
    "GATHER": lambda op, x, i: tf.gather(x, i, axis=op.attrs["axis"]),
    "GATHER_ND": lambda op, x, i: tf.gather_nd(x, i),
    "WHERE": lambda op, c: tf.where(c),
    "FLOOR_MOD": lambda op, a, b: tf.math.floormod(a, b),
    "FLOOR_DIV": lambda op, a, b: tf.math.floordiv(a, b),
    "NOT_EQUAL": lambda op, a, b: tf.not_equal(a, b),
    "ONE_HOT": lambda op, i, depth, on, off: tf.one_hot(i, op.outputs[0].shape[-1],
                                                        on_value=on, off_value=off,
                                                        axis=op.attrs["axis"]),
    "TOPK_V2": lambda op, x, k: list(tf.math.top_k(x, op.outputs[0].shape[-1])),
    "DEPTH_TO_SPACE": lambda op, x: tf.nn.depth_to_space(x, op.attrs["block"]),
    "SPACE_TO_DEPTH": lambda op, x: tf.nn.space_to_depth(x, op.attrs["block"]),
    "SCATTER_ND": lambda op, i, u, s: tf.scatter_nd(i, u, op.outputs[0].shape),
    "TILE": lambda op, x, m: tf.tile(x, op.attrs["multiples"]),
    "BROADCAST_TO": lambda op, x, s: tf.broadcast_to(x, op.attrs["to_shape"]),
    "ARG_MAX": lambda op, x, a: tf.math.argmax(x, axis=op.attrs["axis"],
                                               output_type=tf.int64),
    "ARG_MIN": lambda op, x, a: tf.math.argmin(x, axis=op.attrs["axis"],
                                               output_type=tf.int64),
}


def supported(kind: str) -> bool:
    return kind in _OPS


class _Model(tf.Module):
    """What the SavedModel holds: `layers[<layer>][<role>]` variables and `serve`."""


class SavedModelBuild:
    """The traced model; `tensor_names` maps each lowered tensor to its TF tensor name."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.module = _Model()
        self.variables: dict[str, dict[str, str]] = {}  # layer path -> role -> var name
        self.tensor_names: dict[str, str] = {}
        self._vars: dict[int, tf.Variable] = {}
        self._make_variables()
        # signature keys: the source's names where TensorFlow allows them
        self.input_keys = _keys([b.name for b in program.input_boundaries], "input")
        self.output_keys = _keys([b.name for b in program.output_boundaries], "output")
        specs = [tf.TensorSpec(t.shape, _DTYPES[t.dtype], name=key)
                 for t, key in zip(program.inputs, self.input_keys, strict=True)]
        # traced once, by the save (a trace made before it would be made again there)
        self.module.serve = tf.function(self._run, input_signature=specs, autograph=False)

    def _make_variables(self) -> None:
        layers: dict[str, dict[str, tf.Variable]] = {}
        taken: set[str] = set()
        for op in self.program.ops:
            for t in op.inputs:
                if t is None or t.data is None or t.role is None or id(t) in self._vars:
                    continue
                scope = scope_name(t.layer or op.layer)
                name, k = f"{scope}/{t.role}", 1
                while name in taken:
                    k += 1
                    name = f"{scope}/{t.role}_{k}"
                taken.add(name)
                value = np.asarray(_kernel_layout(op.kind, t.role, t.data), order="C")
                trainable = not t.role.startswith("moving_")
                var = tf.Variable(value, name=name, trainable=trainable)
                self._vars[id(t)] = var
                layers.setdefault(scope, {})[name.rsplit("/", 1)[1]] = var
                self.variables.setdefault(t.layer or op.layer, {})[t.role] = name
        self.module.layers = layers

    def _value(self, t: Tensor | None, env: dict[int, Any], op: Op):
        if t is None:
            return None
        if id(t) in env:
            return env[id(t)]
        var = self._vars.get(id(t))
        if var is not None:
            return var
        assert t.data is not None, t.name
        return tf.constant(t.data)

    def _run(self, *inputs):
        env: dict[int, Any] = {}
        for t, x in zip(self.program.inputs, inputs, strict=True):
            env[id(t)] = x
            self.tensor_names[t.name] = x.name
        for op in self.program.ops:
            with tf.name_scope(scope_name(op.layer) + "/"):
                args = [self._value(t, env, op) for t in op.inputs]
                try:
                    result = _OPS[op.kind](op, *args)
                except (ValueError, TypeError, tf.errors.OpError) as exc:
                    raise ConversionError(f"{op.layer} ({op.cls}): TensorFlow refused "
                                          f"{op.kind.lower()}: {exc}"[:500]) from None
                outs = list(result) if isinstance(result, list | tuple) else [result]
                activation = op.attrs.get("activation", "NONE")
                if activation != "NONE":
                    outs = [_ACT[activation](outs[0])]
            for t, y in zip(op.outputs, outs, strict=True):
                env[id(t)] = y
                self.tensor_names[t.name] = y.name
        return {key: tf.identity(env[id(t)], name=key)
                for t, key in zip(self.program.outputs, self.output_keys, strict=True)}

    def save(self, path: str) -> None:
        # no checkpointing ops in the graph: loading restores the variables from the
        # object graph without them, and tracing them costs seconds on large models
        tf.saved_model.save(self.module, path,
                            signatures={"serving_default": self.module.serve},
                            options=tf.saved_model.SaveOptions(experimental_skip_saver=True))


def _keys(names: list[str], fallback: str) -> list[str]:
    """Signature keys for the source's names: TensorFlow allows [A-Za-z0-9_.-/] after a
    letter, digit or dot; others are replaced (STEM.json keeps both)."""
    keys: list[str] = []
    for k, name in enumerate(names):
        key = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).strip("/")
        if not key:
            key = f"{fallback}_{k}"
        elif not re.match(r"[A-Za-z0-9.]", key[0]):
            key = "x" + key
        while key in keys:
            key += "_"
        keys.append(key)
    return keys
