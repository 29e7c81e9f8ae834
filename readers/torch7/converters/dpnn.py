"""Element-Research/dpnn classes that saved models contain (e.g. OpenFace's nn4.small2)."""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


@converter("nn.Inception", package="Element-Research/dpnn")
def inception(ctx, module, x):
    """A Decorator around the DepthConcat of its branches (built in __init__ from the
    config: reduce/conv columns, the pooling column, the 1x1 column): its output is the
    wrapped module's."""
    children = module.children()
    if len(children) != 1:
        raise ConversionError(f"Inception wraps one module (its DepthConcat), found "
                              f"{len(children)}")
    return ctx.convert(children[0], x)
