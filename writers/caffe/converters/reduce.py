"""Reductions.

Caffe's Reduction layer (SUM, ASUM, SUMSQ, MEAN) reduces every axis from `axis` to the
end; a reduction over the trailing axes is one such layer (and a Reshape for keepdims).
Over any other single axis, the axis is sliced into its elements and combined with an
Eltwise (SUM, SUM with coefficients 1/n for the mean, MAX; the minimum as -max(-x)).
"""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import power, reshape, split_axis
from migrate.writers.caffe.registry import op_converter

_TAIL = {"ReduceSum": "SUM", "ReduceMean": "MEAN", "ReduceSumSquare": "SUMSQ",
         "ReduceL1": "ASUM", "ReduceL2": "SUMSQ"}


def _axes(net, node, rank):
    axes = None
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = net.const(node.inputs[1]).reshape(-1).tolist()
    elif "axes" in node.attributes:
        axes = list(node.attributes.get_ints("axes"))
    if not axes:
        if node.attributes.get_int("noop_with_empty_axes", 0):
            return []
        axes = list(range(rank))
    return sorted({a + rank if a < 0 else a for a in axes})


def _over_axis(net, blob, axis, op):
    """Reduce one axis, keeping it (size 1), with Slice + Eltwise."""
    size = net.shape(blob)[axis]
    if size == 1:
        return blob
    pieces = split_axis(net, blob, axis, list(range(1, size)), kind="reduce_slice")
    shape = net.shape(pieces[0])
    if op == "MIN":
        negated = [power(net, p, scale=-1.0, kind="neg") for p in pieces]
        top = net.layer("Eltwise", negated, shape, kind="reduce",
                        eltwise_param={"operation": "MAX"})
        return power(net, top, scale=-1.0, kind="reduce")
    params = {"operation": "MAX" if op == "MAX" else "SUM"}
    if op == "MEAN":
        params["coeff"] = [1.0 / size] * size
    if op == "SUMSQ":
        pieces = [net.layer("Eltwise", [p, p], shape, kind="square",
                            eltwise_param={"operation": "PROD"}) for p in pieces]
    return net.layer("Eltwise", pieces, shape, kind="reduce", eltwise_param=params)


def _reduce(net, node):
    x = node.inputs[0]
    blob = net.blob(x)
    shape = net.shape(blob)
    rank = len(shape)
    axes = _axes(net, node, rank)
    out_shape = net.value_shape(node.outputs[0])
    op = node.op_type
    if not axes:
        net.bind(node.outputs[0], blob)
        return
    tail = axes == list(range(axes[0], rank))
    if tail and op in _TAIL:
        top = net.layer("Reduction", [blob], shape[:axes[0]], kind="reduce",
                        reduction_param={"operation": _TAIL[op], "axis": axes[0]})
        if op == "ReduceL2":
            top = power(net, top, power=0.5, kind="sqrt")
    else:
        method = {"ReduceSum": "SUM", "ReduceMean": "MEAN", "ReduceMax": "MAX",
                  "ReduceMin": "MIN", "ReduceSumSquare": "SUMSQ"}.get(op)
        if method is None:
            raise ConversionError(f"{op} over axes {axes} has no Caffe form")
        top = blob
        for axis in axes:
            top = _over_axis(net, top, axis, method if axis == axes[0] or method in (
                "MAX", "MIN") else ("SUM" if method == "SUMSQ" else method))
    net.bind(node.outputs[0], reshape(net, top, out_shape, kind="reduce_shape"))


op_converter("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare",
             "ReduceL1", "ReduceL2")(_reduce)
