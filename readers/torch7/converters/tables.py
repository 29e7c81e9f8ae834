"""Containers and modules that take or make Lua tables of tensors.

A Lua table of tensors travels through the converters as a Python list of
graph values (nested lists for nested tables).
"""

import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter


def _table(x, what):
    if isinstance(x, ir.Value):
        raise ConversionError(f"{what} expects a table of tensors, got one tensor")
    return list(x)


def _tensors(x, what):
    items = _table(x, what)
    if not all(isinstance(v, ir.Value) for v in items):
        raise ConversionError(f"{what} expects a flat table of tensors")
    return items


def _positive_dim(ctx, module, rank, field="dimension"):
    dim = module.int(field)
    n_input_dims = module.get("nInputDims")
    if dim < 0:
        dim = rank + dim + 1
    elif n_input_dims is not None and rank == int(n_input_dims) + 1:
        dim += 1
    return dim - 1


@converter("nn.Concat")
def concat(ctx, module, x):
    outs = [ctx.convert(child, x) for child in module.children()]
    return ctx.op("Concat", outs, hint="concat", axis=module.int("dimension") - 1)


@converter("nn.DepthConcat")
def depth_concat(ctx, module, x):
    """Concat whose smaller branches are zero-padded, centred, to the largest size."""
    axis = module.int("dimension") - 1
    outs = [ctx.convert(child, x) for child in module.children()]
    shapes = [ctx.shape(o) for o in outs]
    target = [max(s[d] for s in shapes) for d in range(len(shapes[0]))]
    padded = []
    for out, shape in zip(outs, shapes, strict=True):
        pads_begin = [0] * len(shape)
        pads_end = [0] * len(shape)
        for d, (have, want) in enumerate(zip(shape, target, strict=True)):
            if d != axis and have != want:
                pads_begin[d] = (want - have) // 2  # nn: floor((want - have) / 2)
                pads_end[d] = want - have - pads_begin[d]
        if any(pads_begin) or any(pads_end):
            out = ctx.op("Pad", [out, ctx.int64s(pads_begin + pads_end, "pads")], hint="pad")
        padded.append(out)
    return ctx.op("Concat", padded, hint="concat", axis=axis)


@converter("nn.ConcatTable")
def concat_table(ctx, module, x):
    return [ctx.convert(child, x) for child in module.children()]


@converter("nn.ParallelTable")
def parallel_table(ctx, module, x):
    items = _table(x, "ParallelTable")
    children = module.children()
    if len(items) < len(children):
        raise ConversionError(f"{len(children)} branches but a table of {len(items)}")
    return [ctx.convert(child, item) for child, item in zip(children, items, strict=False)]


@converter("nn.JoinTable")
def join_table(ctx, module, x):
    items = _tensors(x, "JoinTable")
    axis = _positive_dim(ctx, module, len(ctx.shape(items[0])))
    return ctx.op("Concat", items, hint="join", axis=axis)


@converter("nn.SplitTable")
def split_table(ctx, module, x):
    axis = _positive_dim(ctx, module, len(ctx.shape(x)))
    n = ctx.shape(x)[axis]
    axes = ctx.int64s([axis], "axes")
    if n == 1:
        return [ctx.op("Squeeze", [x, axes], hint="split")]
    split = ctx.builder.op("Split", [x, ctx.int64s([1] * n, "split")], {"axis": axis},
                           num_outputs=n, hint="split")
    return [ctx.op("Squeeze", [part, axes], hint="select") for part in split.producer().outputs]


def _fold(ctx, op, items, hint):
    result = items[0]
    for item in items[1:]:
        result = ctx.op(op, [result, item], hint=hint)
    return result


@converter("nn.CAddTable")
def cadd_table(ctx, module, x):
    items = _tensors(x, "CAddTable")
    return ctx.op("Sum", items, hint="sum") if len(items) > 2 else _fold(ctx, "Add", items, "add")


@converter("nn.CSubTable")
def csub_table(ctx, module, x):
    a, b = _tensors(x, "CSubTable")[:2]
    return ctx.op("Sub", [a, b], hint="sub")


@converter("nn.CMulTable")
def cmul_table(ctx, module, x):
    return _fold(ctx, "Mul", _tensors(x, "CMulTable"), "mul")


@converter("nn.CDivTable")
def cdiv_table(ctx, module, x):
    a, b = _tensors(x, "CDivTable")[:2]
    return ctx.op("Div", [a, b], hint="div")


@converter("nn.CMaxTable")
def cmax_table(ctx, module, x):
    return ctx.op("Max", _tensors(x, "CMaxTable"), hint="max")


@converter("nn.CMinTable")
def cmin_table(ctx, module, x):
    return ctx.op("Min", _tensors(x, "CMinTable"), hint="min")


@converter("nn.SelectTable")
def select_table(ctx, module, x):
    items = _table(x, "SelectTable")
    index = module.int("index")
    index = len(items) + index + 1 if index < 0 else index
    if not 1 <= index <= len(items):
        raise ConversionError(f"index {index} is outside a table of {len(items)}")
    return items[index - 1]


@converter("nn.NarrowTable")
def narrow_table(ctx, module, x):
    items = _table(x, "NarrowTable")
    offset, length = module.int("offset"), module.int("length", 1)
    if offset < 1 or offset - 1 + length > len(items):
        raise ConversionError(f"narrow({offset}, {length}) is outside a table of {len(items)}")
    return items[offset - 1: offset - 1 + length]


@converter("nn.FlattenTable")
def flatten_table(ctx, module, x):
    def flat(item):
        if isinstance(item, ir.Value):
            return [item]
        return [v for sub in item for v in flat(sub)]

    return flat(x)
