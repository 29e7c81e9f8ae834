"""The genuine Caffe2 runtime (torch 1.10.2 on CPython 3.9), run as a side process.

There is no Caffe2 for Python 3.11: `provision.sh` (shipped beside this file, run by
`migrate runtimes install caffe2`) unpacks CPython 3.9 from Debian 11 packages and
installs the last wheel that carried Caffe2. `runner.py` runs inside that interpreter.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import numpy as np

from migrate.core.errors import MigrateError, VerificationError
from migrate.core.model import RunResult, RuntimeStatus
from migrate.runtimes.caffe2.side import (
    DEFAULT_HOME,
    Caffe2Job,
    find_caffe2_python,
    run_caffe2_jobs,
)

PROVISION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "provision.sh")
INSTALL_HINT = "migrate runtimes install caffe2 (about 2 GB of disk)"


def status(python: str | None = None) -> RuntimeStatus:
    found = find_caffe2_python(python)
    if found is None:
        return RuntimeStatus(False, "not provisioned", INSTALL_HINT)
    return RuntimeStatus(True, f"Caffe2 from torch 1.10.2, {found}")


def install(target: str | None = None) -> None:
    """Provision the side runtime (Debian 12 x86_64, root; ~30 s and ~880 MB download)."""
    args = ["bash", PROVISION] + ([target] if target else [])
    env = dict(os.environ, MIGRATE_CAFFE2_HOME=os.environ.get("MIGRATE_CAFFE2_HOME",
                                                              DEFAULT_HOME))
    if subprocess.run(args, env=env).returncode != 0:
        raise MigrateError("provisioning the Caffe2 runtime failed (see the messages above)")


def _python(python: str | None) -> str:
    found = find_caffe2_python(python)
    if found is None:
        raise VerificationError(f"the Caffe2 side runtime is not installed: {INSTALL_HINT}")
    return found


def layer_ops(predict_path: str) -> dict[str, tuple[int, str]]:
    """Layer path -> (index, output blob) of the last op of that layer."""
    from migrate.core.formats.caffe2 import layer_key, load_netdef

    ops: dict[str, tuple[int, str]] = {}
    for i, op in enumerate(load_netdef(predict_path).op):
        if op.output:
            ops[layer_key(i, op)[0]] = (i, op.output[0])
    return ops


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    ops = layer_ops(files["predict_net"]) if layers else {}
    # ops run one by one so that blobs later overwritten in place are seen
    job = Caffe2Job(files["init_net"], files["predict_net"], inputs,
                    trace=sorted(i for i, _ in ops.values()))
    run_caffe2_jobs(_python(python), [job])
    if job.error:
        raise VerificationError(f"Caffe2 could not run the net: {job.error}")
    return RunResult(job.outputs,
                     {path: job.traced[i] for path, (i, _) in ops.items() if i in job.traced},
                     {path: blob for path, (_, blob) in ops.items()})


def run_many(jobs: Sequence[tuple[dict[str, str], Sequence[np.ndarray]]],
             python: str | None = None) -> list[RunResult | str]:
    """Several nets in one Caffe2 process (importing Caffe2 takes ~2 s): each result,
    or the error text of a net that failed."""
    c2jobs = [Caffe2Job(files["init_net"], files["predict_net"], inputs)
              for files, inputs in jobs]
    run_caffe2_jobs(_python(python), c2jobs)
    return [job.error if job.error else RunResult(job.outputs) for job in c2jobs]
