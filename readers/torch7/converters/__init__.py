"""One file per family of Torch7 modules; importing this package registers them all."""

from readers.torch7.converters import (  # noqa: F401
    activation,
    arithmetic,
    containers,
    conv,
    dropout,
    linear,
    nngraph,
    normalization,
    padding,
    pooling,
    reduce,
    shape,
    tables,
    upsampling,
)
