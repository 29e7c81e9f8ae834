"""Element-wise arithmetic, comparisons and selection.

- two tensors of one shape: Eltwise (SUM with coefficients for Sub and Mean, PROD, MAX);
- a tensor and a smaller one: Scale / Bias in their two-bottom form;
- a tensor and a constant: Power (one value: scale, shift, power) or Scale / Bias with
  the constant as the layer's parameter;
- comparisons become 0/1 masks (Threshold is `x > t ? 1 : 0`), and Where(mask, a, b)
  is a * mask + b * (1 - mask), which is a or b exactly (for finite values).
"""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import (
    expand,
    operand_block,
    power,
    scale_or_bias_by_blob,
    scale_or_bias_by_constant,
)
from migrate.writers.caffe.registry import op_converter

FLT_MAX = float(np.finfo(np.float32).max)


def _scalar(array: np.ndarray | None) -> float | None:
    return float(array.reshape(-1)[0]) if array is not None and array.size == 1 else None


def _full(net, value, out_shape):
    """The blob of an operand, broadcast to the result's shape (Tile) when smaller."""
    blob = net.blob(value)
    if net.shape(blob) != tuple(out_shape):
        blob = expand(net, blob, out_shape, kind="expand")
    return blob


def _with_constant(net, node, x, constant, op, constant_first):
    """x (op) constant, or constant (op) x."""
    out_shape = net.value_shape(node.outputs[0])
    blob = _full(net, x, out_shape)
    if constant.size > 1 and operand_block(out_shape, constant.shape)[2] \
            and constant.size * 16 < np.prod(out_shape):
        # a constant broadcast within its block: repeat it in the net, not in the file
        param = net.parameter(np.ascontiguousarray(constant, np.float32), "const")
        constant_blob = expand(net, param, out_shape, kind="expand")
        _eltwise_pair(net, blob, constant_blob, op, constant_first)
        return
    k = _scalar(constant)
    if k is not None:
        if op == "add":
            params = {"shift": k}
        elif op == "sub":
            params = {"scale": -1.0, "shift": k} if constant_first else {"shift": -k}
        elif op == "mul":
            params = {"scale": k}
        elif constant_first:  # k / x = (x / k) ^ -1
            params = {"power": -1.0, "scale": 1.0 / k}
        else:
            params = {"scale": 1.0 / k}
        net.bind(node.outputs[0], power(net, blob, kind=None, **params))
        return
    constant = np.asarray(constant, np.float32)
    if op in ("add", "sub"):
        if op == "sub":
            if constant_first:
                blob = power(net, blob, scale=-1.0, kind="neg")
            else:
                constant = -constant
        top = scale_or_bias_by_constant(net, blob, constant, "Bias", "bias")
    else:
        if op == "div":
            if constant_first:
                blob = power(net, blob, power=-1.0, kind="reciprocal")
            else:
                constant = np.float32(1.0) / constant
        top = scale_or_bias_by_constant(net, blob, constant, "Scale", "scale")
    net.bind(node.outputs[0], top)


def _two_blobs(net, node, a, b, op):
    out_shape = net.value_shape(node.outputs[0])
    blob_a, blob_b = net.blob(a), net.blob(b)
    shape_a, shape_b = net.shape(blob_a), net.shape(blob_b)
    if shape_a == shape_b == tuple(out_shape):
        if op == "add":
            net.output("Eltwise", [blob_a, blob_b], eltwise_param={"operation": "SUM"})
        elif op == "sub":
            net.output("Eltwise", [blob_a, blob_b],
                       eltwise_param={"operation": "SUM", "coeff": [1.0, -1.0]})
        elif op == "mul":
            net.output("Eltwise", [blob_a, blob_b], eltwise_param={"operation": "PROD"})
        else:
            inverse = power(net, blob_b, power=-1.0, kind="reciprocal")
            net.output("Eltwise", [blob_a, inverse], eltwise_param={"operation": "PROD"})
        return
    a_big = shape_a == tuple(out_shape)
    small_shape = shape_b if a_big else shape_a
    if not (a_big or shape_b == tuple(out_shape)) or operand_block(out_shape, small_shape)[2]:
        # not a block of the result's axes (or both operands grow): repeat them to full size
        _two_blobs_expanded(net, node, a, b, op, out_shape)
        return
    if op == "sub":
        blob_b = power(net, blob_b, scale=-1.0, kind="neg")
    elif op == "div":
        blob_b = power(net, blob_b, power=-1.0, kind="reciprocal")
    big, small = (blob_a, blob_b) if a_big else (blob_b, blob_a)
    layer = "Bias" if op in ("add", "sub") else "Scale"
    net.bind(node.outputs[0], scale_or_bias_by_blob(net, big, small, layer, layer.lower()))


