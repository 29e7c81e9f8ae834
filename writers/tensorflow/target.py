"""What both TensorFlow targets share: lowering with the writer options, the summary
lines about layout, and the sidecar's content."""

from __future__ import annotations

import json
import os

import onnx_ir as ir

from migrate.core.formats import tensorflow as sidecar
from migrate.core.model import WriteOptions
from migrate.writers.tensorflow.lowering import lower
from migrate.writers.tensorflow.program import Program


def keep_layout(options: WriteOptions) -> bool:
    return bool(options.extra.get("keep_layout", False))


def lower_model(model: ir.Model, options: WriteOptions) -> Program:
    return lower(model, keep_layout=keep_layout(options), optimize=options.optimize)


def layout_notes(program: Program, keep: bool) -> list[str]:
    """Summary lines: the boundary layouts and every transpose left, with its reason."""
    images = [b for b in program.input_boundaries + program.output_boundaries if b.layout]
    if keep:
        where = "inputs and outputs in the source's layout (--keep-layout), channels last inside"
    elif images:
        where = "4-D inputs and outputs NHWC, channels last inside"
    else:
        where = "channels last inside"
    reasons = program.transposes()
    reorders = program.reorders()
    if reorders:
        where += (f"; {len(reorders)} channel reorder{'s' if len(reorders) > 1 else ''} "
                  "(the source's Reshape-Transpose-Reshape) as one Gather each")
    if not reasons:
        return [f"layout: {where}; no Transpose op left"]
    counted: dict[str, int] = {}
    for reason in reasons:
        counted[reason] = counted.get(reason, 0) + 1
    lines = [f"layout: {where}; {len(reasons)} Transpose op{'s' if len(reasons) > 1 else ''}"
             " left:"]
    shown = sorted(counted.items(), key=lambda kv: -kv[1])
    for reason, n in shown[:8]:
        lines.append(f"  {n} x {reason}" if n > 1 else f"  {reason}")
    if len(shown) > 8:
        lines.append(f"  ... and {len(shown) - 8} more places")
    return ["\n".join(lines)]


def sidecar_content(program: Program, target: str, model_file: str, keep: bool,
                    extra: dict | None = None) -> dict:
    def boundary(b):
        return {"name": b.name, "dtype": b.dtype, "layout": b.layout,
                **b.view.to_json()}

    data = {
        "format": sidecar.FORMAT, "version": sidecar.VERSION, "target": target,
        "model": os.path.basename(model_file), "signature": "serving_default",
        "keep_layout": keep,
        "inputs": [boundary(b) for b in program.input_boundaries],
        "outputs": [boundary(b) for b in program.output_boundaries],
        "transposes": program.transposes(),
        "channel_reorders": program.reorders(),
        "layers": {path: view.to_json() for path, view in program.layers.items()},
    }
    data.update(extra or {})
    return data


def sidecar_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=1).encode() + b"\n"
