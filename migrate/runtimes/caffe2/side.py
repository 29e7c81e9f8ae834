"""Find and call the Caffe2 side runtime (provisioned by provision.sh beside this file)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from migrate.core.errors import VerificationError
from migrate.runtimes.interpreters import find_interpreter

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")
LAUNCHER = "caffe2-python"
ENV_VAR = "MIGRATE_CAFFE2_PYTHON"
DEFAULT_HOME = os.path.join(os.path.expanduser("~"), ".cache", "torch7-migrate", "caffe2")
TIMEOUT_S = 600


def find_caffe2_python(explicit: str | None = None) -> str | None:
    """The interpreter of the Caffe2 side runtime, or None when there is none: `explicit`
    (--caffe2-python), $MIGRATE_CAFFE2_PYTHON, `caffe2-python` on PATH, the default
    provisioning folder."""
    home = os.environ.get("MIGRATE_CAFFE2_HOME", DEFAULT_HOME)
    return find_interpreter(explicit, "caffe2.python.workspace", ENV_VAR, LAUNCHER,
                            [os.path.join(home, "venv", "bin", "python")])


@dataclass
class Caffe2Job:
    init_net: str
    predict_net: str
    inputs: Sequence[np.ndarray]
    trace: Sequence[int] = ()  # ops whose output to capture right after they run
    repeat: int = 0  # timed Predictor runs
    outputs: list[np.ndarray] = field(default_factory=list)
    traced: dict[int, np.ndarray] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    error: str | None = None


def run_caffe2_jobs(python: str, jobs: Sequence[Caffe2Job]) -> None:
    """Run several nets in one side-runtime process (Caffe2 takes ~2 s to import)."""
    with tempfile.TemporaryDirectory(prefix="migrate-caffe2-") as tmp:
        spec = []
        for k, job in enumerate(jobs):
            inputs = []
            for i, array in enumerate(job.inputs):
                path = os.path.join(tmp, f"in{k}_{i}.npy")
                array = np.asarray(array)
                np.save(path, np.ascontiguousarray(
                    array, dtype=array.dtype if array.dtype.kind in "iub" else np.float32))
                inputs.append(path)
            spec.append({
                "init": os.path.abspath(job.init_net),
                "predict": os.path.abspath(job.predict_net),
                "inputs": inputs,
                "outputs": os.path.join(tmp, f"out{k}.npz"),
                "trace": [int(i) for i in job.trace],
                "repeat": int(job.repeat),
            })
        job_file = os.path.join(tmp, "job.json")
        with open(job_file, "w") as fh:
            json.dump({"nets": spec}, fh)
        try:
            result = subprocess.run(
                [python, "-I", RUNNER, job_file], capture_output=True, text=True, timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise VerificationError(f"Caffe2 runtime did not finish in {TIMEOUT_S} s") from None
        lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
        if len(lines) != len(jobs):
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise VerificationError(f"Caffe2 runtime failed: {tail}")
        for job, line, item in zip(jobs, lines, spec, strict=True):
            if not line["ok"]:
                job.error = line["error"]
                continue
            with np.load(item["outputs"]) as npz:
                outs = sorted((k for k in npz.files if k.startswith("out")),
                              key=lambda k: int(k[3:]))
                job.outputs = [npz[k] for k in outs]
                job.traced = {int(k[2:]): npz[k] for k in npz.files if k.startswith("op")}
                job.times = npz["times"].tolist() if "times" in npz.files else []


def run_caffe2(python: str, init_net: str, predict_net: str,
               inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    job = Caffe2Job(init_net, predict_net, inputs)
    run_caffe2_jobs(python, [job])
    if job.error:
        raise VerificationError(f"Caffe2 could not run the net: {job.error}")
    return job.outputs
