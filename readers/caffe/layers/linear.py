"""InnerProduct and Embed."""

from __future__ import annotations

import math

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.caffe.context import canonical_axis
from migrate.readers.caffe.registry import caffe_layer


@caffe_layer("InnerProduct")
def inner_product(ctx, layer, bottoms):
    """Everything from `axis` on is one vector of K values: y = W x + b, with W stored
    N x K (K x N when `transpose`); the axes before `axis` are kept."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    shape = ctx.shape(x)
    param = layer.inner_product_param
    axis = canonical_axis(param.axis, len(shape))
    k = math.prod(shape[axis:])
    n = int(param.num_output)
    if n < 1:
        raise ConversionError("num_output must be at least 1")
    shapes = [[k, n] if param.transpose else [n, k]] + ([[n]] if param.bias_term else [])
    blobs = ctx.blobs(*shapes)
    flat = x if len(shape) == 2 and axis == 1 else ctx.op("Flatten", [x], axis=axis)
    inputs = [flat, ctx.const(blobs[0], "weight")]
    if param.bias_term:
        inputs.append(ctx.const(blobs[1], "bias"))
    y = ctx.op("Gemm", inputs, transB=0 if param.transpose else 1)
    return ctx.reshape(y, [*shape[:axis], n])


@caffe_layer("Embed")
def embed(ctx, layer, bottoms):
    """Row lookup: each input value (an index stored as a float) picks a row of the
    input_dim x num_output table; the output adds a last axis of num_output."""
    ctx.needs_bottoms(bottoms, 1)
    x = bottoms[0]
    param = layer.embed_param
    n, vocabulary = int(param.num_output), int(param.input_dim)
    if n < 1 or vocabulary < 1:
        raise ConversionError("num_output and input_dim must be at least 1")
    blobs = ctx.blobs([vocabulary, n], *([[n]] if param.bias_term else []))
    indices = ctx.op("Cast", [x], to=7)  # INT64; Caffe truncates the float index too
    y = ctx.op("Gather", [ctx.const(np.ascontiguousarray(blobs[0]), "weight"), indices], axis=0)
    if param.bias_term:
        y = ctx.op("Add", [y, ctx.const(blobs[1], "bias")])
    return y
