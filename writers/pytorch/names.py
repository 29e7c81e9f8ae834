"""Python names for the generated module: submodules named after the source's layers.

- Torch7 module paths (`model.modules[3].modules[1]`) become the layer's kind and its
  indices: `conv_3_1`, so `self.conv_3_1` is found at `model.modules[3].modules[1]`.
- Other names (Caffe layer names, ONNX node names, PyTorch module paths) are made into
  identifiers: `fire2/squeeze1x1` -> `fire2_squeeze1x1`, `layer1.0.conv1` ->
  `layer1_0_conv1`, the ONNX exporter's `/layer1/layer1.0/conv1/Conv` -> `layer1_0_conv1`.
- Names the reader made up (ONNX nodes without a name, `n17`) get the kind in front.
Every name is checked against Python keywords and nn.Module's own attributes, and made
unique with a suffix.
"""

from __future__ import annotations

import keyword
import re

_T7_PATH = re.compile(r"^model((?:\.modules\[\d+\])*)$")
_T7_INDEX = re.compile(r"\[(\d+)\]")
_GENERATED = re.compile(r"^n\d+$")
_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]+")

# Attributes of torch.nn.Module (methods and state) a submodule must not shadow; the list
# is torch 2.13's, written out so that naming does not import torch.
MODULE_ATTRIBUTES = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
get_submodule half ipu load_state_dict modules mtia named_buffers named_children
named_modules named_parameters parameters register_backward_hook register_buffer
register_forward_hook register_forward_pre_hook register_full_backward_hook
register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter
register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split())
# Names the generated file itself uses at module level or in forward.
RESERVED = frozenset({"self", "torch", "nn", "F", "os", "Model", "load_model", "WEIGHTS", "HERE",
                      "super", "print", "len", "tuple", "list", "float", "int"})


def identifier(text: str, fallback: str = "x") -> str:
    """`text` as a valid Python identifier (lower-case words joined by `_`)."""
    name = _NOT_IDENT.sub("_", text).strip("_")
    name = re.sub(r"_+", "_", name)
    if not name:
        name = fallback
    if name[0].isdigit():
        name = f"{fallback}_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def _exporter_scope(path: str, op_type: str) -> str:
    """`/layer1/layer1.0/conv1/Conv` (torch.onnx's node names) -> `layer1.0/conv1`."""
    parts = [p for p in path.split("/") if p]
    kept = []
    for k, part in enumerate(parts):
        nxt = parts[k + 1] if k + 1 < len(parts) else ""
        if nxt.startswith(part + "."):  # a parent scope repeated in its child's full name
            continue
        kept.append(part)
    if len(kept) > 1 and re.fullmatch(re.escape(op_type) + r"(_\d+)?", kept[-1]):
        kept.pop()
    return "/".join(kept)


def layer_name(path: str, kind: str, op_type: str = "") -> str:
    """The base name (before uniquing) of a submodule made for the source layer `path`."""
    match = _T7_PATH.match(path)
    if match:
        indices = _T7_INDEX.findall(match.group(1))
        return "_".join([kind, *indices]) if indices else kind
    if "/" in path:
        path = _exporter_scope(path, op_type)
    name = identifier(path, kind)
    if _GENERATED.match(name):
        name = f"{kind}_{name}"
    return name


class Names:
    """Hands out unique names in one namespace."""

    def __init__(self, reserved: frozenset[str] | set[str] = frozenset()) -> None:
        self._taken: set[str] = set(reserved)

    def take(self, base: str) -> str:
        base = identifier(base)
        if base in MODULE_ATTRIBUTES or base in RESERVED or base.startswith("_"):
            base = f"{base.lstrip('_')}_layer"
        name, k = base, 1
        while name in self._taken:
            k += 1
            name = f"{base}_{k}"
        self._taken.add(name)
        return name

    def taken(self, name: str) -> bool:
        return name in self._taken
