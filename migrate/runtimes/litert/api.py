"""LiteRT: runs a .tflite written by the tflite writer in the `ai-edge-litert` interpreter
(not TensorFlow's), through its `serving_default` signature.

Inputs arrive in the source's layout and are laid out as STEM.json says (NCHW ->
NHWC); outputs and layers are mapped back. Layer outputs come from a second
interpreter built with `experimental_preserve_all_tensors`, which keeps every
intermediate tensor readable after `invoke` (the outputs themselves come from the
ordinary interpreter, as a user runs it)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from collections.abc import Sequence

import numpy as np

from migrate.core.errors import UsageError, VerificationError
from migrate.core.formats import tensorflow as sidecar
from migrate.core.model import RunResult, RuntimeStatus

INSTALL_HINT = "pip install ai-edge-litert==2.3.0"


def status(python: str | None = None) -> RuntimeStatus:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return RuntimeStatus(False, "not installed", INSTALL_HINT)
    return RuntimeStatus(True, f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}")


def load_sidecar(path: str) -> dict:
    data = sidecar.read(path)
    if data is None:
        raise UsageError("not a sidecar written by torch7-migrate's TensorFlow writers",
                         file=path)
    return data


def _interpreter(path: str, preserve: bool = False, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    try:
        with warnings.catch_warnings(), sidecar.stderr_to_devnull():
            warnings.simplefilter("ignore")  # the "debugging only" note on preserve
            interpreter = Interpreter(model_path=path, num_threads=threads,
                                      experimental_preserve_all_tensors=preserve)
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise VerificationError(f"LiteRT cannot load the model: {exc}"[:600]) from None
    return interpreter


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    data = load_sidecar(files["json"])
    feeds = sidecar.stored_inputs(data, inputs)
    interpreter = _interpreter(files["tflite"])
    try:
        runner = interpreter.get_signature_runner(data.get("signature", "serving_default"))
        results = runner(**feeds)
    except (RuntimeError, ValueError) as exc:
        raise VerificationError(f"LiteRT failed to run the model: {exc}"[:600]) from None
    outputs = [sidecar.to_source(results[entry.get("key", entry["name"])], entry)
               for entry in data["outputs"]]
    if not layers:
        return RunResult(outputs)
    found, names = layer_outputs(files["tflite"], data, feeds)
    return RunResult(outputs, found, names)


def layer_outputs(path: str, data: dict, feeds: dict[str, np.ndarray]):
    """Every recorded layer's output, in the source's layout, from one preserving run."""
    interpreter = _interpreter(path, preserve=True)
    by_name = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    try:
        for entry in data["inputs"]:
            index = by_name[entry["tensor"]]
            interpreter.set_tensor(index, feeds[entry.get("key", entry["name"])])
        interpreter.invoke()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise VerificationError(f"LiteRT failed to run the model: {exc}"[:600]) from None
    found, names = {}, {}
    for path_, view in data["layers"].items():
        index = by_name.get(view["tensor"])
        if index is None:
            continue
        try:
            value = interpreter.get_tensor(index)
        except ValueError:  # a tensor the interpreter did not keep
            continue
        found[path_] = sidecar.to_source(value, view)
        names[path_] = view["tensor"]
    return found, names
