"""Containers and modules that take or make Lua tables of tensors.

A Lua table travels through the converters as a Python list of graph values
(nested lists for nested tables); see `readers/torch7/values.py`.
"""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import (
    as_table,
    as_tensor,
    as_tensors,
    describe,
    flatten,
    is_tensor,
)


def _positive_dim(ctx, module, rank, field="dimension"):
    dim = module.int(field)
    n_input_dims = module.get("nInputDims")
    if dim < 0:
        dim = rank + dim + 1
    elif n_input_dims is not None and rank == int(n_input_dims) + 1:
        dim += 1
    return dim - 1


def _branch_outputs(ctx, module, x, what):
    outs = []
    for k, child in enumerate(module.children(), start=1):
        out = ctx.convert(child, x)
        if not is_tensor(out):
            raise ConversionError(f"{what} joins tensors, but branch {k} outputs {describe(out)}")
        outs.append(out)
    if not outs:
        raise ConversionError(f"{what} has no branches")
    return outs


@converter("nn.Concat")
def concat(ctx, module, x):
    outs = _branch_outputs(ctx, module, x, "Concat")
    return ctx.op("Concat", outs, hint="concat", axis=module.int("dimension") - 1)


@converter("nn.DepthConcat")
def depth_concat(ctx, module, x):
    """Concat whose smaller branches are zero-padded, centred, to the largest size."""
    axis = module.int("dimension") - 1
    outs = _branch_outputs(ctx, module, x, "DepthConcat")
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
    children = module.children()
    items = as_table(x, "ParallelTable", at_least=len(children))
    return [ctx.convert(child, item) for child, item in zip(children, items, strict=False)]


@converter("nn.MapTable")
def map_table(ctx, module, x):
    """One module applied to every entry. After a forward `modules` holds one clone per
    entry (sharing the parameters unless built with shared=false); entries beyond them
    use the module itself, as MapTable:_extend would clone it."""
    items = as_table(x, "MapTable")
    children = module.children()
    if not children:
        raise ConversionError("MapTable has no module")
    return [ctx.convert(children[i] if i < len(children) else children[0], item)
            for i, item in enumerate(items)]


@converter("nn.JoinTable")
def join_table(ctx, module, x):
    items = as_tensors(x, "JoinTable", at_least=1)
    axis = _positive_dim(ctx, module, len(ctx.shape(items[0])))
    return ctx.op("Concat", items, hint="join", axis=axis)


@converter("nn.SplitTable")
def split_table(ctx, module, x):
    x = as_tensor(x, "SplitTable")
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
    items = as_tensors(x, "CAddTable", at_least=1)
    return ctx.op("Sum", items, hint="sum") if len(items) > 2 else _fold(ctx, "Add", items, "add")


@converter("nn.CSubTable")
def csub_table(ctx, module, x):
    a, b = as_tensors(x, "CSubTable", at_least=2)[:2]
    return ctx.op("Sub", [a, b], hint="sub")


@converter("nn.CMulTable")
def cmul_table(ctx, module, x):
    return _fold(ctx, "Mul", as_tensors(x, "CMulTable", at_least=1), "mul")


@converter("nn.CDivTable")
def cdiv_table(ctx, module, x):
    a, b = as_tensors(x, "CDivTable", at_least=2)[:2]
    return ctx.op("Div", [a, b], hint="div")


@converter("nn.CMaxTable")
def cmax_table(ctx, module, x):
    return ctx.op("Max", as_tensors(x, "CMaxTable", at_least=1), hint="max")


@converter("nn.CMinTable")
def cmin_table(ctx, module, x):
    return ctx.op("Min", as_tensors(x, "CMinTable", at_least=1), hint="min")


@converter("nn.SelectTable")
def select_table(ctx, module, x):
    items = as_table(x, "SelectTable")
    index = module.int("index")
    index = len(items) + index + 1 if index < 0 else index
    if not 1 <= index <= len(items):
        raise ConversionError(f"index {index} is outside {describe(items)}")
    return items[index - 1]


@converter("nn.NarrowTable")
def narrow_table(ctx, module, x):
    items = as_table(x, "NarrowTable")
    offset, length = module.int("offset"), module.int("length", 1)
    if offset < 1 or length < 1 or offset - 1 + length > len(items):
        raise ConversionError(f"narrow({offset}, {length}) is outside {describe(items)}")
    return items[offset - 1: offset - 1 + length]