def _two_blobs_expanded(net, node, a, b, op, out_shape):
    _eltwise_pair(net, _full(net, a, out_shape), _full(net, b, out_shape), op, False)


def _eltwise_pair(net, blob_a, blob_b, op, swapped):
    """Eltwise of two full-size blobs: a (op) b, or b (op) a when swapped."""
    if swapped:
        blob_a, blob_b = blob_b, blob_a
    if op == "div":
        blob_b = power(net, blob_b, power=-1.0, kind="reciprocal")
    params = {"operation": "PROD"} if op in ("mul", "div") else {"operation": "SUM"}
    if op == "sub":
        params["coeff"] = [1.0, -1.0]
    net.output("Eltwise", [blob_a, blob_b], eltwise_param=params)


def _arithmetic(op):
    def convert(net, node):
        a, b = node.inputs
        ca, cb = net.const_or_none(a), net.const_or_none(b)
        if cb is not None and ca is None:
            _with_constant(net, node, a, cb, op, constant_first=False)
        elif ca is not None and cb is None:
            _with_constant(net, node, b, ca, op, constant_first=True)
        else:
            _two_blobs(net, node, a, b, op)

    return convert


for _op in ("Add", "Sub", "Mul", "Div"):
    op_converter(_op)(_arithmetic(_op.lower()))


def _same_shape_blobs(net, node):
    out_shape = net.value_shape(node.outputs[0])
    return [_full(net, v, out_shape) for v in node.inputs]


@op_converter("Sum")
def sum_(net, node):
    blobs = _same_shape_blobs(net, node)
    if len(blobs) == 1:
        net.bind(node.outputs[0], blobs[0])
        return
    net.output("Eltwise", blobs, eltwise_param={"operation": "SUM"})


@op_converter("Mean")
def mean(net, node):
    blobs = _same_shape_blobs(net, node)
    net.output("Eltwise", blobs, eltwise_param={
        "operation": "SUM", "coeff": [1.0 / len(blobs)] * len(blobs)})


def _extreme(largest: bool):
    def convert(net, node):
        out_shape = net.value_shape(node.outputs[0])
        constants = [net.const_or_none(v) for v in node.inputs]
        computed = [v for v, c in zip(node.inputs, constants, strict=True) if c is None]
        bounds = [_scalar(c) for c in constants if c is not None]
        if None in bounds or len(computed) != len(node.inputs) - len(bounds):
            raise ConversionError("Max/Min with a constant tensor has no Caffe layer")
        blobs = [_full(net, v, out_shape) for v in computed]
        if len(blobs) > 1:
            if largest:
                top = net.layer("Eltwise", blobs, out_shape, kind="max" if bounds else None,
                                eltwise_param={"operation": "MAX"})
            else:  # min(a, b) = -max(-a, -b), exactly
                negated = [power(net, b, scale=-1.0, kind="neg") for b in blobs]
                top = net.layer("Eltwise", negated, out_shape, kind="max",
                                eltwise_param={"operation": "MAX"})
                top = power(net, top, scale=-1.0, kind=None if not bounds else "min")
        else:
            top = blobs[0]
        if bounds:
            bound = max(bounds) if largest else min(bounds)
            top = net.layer("Clip", [top], out_shape, clip_param={
                "min": bound if largest else -FLT_MAX, "max": FLT_MAX if largest else bound})
        net.bind(node.outputs[0], top)

    return convert


op_converter("Max")(_extreme(True))
op_converter("Min")(_extreme(False))


