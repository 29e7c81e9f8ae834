"""The unit of work of `migrate batch`: convert one model.

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
    from migrate.plugins import load_plugin_file

    for path in filter(None, os.environ.get("MIGRATE_PLUGINS", "").split(os.pathsep)):
        load_plugin_file(path)


def convert_one(job: dict[str, Any]) -> dict[str, Any]:
    """job: sources (paths), out_dir, stem, target, optimize, seed, input_shapes,
    verify, reference (npz path for a side-runtime target, verified by the driver)."""
    from migrate.core.errors import MigrateError, UnsupportedModulesError

    start = time.perf_counter()
    first = job["sources"][0]
    result: dict[str, Any] = {"source": first, "status": "failed", "error": None,
                              "error_kind": None, "unsupported": [], "layers": None,
                              "params": None, "outputs": {}, "verify_error": None,
                              "verify_note": None, "format": None}
    try:
        result.update(_convert(job))
        result["status"] = "converted"
    except UnsupportedModulesError as exc:
        result.update(error=str(exc), error_kind="unsupported",
                      unsupported=[[path, cls] for path, cls in exc.occurrences])
    except MigrateError as exc:
        result.update(error=str(exc.with_file(first)), error_kind=type(exc).__name__)
    except MemoryError:
        result.update(error=f"{first}: out of memory in the worker",
                      error_kind="out-of-memory")
    except Exception as exc:  # a bug of ours: record it, keep the batch going
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.update(error=f"{first}: internal error {type(exc).__name__}: {exc} "
                            f"({os.path.basename(last.filename)}:{last.lineno})",
                      error_kind="internal")
    result["seconds"] = time.perf_counter() - start
    return result


def _convert(job: dict[str, Any]) -> dict[str, Any]:
    from migrate.core.registry import RUNTIMES, WRITERS
    from migrate.pipeline import (
        ConvertOptions,
        convert_source,
        read_source,
        reference_run,
        verification_inputs,
    )
    from migrate.verify.compare import compare
    from migrate.verify.layerwise import run_files, runtime_missing

    options = ConvertOptions(target=job["target"], out_dir=job["out_dir"], verify=False,
                             optimize=job.get("optimize", True), stem=job.get("stem"),
                             input_shapes=job.get("input_shapes"), seed=job.get("seed", 0),
                             runtime_python=job.get("runtime_python") or {})
    sources = job["sources"] if len(job["sources"]) > 1 else job["sources"][0]
    summary = convert_source(sources, options)
    out: dict[str, Any] = {"layers": summary.layers, "params": summary.parameters,
                           "outputs": summary.outputs, "notes": summary.notes,
                           "format": summary.source_format}
    if not job.get("verify", True):
        return out
    # The source's own numbers on a fixed input (its runtime, else its graph)
    source = read_source(sources, options)
    inputs, _ = verification_inputs(source, options)
    reference, label, _ = reference_run(source, source.model, inputs, options)
    writer = WRITERS.get(job["target"])
    runtime = RUNTIMES.get(writer.runtime)
    if runtime.side:
        # side runtimes are run by the driver, many models per process
        os.makedirs(os.path.dirname(job["reference"]), exist_ok=True)
        tmp = job["reference"] + ".partial.npz"
        np.savez(tmp, **{f"in{i}": a for i, a in enumerate(inputs)},
                 **{f"out{i}": a for i, a in enumerate(reference.outputs)})
        os.replace(tmp, job["reference"])
        out["reference"] = job["reference"]
        return out
    why = runtime_missing(writer.runtime, options.pythons())
    if why is not None:
        out["verify_note"] = f"not verified: {why}"
        return out
    got = run_files(writer.runtime, summary.outputs, inputs, layers=False,
                    python=options.pythons())
    result = compare(got.outputs, reference.outputs)
    out["verify_error"] = result.max_abs
    out["verify_note"] = "ok" if result.passed else f"{result.describe()} vs {label}"
    out["verified"] = result.passed
    return out
