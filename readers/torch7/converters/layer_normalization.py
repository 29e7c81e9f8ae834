"""nn.LayerNormalization: an nn.Sequential subclass,

    ConcatTable{Identity, Sequential{Mean(1, 1), Replicate(n, 1, 1)}} -> CSubTable
    -> Normalize(2, eps) -> MulConstant(sqrt(n)) [-> CMul(n) -> Add(n)]

converted child by child, with one Torch7 detail kept: Replicate(n, 1, 1) makes the
row means n x batch (not batch x n), and CSubTable subtracts tensors of equal element
count by their storage order, whatever their shapes. For a batch of more than one
row, each row thus has the means of the whole batch subtracted in turn; real Torch7
computes exactly that, and so does the converted model.
"""

import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def _storage_order_sub(ctx, module, x):
    """CSubTable as THTensor's add(-1) computes it: element k of the output is element
    k of each operand in storage order, when their element counts agree."""
    if isinstance(x, ir.Value) or len(x) != 2:
        raise ConversionError("CSubTable takes a table of two tensors")
    a, b = x
    sa, sb = ctx.shape(a), ctx.shape(b)
    if sa != sb and len(sa) and len(sb) and _count(sa) == _count(sb):
        b = ctx.op("Reshape", [b, ctx.int64s(list(sa))], hint="storage_order")
    return ctx.op("Sub", [a, b], hint="sub")


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


@converter("nn.LayerNormalization")
def layer_normalization(ctx, module, x):
    for child in module.children():
        if child.cls == "nn.CSubTable":
            ctx.builder.set_origin(child.path, child.cls)
            x = _storage_order_sub(ctx, child, x)
            ctx.builder.set_origin(module.path, module.cls)
        else:
            x = ctx.convert(child, x)
    return x