@op_converter("Pow")
def pow_(net, node):
    x, exponent = node.inputs
    k = _scalar(net.const_or_none(exponent))
    if k is None:
        raise ConversionError("Pow with a computed or per-element exponent has no Caffe layer")
    out_shape = net.value_shape(node.outputs[0])
    net.bind(node.outputs[0], power(net, _full(net, x, out_shape), power=k, kind=None))


# -- comparisons and selection ---------------------------------------------------------------

def _above(net, node, x, y, kind=None):
    """A 0/1 mask of x > y (Threshold is strict, like the comparison)."""
    out_shape = net.value_shape(node.outputs[0])
    cy = _scalar(net.const_or_none(y))
    if cy is not None:
        top = net.layer("Threshold", [_full(net, x, out_shape)], out_shape, kind=kind,
                        threshold_param={"threshold": cy})
    else:
        cx = _scalar(net.const_or_none(x))
        if cx is not None:  # c > y  <=>  -y > -c
            negated = power(net, _full(net, y, out_shape), scale=-1.0, kind="neg")
            top = net.layer("Threshold", [negated], out_shape, kind=kind,
                            threshold_param={"threshold": -cx})
        else:  # x - y > 0 exactly when x > y (float subtraction keeps the sign)
            diff = net.layer("Eltwise", [_full(net, x, out_shape), _full(net, y, out_shape)],
                             out_shape, kind="diff",
                             eltwise_param={"operation": "SUM", "coeff": [1.0, -1.0]})
            top = net.layer("Threshold", [diff], out_shape, kind=kind,
                            threshold_param={"threshold": 0.0})
    net.masks.add(top)
    return top


def _mask_not(net, mask, kind=None):
    top = power(net, mask, scale=-1.0, shift=1.0, kind=kind or "not")
    net.masks.add(top)
    return top


@op_converter("Greater")
def greater(net, node):
    net.bind(node.outputs[0], _above(net, node, *node.inputs))


@op_converter("Less")
def less(net, node):
    a, b = node.inputs
    net.bind(node.outputs[0], _above(net, node, b, a))


@op_converter("GreaterOrEqual")
def greater_or_equal(net, node):
    a, b = node.inputs
    net.bind(node.outputs[0], _mask_not(net, _above(net, node, b, a, kind="less"), kind=None))


@op_converter("LessOrEqual")
def less_or_equal(net, node):
    a, b = node.inputs
    net.bind(node.outputs[0], _mask_not(net, _above(net, node, a, b, kind="greater"),
                                        kind=None))


def _mask(net, value):
    blob = net.blob(value)
    if blob not in net.masks:
        raise ConversionError("a boolean condition that is not a comparison converted by this "
                              "writer has no Caffe form")
    return blob


@op_converter("Not")
def not_(net, node):
    net.bind(node.outputs[0], _mask_not(net, _mask(net, node.inputs[0]), kind=None))


def _logical(operation):
    def convert(net, node):
        masks = [_mask(net, v) for v in node.inputs]
        top = net.output("Eltwise", masks, eltwise_param={"operation": operation})
        net.masks.add(top)

    return convert


op_converter("And")(_logical("PROD"))
op_converter("Or")(_logical("MAX"))


@op_converter("Where")
def where(net, node):
    cond, a, b = node.inputs
    out_shape = net.value_shape(node.outputs[0])
    mask = _mask(net, cond)
    if net.shape(mask) != tuple(out_shape):
        raise ConversionError("Where with a broadcast condition has no Caffe form here")
    terms = []
    for value, chosen_when_set in ((a, True), (b, False)):
        k = _scalar(net.const_or_none(value))
        if k is not None:  # k * mask, or k * (1 - mask)
            terms.append(power(net, mask, scale=k if chosen_when_set else -k,
                               shift=0.0 if chosen_when_set else k, kind="select"))
            continue
        gate = mask if chosen_when_set else _mask_not(net, mask)
        terms.append(net.layer("Eltwise", [_full(net, value, out_shape), gate], out_shape,
                               kind="select", eltwise_param={"operation": "PROD"}))
    net.output("Eltwise", terms, eltwise_param={"operation": "SUM"})
