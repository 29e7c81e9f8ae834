"""Convolutions: nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d (grouped, depthwise, dilated).

PyTorch pads symmetrically; an ONNX convolution padded more on one side gets an explicit
`F.pad` before it (Conv) or a crop after it (ConvTranspose)."""

from __future__ import annotations

from migrate.core.errors import ConversionError
from migrate.writers.pytorch.codegen import CodeGen, ints, single_or_tuple
from migrate.writers.pytorch.registry import op_converter
from migrate.writers.pytorch.windows import explicit_pads, ints_attr, torch_pad


def _bias(g: CodeGen, node) -> object:
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        return g.need_const(node.inputs[2], "bias").reshape(-1)
    return None


def _options(stride, padding, dilation, groups, bias) -> list[str]:
    found = []
    if any(s != 1 for s in stride):
        found.append(f"stride={single_or_tuple(stride)}")
    if padding is not None and any(p != 0 for p in padding):
        found.append(f"padding={single_or_tuple(padding)}")
    if dilation is not None and any(d != 1 for d in dilation):
        found.append(f"dilation={single_or_tuple(dilation)}")
    if groups != 1:
        found.append(f"groups={groups}")
    if bias is None:
        found.append("bias=False")
    return found


@op_converter("Conv")
def conv(g: CodeGen, node) -> None:
    x, w = node.inputs[0], node.inputs[1]
    weight = g.need_const(w, "weight")
    bias = _bias(g, node)
    in_shape = g.shape(x)
    rank = len(in_shape) - 2
    if rank not in (1, 2, 3) or weight.ndim != rank + 2:
        raise ConversionError(f"a {rank}-D convolution has no torch.nn layer")
    kernel = list(weight.shape[2:])
    strides = ints_attr(node, "strides", [1] * rank)
    dilations = ints_attr(node, "dilations", [1] * rank)
    groups = node.attributes.get_int("group", 1)
    pads = explicit_pads(node, in_shape[2:], kernel, strides, dilations)
    begin, end = pads[:rank], pads[rank:]
    channels_in = weight.shape[1] * groups
    padding = begin if begin == end else [0] * rank
    args = [str(channels_in), str(weight.shape[0]), single_or_tuple(kernel)]
    args += _options(strides, padding, dilations, groups, bias)
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    layer = g.module("conv", f"nn.Conv{rank}d({', '.join(args)})", params)
    source = g.ref(x)
    if begin != end:
        # padded more on one side than the other: pad explicitly, then convolve
        source = g.temporary(f"F.pad({source}, ({ints(torch_pad(begin, end))}))", replacing=x)
    g.emit(f"{layer}({source})")


@op_converter("ConvTranspose")
def conv_transpose(g: CodeGen, node) -> None:
    x, w = node.inputs[0], node.inputs[1]
    weight = g.need_const(w, "weight")
    bias = _bias(g, node)
    in_shape = g.shape(x)
    out_shape = g.shape(node.outputs[0])
    rank = len(in_shape) - 2
    if rank not in (1, 2, 3) or weight.ndim != rank + 2:
        raise ConversionError(f"a {rank}-D transposed convolution has no torch.nn layer")
    kernel = list(weight.shape[2:])
    strides = ints_attr(node, "strides", [1] * rank)
    dilations = ints_attr(node, "dilations", [1] * rank)
    groups = node.attributes.get_int("group", 1)
    # the sizes ONNX inferred decide the padding (this also resolves output_shape/auto_pad)
    full = [(i - 1) * s + (k - 1) * d + 1
            for i, s, k, d in zip(in_shape[2:], strides, kernel, dilations, strict=True)]
    given_pads = ints_attr(node, "pads", [0] * (2 * rank))
    extra = ints_attr(node, "output_padding", [0] * rank)
    begin, end, output_padding = [], [], []
    for k in range(rank):
        removed = full[k] + extra[k] - out_shape[2 + k]
        if node.attributes.get("output_shape") is not None or \
                node.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", ""):
            b = removed // 2 if node.attributes.get_string("auto_pad", "") != "SAME_LOWER" \
                else removed - removed // 2
            begin.append(b)
            end.append(removed - b)
        else:
            begin.append(given_pads[k])
            end.append(given_pads[rank + k])
        output_padding.append(extra[k])
    if any(b < 0 or e < 0 for b, e in zip(begin, end, strict=True)):
        raise ConversionError("negative padding of a transposed convolution has no "
                              "PyTorch equivalent")
    padding = [min(b, e) for b, e in zip(begin, end, strict=True)]
    if any(p >= max(s, d) for p, s, d in zip(output_padding, strides, dilations, strict=True)):
        raise ConversionError(f"output_padding {output_padding} must be smaller than the "
                              "stride or the dilation in PyTorch")
    channels_out = weight.shape[1] * groups
    args = [str(weight.shape[0]), str(channels_out), single_or_tuple(kernel)]
    options = _options(strides, padding, None, groups, bias)
    if any(output_padding):  # keyword order of the signature: after stride and padding
        after = sum(o.startswith(("stride=", "padding=")) for o in options)
        options.insert(after, f"output_padding={single_or_tuple(output_padding)}")
    if any(d != 1 for d in dilations):
        options.append(f"dilation={single_or_tuple(dilations)}")
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    layer = g.module("deconv", f"nn.ConvTranspose{rank}d({', '.join(args + options)})", params)
    if begin == end:
        g.emit(f"{layer}({g.ref(x)})")
        return
    # padded more on one side: the layer pads the smaller amount, the rest is cropped
    full_out = g.temporary(f"{layer}({g.ref(x)})", replacing=x)
    index = [":", ":"]
    for b, p, size in zip(begin, padding, out_shape[2:], strict=True):
        start = b - p
        index.append(f"{start or ''}:{start + size}")
    g.emit(f"{full_out}[{', '.join(index)}]")
