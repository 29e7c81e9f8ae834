"""Decorators and pass-through modules: at inference they forward their input (or
their wrapped module's output) unchanged.

Their other duties happen in training or on the side: NaN checks for NaNs, Profile
times the wrapped module, PrintSize prints, L1Penalty adds a loss, GradientReversal
and ZeroGrad change gradients, WhiteNoise adds noise in training mode only.
"""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter

# integer tensor types a Copy may convert to (ONNX types looked up when used: onnx_ir's
# import is deferred until a graph is built, see migrate/core/startup.py)
_INTEGER_STORAGE = (np.int64, np.int32, np.int16, np.int8, np.uint8)


@converter("nn.Decorator", "nn.NaN", "nn.Profile", "nn.DontCast")
def decorator(ctx, module, x):
    """The wrapped module's output. DontCast runs its module in the module's own tensor
    type (e.g. double inside a float model): the converted graph computes in float32
    throughout, like every other module."""
    children = module.children()
    if len(children) != 1:
        raise ConversionError(f"{module.cls} wraps exactly one module, found {len(children)}")
    return ctx.convert(children[0], x)


@converter("nn.L1Penalty", "nn.GradientReversal", "nn.ZeroGrad", "nn.PrintSize",
           "nn.Contiguous")
def pass_through(ctx, module, x):
    return x


@converter("nn.WhiteNoise")
def white_noise(ctx, module, x):
    """Evaluate mode adds the noise's mean only (nothing when it is 0)."""
    mean = module.float("mean", 0.0)
    if mean == 0.0:
        return x
    return ctx.op("Add", [x, ctx.scalar(mean, "mean")], hint="noise_mean")


@converter("nn.Copy")
def copy(ctx, module, x):
    """A copy into the output tensor type. Into a float type it is the identity here (the
    graph computes in float32); into an integer type it truncates, as a C cast does."""
    out = module.fields.get("output")
    if isinstance(out, np.ndarray) and out.dtype in [np.dtype(d) for d in _INTEGER_STORAGE]:
        if not isinstance(x, ir.Value):
            raise ConversionError("Copy takes a tensor")
        return ctx.op("Cast", [x], hint="copy", to=ir.DataType.from_numpy(out.dtype))
    return x
