"""Run a common graph (or a written .onnx file) in onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from migrate.errors import VerificationError
from migrate.graph import to_proto


def _session(source: ir.Model | str):
    import onnxruntime as ort  # imported when needed: conversions without --verify skip it

    options = ort.SessionOptions()
    # Run the graph as written: no fusions that could hide (or add) differences.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # failures are reported as our own errors, once
    payload = source if isinstance(source, str) else to_proto(source).SerializeToString()
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise VerificationError(f"onnxruntime cannot load the model: {exc}") from None


def run_onnx(source: ir.Model | str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the model for positional inputs, in graph output order."""
    session = _session(source)
    names = [i.name for i in session.get_inputs()]
    feeds = {
        n: np.ascontiguousarray(a, dtype=np.float32)
        for n, a in zip(names, inputs, strict=True)
    }
    try:
        outputs = session.run(None, feeds)
    except Exception as exc:  # e.g. an allocation failure on an absurd tensor
        message = str(exc).split("Status Message:")[-1].strip()
        raise VerificationError(f"onnxruntime failed to run the model: {message}") from None
    return [np.asarray(o) for o in outputs]
