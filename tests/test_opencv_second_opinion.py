"""OpenCV's Torch7 importer (an independent implementation) agrees with our conversions
on every model it can load and run."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from fixtures_t7 import REAL_DIR, cases

from migrate.readers.torch7.reader import find_unsupported, load_root, read_torch7
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare

pytest.importorskip("cv2")

# Runs in a child process: OpenCV's importer aborts the whole process (not a cv2.error)
# on some files it cannot handle, and such a model is one it cannot load, like any other.
_OPENCV_RUNNER = r"""
import json, sys
import numpy as np
import cv2
jobs = json.load(open(sys.argv[1]))
for k, (path, x_path, out_path) in enumerate(jobs):
    print("start", k, flush=True)
    try:
        net = cv2.dnn.readNetFromTorch(path)
        net.setInput(np.ascontiguousarray(np.load(x_path), dtype=np.float32))
        np.save(out_path, net.forward())
    except cv2.error:
        pass
    print("done", k, flush=True)
"""


def _opencv_outputs(models: list[tuple[str, np.ndarray]], tmp: str) -> list[np.ndarray | None]:
    """OpenCV's output for each model, None where it cannot load or run it."""
    jobs = []
    for k, (path, x) in enumerate(models):
        x_path = os.path.join(tmp, f"in{k}.npy")
        np.save(x_path, x)
        jobs.append((path, x_path, os.path.join(tmp, f"out{k}.npy")))
    remaining = list(range(len(jobs)))
    while remaining:
        job_file = os.path.join(tmp, "jobs.json")
        with open(job_file, "w") as fh:
            json.dump([jobs[k] for k in remaining], fh)
        run = subprocess.run([sys.executable, "-c", _OPENCV_RUNNER, job_file],
                             capture_output=True, text=True, timeout=600)
        started = [int(line.split()[1]) for line in run.stdout.splitlines()
                   if line.startswith("start ")]
        if run.returncode == 0:
            break
        # the model OpenCV died on counts as one it cannot load; go on after it
        crashed = started[-1] if started else 0
        remaining = remaining[crashed + 1:]
    return [np.load(out) if os.path.exists(out) else None for _, _, out in jobs]


def _we_convert(path: str) -> bool:
    """Models of classes we have no converter for are the fixture tests' failures."""
    return not find_unsupported(load_root(path))


def test_our_conversions_agree_with_opencv(shared_dir, tmp_path):
    models = [(c.model, c.inputs[0]) for c in cases() if len(c.inputs) == 1]
    ref = os.path.join(REAL_DIR, "spynet_ref", "input_1x8x24x32.f64")
    if os.path.exists(ref):
        x = np.fromfile(ref, "<f8").reshape(1, 8, 24, 32)
        models += [(p, x) for p in sorted(glob.glob(os.path.join(REAL_DIR, "spynet", "*.t7")))]
    models = [(path, x) for path, x in models if _we_convert(path)]
    compared, disagreements = 0, []
    for (path, x), theirs in zip(models, _opencv_outputs(models, str(tmp_path)), strict=True):
        if theirs is None:
            continue
        compared += 1
        model = read_torch7(path, [x.shape]).model
        (ours,) = run_onnx(model, [x])[:1]
        # OpenCV drops a batch of one in places: compare the values, in order
        result = compare([ours.reshape(-1)], [theirs.reshape(-1)], atol=1e-4, rtol=1e-4)
        if not result.passed:
            disagreements.append(f"{os.path.basename(path)}: {result.describe()}")
    assert compared >= 70, f"OpenCV ran only {compared} models"
    assert not disagreements, "\n".join(disagreements)
