"""OpenCV's Torch7 importer (an independent implementation) agrees with our conversions
on every model it can load and run."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from fixtures_t7 import REAL_DIR, cases

from migrate.readers.torch7.reader import read_torch7
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare

cv2 = pytest.importorskip("cv2")


def _opencv_forward(path: str, x: np.ndarray) -> np.ndarray | None:
    """OpenCV's output, or None where its importer cannot load or run the model."""
    try:
        net = cv2.dnn.readNetFromTorch(path)
        net.setInput(np.ascontiguousarray(x, dtype=np.float32))
        return net.forward()
    except cv2.error:
        return None


def test_our_conversions_agree_with_opencv(shared_dir):
    models = [(c.model, c.inputs) for c in cases() if len(c.inputs) == 1]
    ref = os.path.join(REAL_DIR, "spynet_ref", "input_1x8x24x32.f64")
    if os.path.exists(ref):
        x = np.fromfile(ref, "<f8").reshape(1, 8, 24, 32)
        models += [(p, [x]) for p in sorted(glob.glob(os.path.join(REAL_DIR, "spynet", "*.t7")))]
    compared, disagreements = 0, []
    for path, inputs in models:
        theirs = _opencv_forward(path, inputs[0])
        if theirs is None:
            continue
        compared += 1
        (ours,) = run_onnx(read_torch7(path, [inputs[0].shape]).model, inputs)[:1]
        # OpenCV drops a batch of one in places: compare the values, in order
        result = compare([ours.reshape(-1)], [theirs.reshape(-1)], atol=1e-4, rtol=1e-4)
        if not result.passed:
            disagreements.append(f"{os.path.basename(path)}: {result.describe()}")
    assert compared >= 70, f"OpenCV ran only {compared} models"
    assert not disagreements, "\n".join(disagreements)
