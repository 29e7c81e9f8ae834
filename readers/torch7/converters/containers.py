"""Containers: modules that only wire their children together."""

from migrate.readers.torch7.registry import converter


@converter("nn.Sequential")
def sequential(ctx, module, x):
    for child in module.children():
        x = ctx.convert(child, x)
    return x
