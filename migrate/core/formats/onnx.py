"""ONNX files: how their nodes are named as source layers."""

from __future__ import annotations

SOURCE_PATH = "source.path"
SOURCE_CLASS = "source.class"


def layer_key(node, index: int) -> tuple[str, str]:
    """(layer path, class) of a NodeProto: what our writer recorded in its metadata
    (the source layer it came from), else the node's own name, else its first output."""
    meta = {p.key: p.value for p in node.metadata_props}
    if SOURCE_PATH in meta:
        return meta[SOURCE_PATH], meta.get(SOURCE_CLASS, node.op_type)
    if node.name:
        return node.name, node.op_type
    first = node.output[0] if node.output else f"node{index}"
    return first, node.op_type
