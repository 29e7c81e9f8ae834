"""BatchNormalization -> BatchNorm (+ Scale), LRN -> LRN.

Caffe's BatchNorm keeps three blobs: the running mean and variance, each multiplied by
a scale factor, and that factor (its third blob); it divides the first two by it. The
writer stores the statistics as they are with a factor of exactly 1. The affine part
(gamma, beta) is a Scale layer with a bias, left out when it is the identity.
"""

from __future__ import annotations

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe.constructs import power
from migrate.writers.caffe.registry import op_converter


@op_converter("BatchNormalization")
def batch_norm(net, node):
    if node.attributes.get_int("training_mode", 0):
        raise ConversionError("BatchNormalization in training mode (batch statistics)")
    if len(node.outputs) > 1 and any(v.uses() or v.is_graph_output() for v in node.outputs[1:]):
        raise ConversionError("BatchNormalization's running-statistics outputs are used")
    x, scale, bias, mean, var = node.inputs[:5]
    gamma, beta = net.const(scale).reshape(-1), net.const(bias).reshape(-1)
    mean_, var_ = net.const(mean).reshape(-1), net.const(var).reshape(-1)
    shape = net.value_shape(node.outputs[0])
    if len(shape) < 2 or mean_.size != shape[1]:
        raise ConversionError(f"BatchNormalization over {list(shape)} with {mean_.size} "
                              "channels")
    affine = not (np.all(gamma == 1) and np.all(beta == 0))
    eps = node.attributes.get_float("epsilon", 1e-5)
    top = net.layer("BatchNorm", [net.blob(x)], shape, kind="bn" if affine else None,
                    blobs=[mean_, var_, np.ones(1, np.float32)],
                    batch_norm_param={"use_global_stats": True, "eps": eps})
    if affine:
        has_bias = bool(np.any(beta != 0))
        top = net.layer("Scale", [top], shape, kind="scale",
                        blobs=[gamma] + ([beta] if has_bias else []),
                        scale_param={"bias_term": has_bias})
    net.bind(node.outputs[0], top)


@op_converter("LRN")
def lrn(net, node):
    size = node.attributes.get_int("size")
    if size % 2 == 0:
        raise ConversionError(f"LRN over an even window ({size}): Caffe's LRN needs an odd "
                              "local_size")
    if len(net.value_shape(node.outputs[0])) != 4:
        raise ConversionError("Caffe's LRN takes 4-D (NCHW) input only")
    net.output("LRN", [net.blob(node.inputs[0])], lrn_param={
        "local_size": size, "alpha": node.attributes.get_float("alpha", 1e-4),
        "beta": node.attributes.get_float("beta", 0.75),
        "k": node.attributes.get_float("bias", 1.0), "norm_region": "ACROSS_CHANNELS"})


def _affine(net, top, shape, gamma, beta, kind_last):
    """The per-channel affine part (a Scale with bias), left out when it is the identity."""
    if np.all(gamma == 1) and np.all(beta == 0):
        return top
    has_bias = bool(np.any(beta != 0))
    return net.layer("Scale", [top], shape, kind=kind_last,
                     blobs=[gamma] + ([beta] if has_bias else []),
                     scale_param={"bias_term": has_bias})


@op_converter("InstanceNormalization")
def instance_norm(net, node):
    """Per sample and channel: Reduction MEAN over the spatial axes (axis 2 on), subtract
    (Bias with the negated mean), Reduction SUMSQ / n, (v + eps) ^ -0.5 (Power), Scale."""
    x, scale, bias = node.inputs
    gamma, beta = net.const(scale).reshape(-1), net.const(bias).reshape(-1)
    eps = node.attributes.get_float("epsilon", 1e-5)
    blob = net.blob(x)
    shape = net.shape(blob)
    if len(shape) < 3:
        raise ConversionError("InstanceNormalization over fewer than 3 axes")
    count = int(np.prod(shape[2:]))
    stats = tuple(shape[:2])
    mean = net.layer("Reduction", [blob], stats, kind="mean",
                     reduction_param={"operation": "MEAN", "axis": 2})
    negated = power(net, mean, scale=-1.0, kind="neg_mean")
    centred = net.layer("Bias", [blob, negated], shape, kind="centred", bias_param={"axis": 0})
    variance = net.layer("Reduction", [centred], stats, kind="variance",
                         reduction_param={"operation": "SUMSQ", "axis": 2,
                                          "coeff": 1.0 / count})
    inverse = power(net, variance, power=-0.5, shift=eps, kind="inv_std")
    top = net.layer("Scale", [centred, inverse], shape, kind="normalized",
                    scale_param={"axis": 0})
    net.note("InstanceNormalization -> Reduction (mean, variance) + Bias + Power + Scale")
    net.bind(node.outputs[0], _affine(net, top, shape, gamma, beta, "scale"))
