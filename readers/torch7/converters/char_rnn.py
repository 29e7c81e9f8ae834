"""karpathy/char-rnn's own `OneHot` class (util/OneHot.lua; a global class, no `nn.`)."""

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_tensor


@converter("OneHot", package="karpathy/char-rnn")
def one_hot(ctx, module, x):
    """y[i] = row input[i] (1-based) of the outputSize x outputSize identity.

    char-rnn feeds its character indices as a FloatTensor, which the module turns into
    a LongTensor (truncating): the converted model keeps the float input and casts
    inside the same way."""
    x = as_tensor(x, "OneHot")
    if len(ctx.shape(x)) != 1:
        raise ConversionError(f"char-rnn's OneHot takes a 1-D index tensor, got "
                              f"{list(ctx.shape(x))}")
    size = module.int("outputSize")
    if size < 1:
        raise ConversionError(f"outputSize {size}")
    indices = x if x.dtype == ir.DataType.INT64 else ctx.op(
        "Cast", [x], hint="indices", to=ir.DataType.INT64)
    indices = ctx.op("Sub", [indices, ctx.const(np.asarray(1, np.int64), "one")], hint="index")
    return ctx.op("OneHot", [indices, ctx.const(np.asarray(size, np.int64), "depth"),
                             ctx.const(np.asarray([0.0, 1.0], np.float32), "values")],
                  hint="onehot", axis=-1)
