"""Convolution and pooling window arguments, in every form Caffe2 accepts."""

from __future__ import annotations

from migrate.core.errors import ConversionError

# ConvPoolOpBase's legacy_pad values
NOTSET, VALID, SAME, CAFFE_LEGACY_POOLING = 0, 1, 2, 3


def _per_dim(args, name: str, dims: int, default: int) -> list[int]:
    """`kernel` (all dims), `kernel_h`/`kernel_w` (2-D), or `kernels` (a list)."""
    plural = {"kernel": "kernels", "stride": "strides", "dilation": "dilations"}[name]
    if args.has(plural):
        values = args.ints(plural)
        if len(values) != dims:
            raise ConversionError(f"'{plural}' has {len(values)} values for {dims}-D data")
        return values
    if dims == 2 and (args.has(f"{name}_h") or args.has(f"{name}_w")):
        return [args.int(f"{name}_h", args.int(name, default)),
                args.int(f"{name}_w", args.int(name, default))]
    return [args.int(name, default)] * dims


def window(args, dims: int, kernel_from_weight: list[int] | None = None) -> dict:
    """kernel, strides, dilations and pads (begin..., end...) of a conv or pool op."""
    if kernel_from_weight is not None and not (args.has("kernel") or args.has("kernels")
                                               or args.has("kernel_h")):
        kernel = kernel_from_weight
    else:
        kernel = _per_dim(args, "kernel", dims, 0)
    strides = _per_dim(args, "stride", dims, 1)
    dilations = _per_dim(args, "dilation", dims, 1)
    if args.has("pads"):
        pads = args.ints("pads")
        if len(pads) != 2 * dims:
            raise ConversionError(f"'pads' has {len(pads)} values for {dims}-D data")
    elif dims == 2 and any(args.has(k) for k in ("pad_t", "pad_l", "pad_b", "pad_r")):
        pad = args.int("pad", 0)
        pads = [args.int("pad_t", pad), args.int("pad_l", pad), args.int("pad_b", pad),
                args.int("pad_r", pad)]
    else:
        pads = [args.int("pad", 0)] * (2 * dims)
    if any(k <= 0 for k in kernel) or any(s <= 0 for s in strides) or any(
            d <= 0 for d in dilations) or any(p < 0 for p in pads):
        raise ConversionError(f"bad window: kernel {kernel}, strides {strides}, dilations "
                              f"{dilations}, pads {pads}")
    return dict(kernel=kernel, strides=strides, dilations=dilations, pads=pads,
                legacy=args.int("legacy_pad", NOTSET))


def same_pads(size: list[int], geometry: dict) -> list[int]:
    """Caffe2's legacy SAME padding (the extra pixel at the end)."""
    begins, ends = [], []
    for n, k, s, d in zip(size, geometry["kernel"], geometry["strides"],
                          geometry["dilations"], strict=True):
        out = -(-n // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def resolve_pads(size: list[int], geometry: dict) -> tuple[list[int], bool]:
    """(pads, ceil_mode) after applying legacy padding."""
    legacy = geometry["legacy"]
    if legacy == VALID:
        return [0] * (2 * len(size)), False
    if legacy == SAME:
        return same_pads(size, geometry), False
    return geometry["pads"], legacy == CAFFE_LEGACY_POOLING
