"""Genuine BVLC Caffe (pycaffe, CPU, CPython 3.9 from Debian 11), run as a side process.

There is no Caffe for Python 3.11: `provision.sh` (shipped beside this file, run by
`migrate runtimes install caffe`) unpacks Debian 11's build of Caffe and its libraries
into a private folder. `runner.py` runs inside that interpreter.

Files: {"net": definition (text prototxt or binary NetParameter), "weights": caffemodel}.
Layer keys: the source path from the provenance comments our writer puts before each
layer (`# source: PATH (CLASS)`), else the Caffe layer name (the key the Caffe reader
gives an original model's layers).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import numpy as np

from migrate.core.errors import MigrateError, VerificationError
from migrate.core.formats.caffe import layer_sources
from migrate.core.model import RunResult, RuntimeStatus
from migrate.core.sniff import read_head, text_of
from migrate.runtimes.caffe.side import (
    DEFAULT_HOME,
    HOME_VAR,
    CaffeJob,
    find_caffe_python,
    run_caffe_jobs,
)

PROVISION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "provision.sh")
INSTALL_HINT = "migrate runtimes install caffe (about 400 MB of disk)"
MAX_PROTOTXT_BYTES = 256 << 20  # provenance comments are read from text definitions only


def status(python: str | None = None) -> RuntimeStatus:
    found = find_caffe_python(python)
    if found is None:
        return RuntimeStatus(False, "not provisioned", INSTALL_HINT)
    return RuntimeStatus(True, f"BVLC Caffe 1.0.0 (Debian 11 build, CPU), {found}")


def install(target: str | None = None) -> None:
    """Provision the side runtime (Debian 12 x86_64, root; ~30 s and ~100 MB download)."""
    args = ["bash", PROVISION] + ([target] if target else [])
    env = dict(os.environ, **{HOME_VAR: os.environ.get(HOME_VAR, DEFAULT_HOME)})
    if subprocess.run(args, env=env).returncode != 0:
        raise MigrateError("provisioning the Caffe runtime failed (see the messages above)")


def _python(python: str | None) -> str:
    found = find_caffe_python(python)
    if found is None:
        raise VerificationError(f"the Caffe side runtime is not installed: {INSTALL_HINT}")
    return found


def _is_binary(path: str) -> bool:
    return text_of(read_head(path, 4096).head) is None


def _layer_keys(path: str) -> dict[str, str]:
    """Caffe layer name -> source path, from the definition's provenance comments."""
    if _is_binary(path) or os.path.getsize(path) > MAX_PROTOTXT_BYTES:
        return {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        return {name: source for name, (source, _) in layer_sources(fh.read()).items()}


def _job(files: dict[str, str], inputs: Sequence[np.ndarray], layers: bool) -> CaffeJob:
    net = files["net"]
    return CaffeJob(net, files.get("weights"), [np.asarray(a) for a in inputs],
                    binary=_is_binary(net), layers=layers)


def _result(job: CaffeJob, keys: dict[str, str]) -> RunResult:
    result = RunResult(job.outputs)
    for i, name in enumerate(job.layer_names):
        if i in job.traced:
            key = keys.get(name, name)
            # a source layer written as several Caffe layers: its output is the last one's
            result.layers[key] = job.traced[i]
            result.tensor_names[key] = job.layer_tops[i]
    return result


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    job = _job(files, inputs, layers)
    run_caffe_jobs(_python(python), [job])
    if job.error:
        raise VerificationError(f"Caffe could not run the net: {job.error}")
    return _result(job, _layer_keys(files["net"]) if layers else {})


def run_many(jobs: Sequence[tuple[dict[str, str], Sequence[np.ndarray]]],
             python: str | None = None, *, layers: bool = False) -> list[RunResult | str]:
    """Several nets in one Caffe process (importing pycaffe takes ~1 s): each result, or
    the error text of a net that failed."""
    caffe_jobs = [_job(files, inputs, layers) for files, inputs in jobs]
    run_caffe_jobs(_python(python), caffe_jobs)
    return [job.error if job.error else
            _result(job, _layer_keys(files["net"]) if layers else {})
            for job, (files, _) in zip(caffe_jobs, jobs, strict=True)]
