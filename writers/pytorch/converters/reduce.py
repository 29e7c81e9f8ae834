"""Reductions over axes (`x.sum((2, 3), keepdim=True)`, torch.amax, torch.logsumexp, ...)
and torch.argmax/argmin."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, tuple_literal
from migrate.writers.pytorch.registry import op_converter

_REDUCE = {
    "ReduceSum": "{x}.sum({dims}{keep})", "ReduceMean": "{x}.mean({dims}{keep})",
    "ReduceMax": "torch.amax({x}, {dims}{keep})", "ReduceMin": "torch.amin({x}, {dims}{keep})",
    "ReduceLogSumExp": "torch.logsumexp({x}, {dims}{keep})",
    "ReduceL1": "torch.linalg.vector_norm({x}, 1, {dims}{keep})",
    "ReduceL2": "torch.linalg.vector_norm({x}, 2, {dims}{keep})",
    "ReduceSumSquare": "({x} * {x}).sum({dims}{keep})",
    "ReduceLogSum": "torch.log({x}.sum({dims}{keep}))",
}


def _reduced_axes(g: CodeGen, node, rank: int) -> list[int]:
    values = None
    if len(node.inputs) > 1 and node.inputs[1] is not None:  # ReduceSum (13+): an input
        values = g.need_const(node.inputs[1], "axes").reshape(-1).tolist()
    elif node.attributes.get("axes") is not None:
        values = list(node.attributes.get_ints("axes"))
    if not values:
        if node.attributes.get_int("noop_with_empty_axes", 0):
            return []
        return list(range(rank))
    return sorted(int(a) + rank if a < 0 else int(a) for a in values)


@op_converter(*_REDUCE, "ReduceProd")
def reduce(g: CodeGen, node) -> None:
    x = node.inputs[0]
    rank = len(g.shape(x))
    axes = _reduced_axes(g, node, rank)
    if not axes:
        g.alias(node.outputs[0], x)
        return
    keepdims = bool(node.attributes.get_int("keepdims", 1))
    keep = ", keepdim=True" if keepdims else ""
    ref = g.ref(x)
    batched = g.batched(x) and 0 not in axes
    if node.op_type == "ReduceProd":  # torch.prod takes one dim at a time
        expr = ref
        for axis in sorted(axes, reverse=True):
            expr = f"torch.prod({expr}, {axis}{keep})"
        g.emit(expr, batched=batched, comment=True)
        return
    dims = str(axes[0]) if len(axes) == 1 else tuple_literal(axes)
    g.emit(_REDUCE[node.op_type].format(x=ref, dims=dims, keep=keep), batched=batched,
           comment=True)


@op_converter("ArgMax", "ArgMin")
def arg_reduce(g: CodeGen, node) -> None:
    if node.attributes.get_int("select_last_index", 0):
        raise ConversionError(f"{node.op_type} with select_last_index=1 has no PyTorch "
                              "equivalent (torch returns the first index)")
    x = node.inputs[0]
    rank = len(g.shape(x))
    axis = node.attributes.get_int("axis", 0)
    axis = axis + rank if axis < 0 else axis
    keep = ", keepdim=True" if node.attributes.get_int("keepdims", 1) else ""
    function = "torch.argmax" if node.op_type == "ArgMax" else "torch.argmin"
    g.emit(f"{function}({g.ref(x)}, {axis}{keep})", batched=g.batched(x) and axis != 0,
           comment=True)
