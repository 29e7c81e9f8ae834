"""The unit of work of `migrate batch`: convert one model file.

Runs in a local worker process or on a Dask worker, so it takes and returns plain
dicts, never raises (every failure becomes a result), and touches nothing but the
model's own output folder and its reference file.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import numpy as np

# Memory a local worker may use before its allocations fail (MemoryError, reported
# as this model's failure) instead of the machine's OOM killer ending the batch.
DEFAULT_WORKER_MEMORY = 8 << 30


def init_worker(max_bytes: int) -> None:
    """Initializer of local worker processes: memory limit, then plugins."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    except (ImportError, ValueError, OSError):  # not available: run unlimited
        pass
    from migrate.plugins import load_installed_plugins, load_plugin_file

    load_installed_plugins()
    for path in filter(None, os.environ.get("MIGRATE_PLUGINS", "").split(os.pathsep)):
        load_plugin_file(path)


def convert_one(job: dict[str, Any]) -> dict[str, Any]:
    """job: source, out_dir, target, optimize, reference (npz path to write), seed."""
    from migrate.errors import MigrateError, UnsupportedModulesError

    start = time.perf_counter()
    result: dict[str, Any] = {"source": job["source"], "status": "failed", "error": None,
                              "error_kind": None, "unsupported": [], "layers": None,
                              "params": None, "outputs": {}, "verify_error": None,
                              "verify_note": None}
    try:
        result.update(_convert(job))
        result["status"] = "converted"
    except UnsupportedModulesError as exc:
        result.update(error=str(exc), error_kind="unsupported",
                      unsupported=[[path, cls] for path, cls in exc.occurrences])
    except MigrateError as exc:
        result.update(error=str(exc), error_kind=type(exc).__name__)
    except MemoryError:
        result.update(error=f"{job['source']}: out of memory in the worker",
                      error_kind="out-of-memory")
    except Exception as exc:  # a bug of ours: record it, keep the batch going
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.update(error=f"{job['source']}: internal error {type(exc).__name__}: {exc} "
                            f"({os.path.basename(last.filename)}:{last.lineno})",
                      error_kind="internal")
    result["seconds"] = time.perf_counter() - start
    return result


def _convert(job: dict[str, Any]) -> dict[str, Any]:
    from migrate.graph import static_shape
    from migrate.onnx_runtime import run_onnx
    from migrate.pipeline import ConvertOptions, convert_file, load_source
    from migrate.verify import random_inputs

    options = ConvertOptions(target=job["target"], out_dir=job["out_dir"], verify=False,
                             optimize=job.get("optimize", True), stem=job.get("stem"),
                             input_shapes=job.get("input_shapes"))
    summary = convert_file(job["source"], options)
    out: dict[str, Any] = {"layers": summary.modules, "params": summary.parameters,
                           "outputs": summary.outputs, "notes": summary.notes}
    # The source's own numbers on a fixed input, kept to verify the written files
    # (Caffe2 files are run by the driver, in one Caffe2 process for many models).
    reference = load_source(job["source"], options)[0].model
    inputs = random_inputs([static_shape(v) for v in reference.graph.inputs], job["seed"])
    expected = run_onnx(reference, inputs)
    if job["target"] == "onnx":
        from migrate.verify import compare

        result = compare(run_onnx(summary.outputs["onnx"], inputs), expected)
        out["verify_error"] = result.max_abs
        out["verify_note"] = "ok" if result.passed else result.describe()
    else:
        os.makedirs(os.path.dirname(job["reference"]), exist_ok=True)
        tmp = job["reference"] + ".partial.npz"
        np.savez(tmp, **{f"in{i}": a for i, a in enumerate(inputs)},
                 **{f"out{i}": a for i, a in enumerate(expected)})
        os.replace(tmp, job["reference"])
    return out
