"""Local contrast normalization: nn.Spatial{Subtractive,Divisive,Contrastive}Normalization.

Each holds small networks (`meanestimator`, `stdestimator`: zero padding, convolutions
with the normalized averaging kernel, Replicate over the planes) and divides their
output by `coef`, the same network applied to an image of ones (how much of the kernel
falls inside the image: it corrects the borders). The stored estimator weights are used
as they are; `coef` depends only on the input size, so it becomes a constant here.

  subtractive: y = x - mean(x) / coef
  divisive:    y = x / threshold(std(x) / coef),  std = sqrt(mean estimator of x^2)
  contrastive: divisive(subtractive(x))
"""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.converters.conv import mapped_kernels
from migrate.readers.torch7.converters.limits import check_computed_constant
from migrate.readers.torch7.registry import converter, lookup

_ESTIMATOR_PARTS = ("nn.SpatialZeroPadding", "nn.SpatialConvolution",
                    "nn.SpatialConvolutionMap", "nn.Replicate", "nn.Square", "nn.Sqrt")


def _estimator(module, name):
    """The estimator network's modules (the Replicate that copies the one-plane estimate
    to every plane is left out: element-wise ops broadcast that plane instead)."""
    obj = module.get(name)
    if obj is None:
        raise ConversionError(f"'{name}' is missing")
    chain = module.child(obj, f"{module.path}.{name}")
    parts = chain.children()
    for part in parts:
        if part.cls not in _ESTIMATOR_PARTS:
            raise ConversionError(f"{name} holds a {part.cls}, not a local average")
    return [part for part in parts if part.cls != "nn.Replicate"]


def _apply(ctx, parts, x):
    for part in parts:
        x = lookup(part.cls)(ctx, part, x)
    return x


def _correlate(image, kernels, groups):
    """Valid cross-correlation of planes x H x W with out x in/groups x kH x kW (float64)."""
    out, per_group, kh, kw = kernels.shape
    windows = np.lib.stride_tricks.sliding_window_view(image, (kh, kw), axis=(1, 2))
    if groups == 1:
        return np.einsum("chwab,ocab->ohw", windows, kernels)
    return np.einsum("chwab,cab->chw", windows, kernels[:, 0])


def _on_ones(parts, planes, height, width):
    """The estimator applied to one image of ones, computed here in float64."""
    image = np.ones((planes, height, width))
    for part in parts:
        if part.cls == "nn.SpatialZeroPadding":
            left = part.int("pad_l")
            right, top, bottom = (part.int(f, left) for f in ("pad_r", "pad_t", "pad_b"))
            if min(left, right, top, bottom) < 0:
                raise ConversionError("the estimator crops instead of padding")
            check_computed_constant(
                planes * (height + top + bottom) * (width + left + right), 8,
                "the estimator's padded image of ones")
            image = np.pad(image, ((0, 0), (top, bottom), (left, right)))
        elif part.cls == "nn.SpatialConvolutionMap":
            n = part.int("nInputPlane")
            dense, pairs, kh, kw = mapped_kernels(part, n, part.int("nOutputPlane"),
                                                  "SpatialConvolutionMap")
            image = _correlate(image, dense.astype(np.float64), 1)
            bias = part.tensor("bias")
            if bias is not None:
                image += bias.reshape(-1, 1, 1)
        elif part.cls == "nn.SpatialConvolution":
            n_in, n_out = part.int("nInputPlane"), part.int("nOutputPlane")
            kh, kw = part.int("kH"), part.int("kW")
            weight = part.tensor("weight")
            if weight is None or weight.size != n_out * n_in * kh * kw or \
                    part.int("dW", 1) != 1 or part.int("dH", 1) != 1 or \
                    part.int("padW", 0) or part.int("padH", 0):
                raise ConversionError("the estimator's convolution is not a plain average")
            image = _correlate(image, weight.reshape(n_out, n_in, kh, kw).astype(np.float64), 1)
            bias = part.tensor("bias")
            if bias is not None:
                image += bias.reshape(-1, 1, 1)
        elif part.cls == "nn.Square":
            image = image * image
        elif part.cls == "nn.Sqrt":
            image = np.sqrt(image)
    return image


def _coefficient(ctx, module, x):
    """`coef` for this input size: the mean estimator on ones, as a constant."""
    parts = _estimator(module, "meanestimator")
    planes, height, width = ctx.shape(x)[-3:]
    coef = _on_ones(parts, planes, height, width)
    if coef.shape != (1, height, width):
        raise ConversionError(f"the mean estimator makes {list(coef.shape)}, not one "
                              f"{height} x {width} plane")
    return ctx.const(coef.astype(np.float32), "coef")


def _check_input(ctx, module, x):
    shape = ctx.shape(x)
    if len(shape) not in (3, 4) or shape[-3] != module.int("nInputPlane", 1):
        raise ConversionError(f"expects {module.int('nInputPlane', 1)} planes (3-D or 4-D "
                              f"input), got shape {list(shape)}")


def subtractive(ctx, module, x):
    _check_input(ctx, module, x)
    mean = _apply(ctx, _estimator(module, "meanestimator"), x)
    adjusted = ctx.op("Div", [mean, _coefficient(ctx, module, x)], hint="local_mean")
    return ctx.op("Sub", [x, adjusted], hint="subtractive_norm")


def divisive(ctx, module, x):
    _check_input(ctx, module, x)
    std = _apply(ctx, _estimator(module, "stdestimator"), x)
    adjusted = ctx.op("Div", [std, _coefficient(ctx, module, x)], hint="local_std")
    # thresholder: nn.Threshold(threshold, thresval): small deviations become thresval
    threshold, value = module.float("threshold", 1e-4), module.float("thresval", 1e-4)
    above = ctx.op("Greater", [adjusted, ctx.scalar(threshold, "threshold")], hint="above")
    clamped = ctx.op("Where", [above, adjusted, ctx.scalar(value, "thresval")], hint="local_std")
    return ctx.op("Div", [x, clamped], hint="divisive_norm")


@converter("nn.SpatialSubtractiveNormalization")
def spatial_subtractive_normalization(ctx, module, x):
    return subtractive(ctx, module, x)


@converter("nn.SpatialDivisiveNormalization")
def spatial_divisive_normalization(ctx, module, x):
    return divisive(ctx, module, x)


@converter("nn.SpatialContrastiveNormalization")
def spatial_contrastive_normalization(ctx, module, x):
    obj = module.get("normalizer")
    if obj is None:
        raise ConversionError("'normalizer' is missing")
    steps = module.child(obj, f"{module.path}.normalizer").children()
    if [s.cls for s in steps] != ["nn.SpatialSubtractiveNormalization",
                                  "nn.SpatialDivisiveNormalization"]:
        raise ConversionError("its normalizer is not subtractive then divisive normalization")
    return divisive(ctx, steps[1], subtractive(ctx, steps[0], x))
