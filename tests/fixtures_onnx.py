"""Access to ONNX's own backend test data in ../shared/fixtures/real/onnx/backend: the
"light" zoo models and the node tests, with the inputs and outputs stored beside them."""

from __future__ import annotations

import glob
import os

import numpy as np
from fixtures_t7 import REAL_DIR

# Models no target here can take (the reader refuses them), and why.
UNREADABLE = {
    "simple/test_gradient_of_add": "operators outside the ONNX standard",
    "simple/test_gradient_of_add_and_mul": "operators outside the ONNX standard",
    **{f"simple/test_sequence_model{k}": "ONNX sequences" for k in range(1, 9)},
    **{f"simple/test_strnorm_model_{name}": "string values" for name in (
        "monday_casesensintive_lower", "monday_casesensintive_nochangecase",
        "monday_casesensintive_upper", "monday_empty_output", "monday_insensintive_upper_twodim",
        "nostopwords_nochangecase")},
}


BACKEND = os.path.join(REAL_DIR, "onnx", "backend")
LIGHT = sorted(glob.glob(os.path.join(BACKEND, "light", "light_*.onnx")))


def backend_models() -> list[tuple[str, str]]:
    """(name, model path): `pytorch-converted/test_Conv2d`, ..., `light/light_resnet50`."""
    found = [(os.path.relpath(os.path.dirname(p), BACKEND), p)
             for p in sorted(glob.glob(os.path.join(BACKEND, "*", "*", "model.onnx")))]
    return found + [("light/" + os.path.basename(p)[:-5], p) for p in LIGHT]


def _tensor(path: str) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(onnx.load_tensor(path))


def stored_data(name: str, path: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The stored inputs and expected outputs. Node tests keep them in test_data_set_0; the
    light models store only outputs, computed by onnx's test runner on the input it
    generates (`np.arange(n).reshape(shape) / n`, symbolic dims as 1)."""
    if name.startswith("light/"):
        import onnx

        model = onnx.load(path, load_external_data=False)
        weights = {t.name for t in model.graph.initializer}
        inputs = []
        for value in model.graph.input:
            if value.name in weights:
                continue
            shape = [d.dim_value if d.HasField("dim_value") else 1
                     for d in value.type.tensor_type.shape.dim]
            n = int(np.prod(shape))
            inputs.append((np.arange(n).reshape(shape) / n).astype(np.float32))
        return inputs, [_tensor(p) for p in sorted(glob.glob(path[:-5] + "_output_*.pb"))]
    data = os.path.join(os.path.dirname(path), "test_data_set_0")
    return ([_tensor(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")))],
            [_tensor(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")))])


def light_data(path: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return stored_data("light/" + os.path.basename(path)[:-5], path)