@converter("nn.FlattenTable")
def flatten_table(ctx, module, x):
    return flatten(as_table(x, "FlattenTable"))


@converter("nn.ZipTable")
def zip_table(ctx, module, x):
    """{{a1, a2}, {b1, b2}} -> {{a1, b1}, {a2, b2}}."""
    tables = [as_table(t, f"ZipTable entry {i}") for i, t in
              enumerate(as_table(x, "ZipTable"), 1)]
    if not tables:
        return []
    if len({len(t) for t in tables}) != 1:
        raise ConversionError(f"ZipTable takes tables of one length, got {describe(x)}")
    return [[t[j] for t in tables] for j in range(len(tables[0]))]


@converter("nn.ZipTableOneToMany")
def zip_table_one_to_many(ctx, module, x):
    """{v, {a, b, c}} -> {{v, a}, {v, b}, {v, c}}."""
    element, table = as_table(x, "ZipTableOneToMany", size=2)
    return [[element, item] for item in as_table(table, "ZipTableOneToMany's second entry")]


@converter("nn.CAddTensorTable")
def cadd_tensor_table(ctx, module, x):
    """{e, {a, b}} -> {a + e, b + e} (each sum takes e's shape, as resizeAs/copy do)."""
    element, table = as_table(x, "CAddTensorTable", size=2)
    element = as_tensor(element, "CAddTensorTable's first entry")
    shape = list(ctx.shape(element))
    outs = []
    for item in as_tensors(table, "CAddTensorTable's second entry"):
        if list(ctx.shape(item)) != shape:
            item = ctx.op("Reshape", [item, ctx.int64s(shape)], hint="reshape")
        outs.append(ctx.op("Add", [item, element], hint="add"))
    return outs


@converter("nn.MixtureTable")
def mixture_table(ctx, module, x):
    """Mixture of experts: {gater, experts} -> sum_i gater[:, i] * expert_i.

    The gater is viewed with its expert count at `dim` (2 for a batch, 1 for one
    sample, unless the module says) and broadcast over each expert, as the module's
    `_gaterView:select(dim, i):expandAs(expert)` does; the experts are a table of
    tensors or one tensor holding them along `dim`."""
    gater, experts = as_table(x, "MixtureTable", size=2)
    gater = as_tensor(gater, "MixtureTable's gater")
    gater_shape = ctx.shape(gater)
    batched = len(gater_shape) >= 2
    n = gater_shape[1] if batched else gater_shape[0]
    dim = module.int("dim", 2 if batched else 1) - 1
    if is_tensor(experts):
        rank = len(ctx.shape(experts))
        view = _gater_view(ctx, gater, rank, dim, n, batched)
        weighted = ctx.op("Mul", [experts, view], hint="weigh")
        return ctx.op("ReduceSum", [weighted, ctx.int64s([dim], "axes")], hint="mix", keepdims=0)
    experts = as_tensors(experts, "MixtureTable's experts")
    if len(experts) != n:
        raise ConversionError(f"MixtureTable: {n} gater outputs for {len(experts)} experts")
    rank = len(ctx.shape(experts[0]))
    view = _gater_view(ctx, gater, rank + 1, dim, n, batched)
    axes = ctx.int64s([dim], "axes")
    terms = []
    for i, expert in enumerate(experts):
        gate = ctx.op("Slice", [view, ctx.int64s([i], "starts"), ctx.int64s([i + 1], "ends"),
                                axes], hint="gate")
        gate = ctx.op("Squeeze", [gate, axes], hint="gate")
        terms.append(ctx.op("Mul", [expert, gate], hint="weigh"))
    return ctx.op("Sum", terms, hint="mix") if len(terms) > 1 else terms[0]


def _gater_view(ctx, gater, rank, dim, n, batched):
    if not 0 <= dim < rank:
        raise ConversionError(f"MixtureTable dim {dim + 1} is outside a {rank}-D view")
    size = [1] * rank
    if batched:
        size[0] = ctx.shape(gater)[0]
    size[dim] = n
    return ctx.op("Reshape", [gater, ctx.int64s(size)], hint="gater")
