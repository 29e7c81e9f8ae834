"""Fully connected layers."""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


@converter("nn.Linear")
def linear(ctx, module, x):
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 2:
        raise ConversionError("Linear has no 2-D weight")
    inputs = [ctx.const(weight, "weight")]
    bias = module.tensor("bias")  # nn.Linear(in, out, false) has none
    if bias is not None:
        inputs.append(ctx.const(bias.reshape(weight.shape[0]), "bias"))
    return ctx.batched(x, 2, lambda x2: ctx.op("Gemm", [x2, *inputs], hint="fc", transB=1))
