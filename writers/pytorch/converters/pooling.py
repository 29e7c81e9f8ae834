"""Pooling: nn.MaxPool/AvgPool 1d/2d/3d (ceil_mode, count_include_pad, dilation) and the
global poolings as nn.AdaptiveAvgPool/AdaptiveMaxPool.

PyTorch pads both sides alike and, in ceil mode, drops a last window that would start in
the right padding. Each ONNX pooling is matched to the PyTorch layer whose output size
equals the size ONNX inferred, with the same window positions: the padding before the
first window, and ceil_mode covering any extra padding after the last one (values there
are never taken by a max, and never counted by an average that excludes padding)."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, ints, single_or_tuple
from migrate.writers.pytorch.registry import op_converter
from migrate.writers.pytorch.windows import (
    explicit_pads,
    ints_attr,
    pool_output_size,
    torch_pad,
)


def _window(g: CodeGen, node):
    x = node.inputs[0]
    in_shape = g.shape(x)
    kernel = ints_attr(node, "kernel_shape", [])
    rank = len(kernel)
    if rank not in (1, 2, 3) or len(in_shape) != rank + 2:
        raise ConversionError(f"a {rank}-D pooling of a {len(in_shape)}-D input has no "
                              "torch.nn layer")
    strides = ints_attr(node, "strides", [1] * rank)
    dilations = ints_attr(node, "dilations", [1] * rank)
    pads = explicit_pads(node, in_shape[2:], kernel, strides, dilations)
    out = g.shape(node.outputs[0])[2:]
    return in_shape[2:], kernel, strides, dilations, pads[:rank], pads[rank:], out


def _matching_mode(sizes, kernel, strides, dilations, padding, out, prefer_ceil):
    """The ceil_mode for which PyTorch, padding `padding` on both sides, gives `out`."""
    for ceil in (prefer_ceil, not prefer_ceil):
        if all(pool_output_size(n, k, s, p, d, ceil) == o
               for n, k, s, p, d, o in zip(sizes, kernel, strides, padding, dilations, out,
                                           strict=True)):
            return ceil
    return None


def _pool_args(kernel, strides, padding, dilations, ceil) -> list[str]:
    args = [single_or_tuple(kernel)]
    if strides != kernel:
        args.append(f"stride={single_or_tuple(strides)}")
    if any(padding):
        args.append(f"padding={single_or_tuple(padding)}")
    if dilations is not None and any(d != 1 for d in dilations):
        args.append(f"dilation={single_or_tuple(dilations)}")
    if ceil:
        args.append("ceil_mode=True")
    return args


def _half_window(padding, kernel, dilations) -> bool:
    """PyTorch accepts a padding of at most half the (dilated) window."""
    return all(p <= ((k - 1) * d + 1) // 2 for p, k, d in zip(padding, kernel, dilations,
                                                               strict=True))


PLANE_INDICES = "plane indices"  # PyTorch's per-plane argmax, for nn.MaxUnpool


def _wants_indices(g: CodeGen, node) -> bool:
    """Whether the pooling's indices are used; only nn.MaxUnpool may use them: ONNX
    numbers them across the whole tensor, PyTorch within each plane."""
    if len(node.outputs) < 2 or g.last_use(node.outputs[1]) < 0:
        return False
    indices = node.outputs[1]
    if indices.is_graph_output() or any(use.node.op_type != "MaxUnpool" or use.idx != 1
                                        for use in indices.uses()):
        raise ConversionError("MaxPool's indices used other than by MaxUnpool have no "
                              "PyTorch equivalent (ONNX numbers them across the tensor)")
    return True


@op_converter("MaxPool")
def max_pool(g: CodeGen, node) -> None:
    indices = _wants_indices(g, node)
    sizes, kernel, strides, dilations, begin, end, out = _window(g, node)
    rank = len(kernel)
    ceil = bool(node.attributes.get_int("ceil_mode", 0))
    mode = _matching_mode(sizes, kernel, strides, dilations, begin, out, ceil)
    source = g.ref(node.inputs[0])
    if mode is None or not _half_window(begin, kernel, dilations):
        # no PyTorch padding gives these windows: pad with -inf explicitly
        padded = [n + b + e for n, b, e in zip(sizes, begin, end, strict=True)]
        mode = _matching_mode(padded, kernel, strides, dilations, [0] * rank, out, ceil)
        if mode is None or indices:
            raise ConversionError(f"no PyTorch max pooling gives ONNX's output size {out}"
                                  + (" with indices" if indices else ""))
        source = g.temporary(f"F.pad({source}, ({ints(torch_pad(begin, end))}), "
                             'value=float("-inf"))', replacing=node.inputs[0])
        begin = [0] * rank
    args = _pool_args(kernel, strides, begin, dilations, mode)
    if indices:
        args.append("return_indices=True")
        g.tags[id(node.outputs[1])] = PLANE_INDICES
    layer = g.module("pool", f"nn.MaxPool{rank}d({', '.join(args)})")
    g.emit(f"{layer}({source})", outputs=node.outputs[:2] if indices else node.outputs[:1])


@op_converter("MaxUnpool")
def max_unpool(g: CodeGen, node) -> None:
    x, indices = node.inputs[0], node.inputs[1]
    if g.tags.get(id(indices)) != PLANE_INDICES:
        raise ConversionError("MaxUnpool of indices that no MaxPool of this model computed "
                              "has no PyTorch equivalent")
    in_shape = g.shape(x)
    rank = len(in_shape) - 2
    kernel = ints_attr(node, "kernel_shape", [])
    strides = ints_attr(node, "strides", [1] * rank)
    pads = ints_attr(node, "pads", [0] * (2 * rank))
    begin, end = pads[:rank], pads[rank:]
    if begin != end:
        raise ConversionError("MaxUnpool padded unevenly has no PyTorch equivalent")
    out = list(g.shape(node.outputs[0])[2:])
    args = [single_or_tuple(kernel)]
    if strides != kernel:
        args.append(f"stride={single_or_tuple(strides)}")
    if any(begin):
        args.append(f"padding={single_or_tuple(begin)}")
    layer = g.module("unpool", f"nn.MaxUnpool{rank}d({', '.join(args)})")
    default = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(in_shape[2:], strides, begin,
                                                                kernel, strict=True)]
    size = "" if out == default else f", output_size={tuple(out)}"
    g.emit(f"{layer}({g.ref(x)}, {g.ref(indices)}{size})")


@op_converter("AveragePool")
def average_pool(g: CodeGen, node) -> None:
    sizes, kernel, strides, dilations, begin, end, out = _window(g, node)
    rank = len(kernel)
    if any(d != 1 for d in dilations):
        raise ConversionError("dilated average pooling has no torch.nn layer")
    ceil = bool(node.attributes.get_int("ceil_mode", 0))
    include_pad = bool(node.attributes.get_int("count_include_pad", 0))
    source = g.ref(node.inputs[0])
    if not include_pad and all(o == 1 for o in out) and \
            all(b + n <= k for b, n, k in zip(begin, sizes, kernel, strict=True)):
        # one window holding the whole input (e.g. Caffe's 7x7 pooling of a 6x6 map),
        # its padding not counted: the mean of every value
        layer = g.module("avgpool", f"nn.AdaptiveAvgPool{rank}d(1)")
        g.emit(f"{layer}({source})")
        return
    mode = None
    if begin == end or not include_pad:
        # padding counted only where it is symmetric: PyTorch counts the padding on both
        # sides (never the ceil-mode overhang), ONNX its begin and end pads
        mode = _matching_mode(sizes, kernel, strides, dilations, begin, out, ceil)
    if mode is None or not _half_window(begin, kernel, dilations):
        if not include_pad and any(begin + end):
            raise ConversionError(f"no PyTorch average pooling excluding the padding gives "
                                  f"ONNX's output size {out} with pads {begin + end}")
        # zero padding that counts: pad explicitly, pool without padding
        padded = [n + b + e for n, b, e in zip(sizes, begin, end, strict=True)]
        mode = _matching_mode(padded, kernel, strides, dilations, [0] * rank, out, ceil)
        if mode is None:
            raise ConversionError(f"no PyTorch average pooling gives ONNX's output size {out}")
        source = g.temporary(f"F.pad({source}, ({ints(torch_pad(begin, end))}))",
                             replacing=node.inputs[0])
        begin = [0] * rank
    args = _pool_args(kernel, strides, begin, None, mode)
    if any(begin) and not include_pad:
        args.append("count_include_pad=False")
    layer = g.module("avgpool", f"nn.AvgPool{rank}d({', '.join(args)})")
    g.emit(f"{layer}({source})")


def _global(g: CodeGen, node, kind: str, layer_class: str) -> None:
    rank = len(g.shape(node.inputs[0])) - 2
    if rank not in (1, 2, 3):
        raise ConversionError(f"global pooling of a {rank + 2}-D input has no torch.nn layer")
    layer = g.module(kind, f"nn.{layer_class}{rank}d(1)")
    g.emit(f"{layer}({g.ref(node.inputs[0])})")


@op_converter("GlobalAveragePool")
def global_average_pool(g: CodeGen, node) -> None:
    _global(g, node, "avgpool", "AdaptiveAvgPool")


@op_converter("GlobalMaxPool")
def global_max_pool(g: CodeGen, node) -> None:
    _global(g, node, "pool", "AdaptiveMaxPool")
