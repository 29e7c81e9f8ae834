"""Element-wise arithmetic, comparisons and math functions, written as Python operators
and torch functions (`x + x1`, `x * 0.5`, `torch.exp(x)`); a residual addition into a
tensor nothing else needs is written in place (`x += x1`), as ResNet's code does."""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, literal, torch_dtype
from migrate.writers.pytorch.registry import op_converter

_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Pow": "**",
           "Greater": ">", "Less": "<", "GreaterOrEqual": ">=", "LessOrEqual": "<=",
           "Equal": "==", "And": "&", "Or": "|", "Xor": "^", "BitwiseAnd": "&",
           "BitwiseOr": "|", "BitwiseXor": "^"}
_KIND = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}
_UNARY = {"Neg": "-{x}", "Abs": "torch.abs({x})", "Exp": "torch.exp({x})",
          "Log": "torch.log({x})", "Sqrt": "torch.sqrt({x})", "Reciprocal": "torch.reciprocal({x})",
          "Sign": "torch.sign({x})", "Floor": "torch.floor({x})", "Ceil": "torch.ceil({x})",
          "Round": "torch.round({x})", "Sin": "torch.sin({x})", "Cos": "torch.cos({x})",
          "Tan": "torch.tan({x})", "Asin": "torch.asin({x})", "Acos": "torch.acos({x})",
          "Atan": "torch.atan({x})", "Sinh": "torch.sinh({x})", "Cosh": "torch.cosh({x})",
          "Asinh": "torch.asinh({x})", "Acosh": "torch.acosh({x})", "Atanh": "torch.atanh({x})",
          "Erf": "torch.erf({x})", "Not": "torch.logical_not({x})", "IsNaN": "torch.isnan({x})",
          "BitwiseNot": "torch.bitwise_not({x})"}


def operand(g: CodeGen, value, other, out, kind: str) -> str:
    """A binary op's operand: a literal for a constant scalar that does not change the
    result's shape, else its variable or parameter."""
    array = g.const(value)
    if array is not None and array.size == 1 and other is not None and \
            other.const_value is None and g.shape(other) == g.shape(out) and \
            array.dtype.kind in "fiub":
        text = literal(array.reshape(-1)[0].item(), array.dtype)
        if array.dtype.kind == "f" and "." not in text and "e" not in text and "(" not in text:
            text += ".0"
        return f"({text})" if text.startswith("-") else text
    return g.ref(value, kind)


@op_converter(*_BINARY)
def binary(g: CodeGen, node) -> None:
    a, b = node.inputs
    out = node.outputs[0]
    kind = _KIND.get(node.op_type, node.op_type.lower())
    symbol = _BINARY[node.op_type]
    if node.op_type == "Add" and _add_in_place(g, a, b, out):
        return
    left = operand(g, a, b, out, kind)
    right = operand(g, b, a, out, kind)
    if node.op_type == "Pow" and right.endswith(".0") and right[:-2].lstrip("-").isdigit():
        right = right[:-2]  # x ** 2: integer powers as a person writes them
    if symbol in "+-" and right.startswith("(-"):  # x - 0.2 rather than x + (-0.2): exact
        symbol, right = ("-" if symbol == "+" else "+"), right[2:-1]
    g.emit(f"{left} {symbol} {right}", comment=True)


def _add_in_place(g: CodeGen, a, b, out) -> bool:
    """`x += x1` when x is an intermediate nothing else needs and keeps its shape."""
    for target, other in ((a, b), (b, a)):
        if target.const_value is None and g.can_modify(target) and \
                g.shape(target) == g.shape(out) and target.dtype == out.dtype and \
                target is not other:
            text = operand(g, other, target, out, "add")
            g.emit(f"{g.ref(target)} += {text}", inplace_of=target, comment=True)
            return True
    return False


@op_converter(*_UNARY)
def unary(g: CodeGen, node) -> None:
    g.emit(_UNARY[node.op_type].format(x=g.ref(node.inputs[0])), comment=True)


def _variadic(g: CodeGen, node, combine) -> None:
    values = [g.ref(v, node.op_type.lower()) for v in node.inputs if v is not None]
    expr = values[0]
    for value in values[1:]:
        expr = combine(expr, value)
    if len(values) == 1:
        expr = f"{expr}.clone()"
    g.emit(expr, comment=True)


@op_converter("Sum")
def sum_(g: CodeGen, node) -> None:
    _variadic(g, node, lambda a, b: f"{a} + {b}")


@op_converter("Max")
def maximum(g: CodeGen, node) -> None:
    _variadic(g, node, lambda a, b: f"torch.maximum({a}, {b})")


@op_converter("Min")
def minimum(g: CodeGen, node) -> None:
    _variadic(g, node, lambda a, b: f"torch.minimum({a}, {b})")


@op_converter("Mean")
def mean(g: CodeGen, node) -> None:
    values = [g.ref(v, "mean") for v in node.inputs if v is not None]
    g.emit(f"({' + '.join(values)}) / {len(values)}", comment=True)


@op_converter("Where")
def where(g: CodeGen, node) -> None:
    cond, a, b = node.inputs
    out = node.outputs[0]
    g.emit(f"torch.where({g.ref(cond, 'mask')}, {operand(g, a, b, out, 'where')}, "
           f"{operand(g, b, a, out, 'where')})", comment=True)


@op_converter("Cast")
def cast(g: CodeGen, node) -> None:
    import onnx_ir as ir

    target = ir.DataType(node.attributes.get_int("to", 1))
    try:
        dtype = torch_dtype(np.dtype(target.numpy()))
    except (TypeError, ValueError):
        raise ConversionError(f"casting to {target.name} has no PyTorch equivalent") from None
    g.emit(f"{g.ref(node.inputs[0])}.to({dtype})", comment=True)


@op_converter("Mod")
def mod(g: CodeGen, node) -> None:
    a, b = node.inputs
    out = node.outputs[0]
    function = "torch.fmod" if node.attributes.get_int("fmod", 0) else "torch.remainder"
    g.emit(f"{function}({g.ref(a)}, {operand(g, b, a, out, 'mod')})", comment=True)
