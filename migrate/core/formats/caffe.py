"""Caffe files: provenance comments and layer keys shared by the reader, the writer and
the Caffe runtime.

Caffe's LayerParameter has no free-text field, so the writer records which source layer
each Caffe layer comes from as a comment line right before that layer in the prototxt:

    # source: model.modules[3] (nn.SpatialConvolution)
    layer {
      name: "conv3"
      ...

Real Caffe ignores comments; the Caffe runtime reads them to report each layer's output
under its source layer's path. A prototxt without such comments (an original Caffe
model) is keyed by layer name, which is also the path the Caffe reader gives each layer.
"""

from __future__ import annotations

import re

SOURCE_COMMENT = "# source: "
_LAYER_START = re.compile(r"^\s*layers?\s*\{", re.M)
_NAME = re.compile(r"\bname\s*:\s*\"((?:[^\"\\]|\\.)*)\"")


def provenance_comment(path: str, cls: str) -> str:
    """The comment line the writer puts before a layer."""
    return f"{SOURCE_COMMENT}{path} ({cls})"


def layer_sources(prototxt_text: str) -> dict[str, tuple[str, str]]:
    """Caffe layer name -> (source path, source class) from provenance comments."""
    found: dict[str, tuple[str, str]] = {}
    lines = prototxt_text.splitlines()
    pending: tuple[str, str] | None = None
    for k, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(SOURCE_COMMENT):
            text = stripped[len(SOURCE_COMMENT):]
            if text.endswith(")") and " (" in text:
                path, cls = text[:-1].rsplit(" (", 1)
            else:
                path, cls = text, ""
            pending = (path, cls)
        elif _LAYER_START.match(line) and pending is not None:
            # the layer's name is on one of the next lines
            for following in lines[k:k + 8]:
                match = _NAME.search(following)
                if match:
                    found[match.group(1)] = pending
                    break
            pending = None
        elif stripped and not stripped.startswith("#"):
            pending = None if _LAYER_START.match(line) else pending
    return found
