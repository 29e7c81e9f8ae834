"""Element-wise arithmetic, comparisons and math (NumPy broadcasting, as PyTorch).

Operands are cast to the type PyTorch computes in (its type promotion, as traced:
e.g. an int tensor times 0.5 is float) before the op.
"""

from migrate.core.errors import UnsupportedError
from migrate.readers.pytorch.registry import converter


def _promoted(ctx, *operands):
    dtype = ctx.expected_dtype()
    return [ctx.cast(v, dtype) for v in operands]


def _scaled(ctx, value, alpha, like):
    if alpha is None or float(alpha) == 1.0:
        return value
    return ctx.op("Mul", [value, ctx.scalar(float(alpha), like)])


@converter("aten.add")
def add(ctx, a, b, alpha=1):
    a, b = _promoted(ctx, a, b)
    like = a if not isinstance(a, int | float) else b
    return ctx.op("Add", [a, _scaled(ctx, b, alpha, like)], hint="add")


@converter("aten.sub")
def sub(ctx, a, b, alpha=1):
    a, b = _promoted(ctx, a, b)
    like = a if not isinstance(a, int | float) else b
    return ctx.op("Sub", [a, _scaled(ctx, b, alpha, like)], hint="sub")


@converter("aten.rsub")
def rsub(ctx, a, b, alpha=1):
    a, b = _promoted(ctx, a, b)
    return ctx.op("Sub", [b, _scaled(ctx, a, alpha, a)], hint="rsub")


@converter("aten.mul")
def mul(ctx, a, b):
    a, b = _promoted(ctx, a, b)
    return ctx.op("Mul", [a, b], hint="mul")


@converter("aten.div")
def div(ctx, a, b, rounding_mode=None):
    a, b = _promoted(ctx, a, b)
    out = ctx.op("Div", [a, b], hint="div")
    if rounding_mode == "floor":
        out = ctx.op("Floor", [out])
    elif rounding_mode == "trunc":
        sign = ctx.op("Sign", [out])
        out = ctx.op("Mul", [ctx.op("Floor", [ctx.op("Abs", [out])]), sign])
    elif rounding_mode is not None:
        raise UnsupportedError(f"division with rounding_mode={rounding_mode!r}")
    return out


@converter("aten.pow")
def power(ctx, a, b):
    a, b = _promoted(ctx, a, b)
    return ctx.op("Pow", [a, b], hint="pow")


def _math(onnx_type: str, hint: str):
    def convert(ctx, x):
        (x,) = _promoted(ctx, x)
        return ctx.op(onnx_type, [x], hint=hint)

    return convert


for _name, _onnx in (
    ("neg", "Neg"), ("abs", "Abs"), ("exp", "Exp"), ("log", "Log"), ("sqrt", "Sqrt"),
    ("reciprocal", "Reciprocal"), ("erf", "Erf"), ("sin", "Sin"), ("cos", "Cos"),
    ("floor", "Floor"), ("ceil", "Ceil"), ("sign", "Sign"), ("round", "Round"),
):
    converter(f"aten.{_name}")(_math(_onnx, _name))


@converter("aten.rsqrt")
def rsqrt(ctx, x):
    (x,) = _promoted(ctx, x)
    return ctx.op("Reciprocal", [ctx.op("Sqrt", [x])], hint="rsqrt")


@converter("aten.maximum")
def maximum(ctx, a, b):
    return ctx.op("Max", _promoted(ctx, a, b), hint="max")


@converter("aten.minimum")
def minimum(ctx, a, b):
    return ctx.op("Min", _promoted(ctx, a, b), hint="min")


def _compare(onnx_type: str, negate: bool = False):
    def convert(ctx, a, b):
        like = a if not isinstance(a, int | float) else b
        out = ctx.op(onnx_type, [ctx.value(a, like), ctx.value(b, like)])
        return ctx.op("Not", [out]) if negate else out

    return convert


for _name, _onnx, _negate in (
    ("eq", "Equal", False), ("ne", "Equal", True), ("lt", "Less", False),
    ("le", "LessOrEqual", False), ("gt", "Greater", False), ("ge", "GreaterOrEqual", False),
):
    converter(f"aten.{_name}")(_compare(_onnx, _negate))


@converter("aten.logical_not")
def logical_not(ctx, x):
    return ctx.op("Not", [ctx.cast(x, ctx.expected_dtype())])


@converter("aten.where")
def where(ctx, condition, a, b):
    a, b = _promoted(ctx, a, b)
    like = a if not isinstance(a, int | float) else b
    return ctx.op("Where", [condition, ctx.value(a, like), ctx.value(b, like)], hint="where")
