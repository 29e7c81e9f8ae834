"""Find and call the Caffe side runtime (provisioned by provision.sh beside this file).

pycaffe is driven in a subprocess (`runner.py`, Python 3.9): Caffe aborts its process on
a definition it cannot parse or a failed check (glog's CHECK), so an abort must not take
the caller with it. When the process dies during a net, that net gets the fatal message
Caffe printed as its error and a fresh process runs the nets after it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from migrate.core.errors import VerificationError
from migrate.runtimes.interpreters import find_interpreter

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")
LAUNCHER = "caffe-python"
ENV_VAR = "MIGRATE_CAFFE_PYTHON"
HOME_VAR = "MIGRATE_CAFFE_HOME"
DEFAULT_HOME = os.path.join(os.path.expanduser("~"), ".cache", "torch7-migrate", "caffe")
TIMEOUT_S = 900
MAX_MESSAGE = 400


def find_caffe_python(explicit: str | None = None) -> str | None:
    """The interpreter of the Caffe side runtime, or None when there is none: `explicit`,
    $MIGRATE_CAFFE_PYTHON, `caffe-python` on PATH, the launcher in the provisioning
    folder ($MIGRATE_CAFFE_HOME or the default)."""
    home = os.environ.get(HOME_VAR, DEFAULT_HOME)
    return find_interpreter(explicit, "caffe", ENV_VAR, LAUNCHER, [os.path.join(home, LAUNCHER)])


@dataclass
class CaffeJob:
    net: str  # the definition (text prototxt, or a binary NetParameter when `binary`)
    weights: str | None
    inputs: Sequence[np.ndarray]
    binary: bool = False
    layers: bool = False  # capture every layer's first top right after it ran
    repeat: int = 0  # timed forward passes
    outputs: list[np.ndarray] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)
    layer_tops: list[str] = field(default_factory=list)
    traced: dict[int, np.ndarray] = field(default_factory=dict)  # layer index -> its top
    times: list[float] = field(default_factory=list)
    error: str | None = None


# glog's fatal line: "F0523 10:00:00.123456  1234 net.cpp:88] Check failed: ..."
_GLOG_FATAL = re.compile(r"^F\d{4} [\d:.]+\s+\d+ [^\]]*\] (.*)$")
_PROTOBUF_ERROR = re.compile(r"^\[libprotobuf ERROR [^\]]*\] (.*)$")


def fatal_message(stderr: str) -> str:
    """What Caffe said before it aborted, in one line."""
    found = []
    for line in stderr.splitlines():
        line = line.strip()
        for pattern in (_PROTOBUF_ERROR, _GLOG_FATAL):
            match = pattern.match(line)
            if match:
                found.append(match.group(1).strip())
    if not found:
        lines = [x for x in stderr.strip().splitlines() if x.strip()]
        found = [lines[-1].strip()] if lines else ["the process died without a message"]
    text = "; ".join(dict.fromkeys(found))
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def _save_inputs(tmp: str, k: int, arrays: Sequence[np.ndarray]) -> list[str]:
    paths = []
    for i, array in enumerate(arrays):
        path = os.path.join(tmp, f"in{k}_{i}.npy")
        # Caffe blobs are float32 (Embed takes its indices as floats too)
        np.save(path, np.ascontiguousarray(array, dtype=np.float32))
        paths.append(path)
    return paths


def run_caffe_jobs(python: str, jobs: Sequence[CaffeJob]) -> None:
    """Run the nets in as few Caffe processes as aborts allow (one when none aborts)."""
    with tempfile.TemporaryDirectory(prefix="migrate-caffe-") as tmp:
        spec = [{
            "net": os.path.abspath(job.net),
            "binary": job.binary,
            "weights": os.path.abspath(job.weights) if job.weights else None,
            "inputs": _save_inputs(tmp, k, job.inputs),
            "outputs": os.path.join(tmp, f"out{k}.npz"),
            "layers": job.layers,
            "repeat": int(job.repeat),
        } for k, job in enumerate(jobs)]
        pending = list(range(len(jobs)))
        while pending:
            pending = _run_batch(python, tmp, [jobs[k] for k in pending],
                                 [spec[k] for k in pending], pending)


def _run_batch(python: str, tmp: str, jobs: list[CaffeJob], spec: list[dict],
               indices: list[int]) -> list[int]:
    """Run jobs in one process; returns the indices still to run after an abort."""
    job_file = os.path.join(tmp, "job.json")
    with open(job_file, "w") as fh:
        json.dump({"nets": spec}, fh)
    try:
        result = subprocess.run([python, "-I", RUNNER, job_file], capture_output=True,
                                text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VerificationError(f"the Caffe runtime did not finish in {TIMEOUT_S} s") from None
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    for job, line, item in zip(jobs, lines, spec, strict=False):
        if not line["ok"]:
            job.error = line["error"]
            continue
        job.layer_names = list(line["layers"])
        job.layer_tops = list(line["tops"])
        job.output_names = list(line["outputs"])
        with np.load(item["outputs"]) as npz:
            job.outputs = [npz[f"out{k}"] for k in range(len(job.output_names))]
            job.traced = {int(k[1:]): npz[k] for k in npz.files if k.startswith("L")}
            job.times = npz["times"].tolist() if "times" in npz.files else []
    if len(lines) >= len(jobs):
        return []
    if not lines and result.returncode == 0:
        raise VerificationError(f"the Caffe runtime failed: {fatal_message(result.stderr)}")
    # the process died during the next net: that net failed, the ones after it still run
    jobs[len(lines)].error = f"Caffe aborted: {fatal_message(result.stderr)}"
    return indices[len(lines) + 1:]
