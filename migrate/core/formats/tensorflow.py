"""TensorFlow SavedModels and LiteRT .tflite files as our writers make them: the sidecar
STEM.json that the writer and the runtimes share.

The sidecar says what a runtime needs beside the model to be compared with the source:
the layout of every input and output (and how to turn the source's arrays into it),
where each source layer's output lives, and the transposes left (and why). A stored
tensor holds a source value as

    stored = reshape(transpose(reshape(source, atoms), order), stored_shape)

(a plain permutation for NCHW <-> NHWC; see writers/tensorflow/layout.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import numpy as np

FORMAT = "torch7-migrate/tensorflow-sidecar"
VERSION = 1
_MAX_BYTES = 256 << 20  # a sidecar lists layers, never weights


def quiet_tensorflow() -> None:
    """Before importing TensorFlow: its C++ log lines stay off unless asked for
    (TF_CPP_MIN_LOG_LEVEL=0, 1 or 2): a failing op reaches us as an exception with the
    same message, and notes such as oneDNN's "DT_BOOL only on platforms with AVX-512"
    are logged at error level. TensorFlow 2.21 prints its oneDNN start-up note through
    absl before it reads that variable, so the first import runs with the process's
    stderr on /dev/null (a failing import still raises its exception)."""
    asked = os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if asked or "tensorflow" in sys.modules:
        return
    with stderr_to_devnull():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def stderr_to_devnull():
    """File descriptor 2 on /dev/null: C++ loggers write there directly."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read(path: str) -> dict | None:
    """The sidecar's content, or None when the file is not one of ours."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > _MAX_BYTES:
            return None
        with open(path, "rb") as fh:
            if fh.read(1) != b"{":
                return None
            fh.seek(0)
            data = json.load(fh)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def model_path(sidecar_path: str, data: dict) -> str:
    """The model the sidecar describes (a file or folder beside it)."""
    name = os.path.basename(str(data.get("model", "")))
    return os.path.join(os.path.dirname(os.path.abspath(sidecar_path)), name)


def find(paths: list[str], target: str) -> tuple[str, dict] | None:
    """Among the given files, or beside them, a sidecar written for `target`."""
    candidates = list(paths)
    for path in paths:
        stem = os.path.basename(path.rstrip("/"))
        for suffix in (".tflite", "_savedmodel"):
            if stem.endswith(suffix):
                candidates.append(os.path.join(os.path.dirname(os.path.abspath(path)),
                                               stem[:-len(suffix)] + ".json"))
    for path in candidates:
        data = read(path)
        if data is not None and data.get("target") == target:
            return path, data
    return None


def to_stored(array: np.ndarray, view: dict) -> np.ndarray:
    """A source-layout array in the layout the model takes."""
    atoms = [int(a) for a in view["atoms"]]
    order = [int(o) for o in view["order"]]
    stored = np.asarray(array).reshape(atoms).transpose(order)
    return np.ascontiguousarray(stored.reshape([int(d) for d in view["stored_shape"]]))


def to_source(array: np.ndarray, view: dict) -> np.ndarray:
    """A stored tensor back in the source's layout and shape."""
    atoms = [int(a) for a in view["atoms"]]
    order = [int(o) for o in view["order"]]
    inverse = np.argsort(order)
    stored_atoms = [atoms[o] for o in order]
    source = np.asarray(array).reshape(stored_atoms).transpose(inverse)
    return source.reshape([int(d) for d in view["shape"]])


def stored_inputs(data: dict, inputs) -> dict[str, np.ndarray]:
    """Source-layout arrays -> {signature input key: array in the model's layout}."""
    from migrate.core.errors import UsageError

    declared = data["inputs"]
    if len(declared) != len(inputs):
        raise UsageError(f"the model takes {len(declared)} input(s) "
                         f"({', '.join(d['name'] for d in declared)}); {len(inputs)} given")
    feeds = {}
    for entry, array in zip(declared, inputs, strict=True):
        array = np.asarray(array)
        if list(array.shape) != [int(d) for d in entry["shape"]]:
            raise UsageError(f"input '{entry['name']}' has shape "
                             f"{'x'.join(map(str, array.shape))}; the model expects "
                             f"{'x'.join(map(str, entry['shape']))}")
        key = entry.get("key", entry["name"])
        feeds[key] = to_stored(array, entry).astype(entry["dtype"])
    return feeds
