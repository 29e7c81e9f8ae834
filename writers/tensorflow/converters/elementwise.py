"""Element-wise ops: any layout passes through; constants are laid out like the input."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow.layout import Layout
from migrate.writers.tensorflow.registry import op_lowering

_BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Pow": "POW",
           "Max": "MAXIMUM", "Min": "MINIMUM", "Sum": "ADD", "Greater": "GREATER",
           "Less": "LESS", "Equal": "EQUAL", "GreaterOrEqual": "GREATER_EQUAL",
           "LessOrEqual": "LESS_EQUAL", "And": "LOGICAL_AND", "Or": "LOGICAL_OR"}
_COMPARISONS = {"GREATER", "LESS", "EQUAL", "GREATER_EQUAL", "LESS_EQUAL", "LOGICAL_AND",
                "LOGICAL_OR"}
_UNARY = {"Relu": "RELU", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "Exp": "EXP", "Log": "LOG",
          "Sqrt": "SQRT", "Abs": "ABS", "Neg": "NEG", "Floor": "FLOOR", "Ceil": "CEIL",
          "Sin": "SIN", "Cos": "COS", "Sign": "SIGN", "Not": "LOGICAL_NOT", "Round": "ROUND"}


def _dtype(ctx, value) -> str:
    from migrate.writers.tensorflow.lowering import _DTYPES

    return _DTYPES.get(value.dtype, "float32")


def unary(ctx, node, kind: str, x=None, **attrs):
    """One op on one input, whatever its layout; binds the node's output."""
    found = ctx.get(node.inputs[0])
    source = found.tensor if x is None else x
    out = ctx.emit(kind, [source], source.shape, _dtype(ctx, node.outputs[0]),
                   hint=kind.lower(), **attrs)
    ctx.bind(node.outputs[0], out, found.layout)
    return out


def _scalar(ctx, value) -> bool:
    array = ctx.const_of(value)
    return array is not None and array.size == 1


def elementwise(ctx, node, kind: str, inputs=None, fold: bool = True) -> None:
    """A broadcasting op of several inputs: all are brought to one layout (constants
    are transposed here; a tensor in another layout costs a transpose)."""
    inputs = [v for v in (inputs if inputs is not None else node.inputs) if v is not None]
    out_value = node.outputs[0]
    shape = ctx.shape(out_value)
    rank = len(shape)
    dtype = _dtype(ctx, out_value)
    tensors = [v for v in inputs if ctx.const_of(v) is None or id(v) in ctx._env]
    # a layout that is not a permutation (a flattened, reordered feature axis) passes
    # through when everything else is a scalar
    if len(tensors) == 1:
        found = ctx.get(tensors[0])
        if found.layout.perm is None and len(found.layout.shape) == rank and all(
                v is tensors[0] or _scalar(ctx, v) for v in inputs):
            operands = [found.tensor if v is tensors[0] else
                        ctx.const(ctx.const_of(v).reshape(()).astype(_np_dtype(found.tensor)),
                                  v.name, data=True) for v in inputs]
            _chain(ctx, node, kind, operands, found.tensor.shape, dtype, found.layout, fold)
            return
    perm = ctx.preferred_perm(tensors, rank)
    operands = [ctx.conform(v, rank, perm, f"{node.op_type} operands in different layouts")
                for v in inputs]
    stored_shape = tuple(shape[p] for p in perm)
    _chain(ctx, node, kind, operands, stored_shape, dtype, Layout.permuted(shape, perm), fold)


def _np_dtype(tensor) -> np.dtype:
    return np.dtype(tensor.dtype)


def _chain(ctx, node, kind, operands, stored_shape, dtype, layout, fold=True) -> None:
    """kind(a, b) for two operands; a left fold for the variadic Sum/Max/Min; one op of
    all operands when not `fold` (Where)."""
    if not fold:
        result = ctx.emit(kind, operands, stored_shape, dtype, hint=kind.lower())
        ctx.bind(node.outputs[0], result, layout)
        return
    result = operands[0]
    if len(operands) == 1:
        result = ctx.emit("RESHAPE", [result, ctx.int32s(stored_shape)], stored_shape, dtype,
                          new_shape=tuple(stored_shape))
    for operand in operands[1:]:
        result = ctx.emit(kind, [result, operand], stored_shape, dtype, hint=kind.lower())
    ctx.bind(node.outputs[0], result, layout)


def _binary_lowering(kind: str):
    def lower(ctx, node):
        elementwise(ctx, node, kind)

    return lower


for _onnx, _kind in _BINARY.items():
    op_lowering(_onnx)(_binary_lowering(_kind))


def _unary_lowering(kind: str):
    def lower(ctx, node):
        unary(ctx, node, kind)

    return lower


for _onnx, _kind in _UNARY.items():
    op_lowering(_onnx)(_unary_lowering(_kind))


@op_lowering("Identity", "Dropout")
def identity(ctx, node):
    ctx.alias(node.outputs[0], node.inputs[0])
    for extra in node.outputs[1:]:  # Dropout's mask is never used at inference
        if extra.uses():
            raise ctx.error("Dropout's mask output is not available at inference")


@op_lowering("Where")
def where(ctx, node):
    elementwise(ctx, node, "SELECT_V2", fold=False)


@op_lowering("Reciprocal")
def reciprocal(ctx, node):
    found = ctx.get(node.inputs[0])
    one = ctx.const(np.ones((), np.float32), "one")
    out = ctx.emit("DIV", [one, found.tensor], found.tensor.shape, hint="reciprocal")
    ctx.bind(node.outputs[0], out, found.layout)


@op_lowering("Mean")
def mean(ctx, node):
    elementwise(ctx, node, "ADD")
    found = ctx.get(node.outputs[0])
    n = ctx.const(np.asarray(1.0 / len(node.inputs), np.float32), "count")
    out = ctx.emit("MUL", [found.tensor, n], found.tensor.shape, hint="mean")
    ctx.bind(node.outputs[0], out, found.layout)


@op_lowering("Cast")
def cast(ctx, node):
    found = ctx.get(node.inputs[0])
    dtype = _dtype(ctx, node.outputs[0])
    if dtype == found.tensor.dtype:
        ctx.alias(node.outputs[0], node.inputs[0])
        return
    out = ctx.emit("CAST", [found.tensor], found.tensor.shape, dtype, hint="cast",
                   in_dtype=found.tensor.dtype, out_dtype=dtype)
    ctx.bind(node.outputs[0], out, found.layout)


@op_lowering("PRelu")
def prelu(ctx, node):
    """PRELU with the slope laid out like the input (it broadcasts)."""
    x, slope = node.inputs
    shape = ctx.shape(node.outputs[0])
    tensor, perm = ctx.permutation(x)
    alpha = ctx.require_const(slope, "PRelu's slope")
    full = alpha.reshape((1,) * (len(shape) - alpha.ndim) + alpha.shape).transpose(perm)
    while full.ndim > 1 and full.shape[0] == 1:
        full = full[0]
    out = ctx.emit("PRELU", [tensor, ctx.const(full.astype(np.float32), "alpha", "alpha")],
                   tensor.shape, hint="prelu")
    ctx.bind_permuted(node.outputs[0], out, perm)
