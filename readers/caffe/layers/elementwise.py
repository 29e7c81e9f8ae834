"""Eltwise: PROD, SUM (with a coefficient per bottom) and MAX of equally shaped blobs."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.core.formats import caffe_pb2
from migrate.readers.caffe.registry import caffe_layer

PROD, SUM, MAX = (caffe_pb2.EltwiseParameter.PROD, caffe_pb2.EltwiseParameter.SUM,
                  caffe_pb2.EltwiseParameter.MAX)


@caffe_layer("Eltwise")
def eltwise(ctx, layer, bottoms):
    if len(bottoms) < 2:
        raise ConversionError("takes at least 2 bottoms")
    shapes = {ctx.shape(b) for b in bottoms}
    if len(shapes) > 1:
        raise ConversionError(f"bottoms of different shapes {sorted(shapes)} (Caffe adds "
                              "equal shapes only)")
    param = layer.eltwise_param
    coeffs = list(param.coeff)
    if coeffs and param.operation != SUM:
        raise ConversionError("coefficients are for the SUM operation only")
    if coeffs and len(coeffs) != len(bottoms):
        raise ConversionError(f"{len(coeffs)} coefficients for {len(bottoms)} bottoms")
    if param.operation == PROD:
        y = bottoms[0]
        for b in bottoms[1:]:
            y = ctx.op("Mul", [y, b])
        return y
    if param.operation == MAX:
        return ctx.op("Max", list(bottoms))
    if param.operation != SUM:
        raise ConversionError(f"unknown operation {param.operation}")
    terms = []
    for k, b in enumerate(bottoms):
        c = coeffs[k] if coeffs else 1.0
        if c == 1:
            terms.append(b)
        elif c == -1:
            terms.append(ctx.op("Neg", [b]))
        else:
            terms.append(ctx.op("Mul", [b, ctx.scalar(c)]))
    if len(terms) == 2:
        return ctx.op("Add", terms)
    return ctx.op("Sum", terms)
