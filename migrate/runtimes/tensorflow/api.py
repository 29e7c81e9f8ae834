"""TensorFlow: runs a SavedModel written by the tf writer through `serving_default`.

Inputs arrive in the source's layout and are laid out as STEM.json says (NCHW ->
NHWC); outputs and layers are mapped back.

Layer outputs: the signature returns the model's outputs only, and the SavedModel
is not changed for verification. Instead a debug build of the saved graph is made
here: the GraphDef of the function the signature calls (`STEM.json: function`, as
restored from the SavedModel) is imported into a new function, fed the same inputs
and the SavedModel's own variables, with the tensor of every source layer (recorded
in STEM.json) as an extra output. Those values are computed by the saved ops
themselves, not by a rebuilt model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence

import numpy as np

from migrate.core.errors import UsageError, VerificationError
from migrate.core.formats import tensorflow as sidecar
from migrate.core.model import RunResult, RuntimeStatus

INSTALL_HINT = "pip install tensorflow-cpu==2.21.0"


def _version() -> str | None:
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def status(python: str | None = None) -> RuntimeStatus:
    # find_spec, not import: importing TensorFlow takes seconds
    if importlib.util.find_spec("tensorflow") is None:
        return RuntimeStatus(False, "not installed", INSTALL_HINT)
    return RuntimeStatus(True, f"TensorFlow {_version() or '(unknown version)'}")


def import_tensorflow():
    """TensorFlow, with its start-up chatter off unless the user asked for it."""
    sidecar.quiet_tensorflow()
    import tensorflow as tf

    return tf


def _load(path: str):
    tf = import_tensorflow()
    try:
        return tf.saved_model.load(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise VerificationError(f"TensorFlow cannot load the SavedModel: {exc}"[:600]) from None
    except tf.errors.OpError as exc:
        raise VerificationError(f"TensorFlow cannot load the SavedModel: {exc.message}"
                                [:600]) from None


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    data = sidecar.read(files["json"])
    if data is None:
        raise UsageError("not a sidecar written by torch7-migrate's TensorFlow writers",
                         file=files["json"])
    feeds = sidecar.stored_inputs(data, inputs)
    tf = import_tensorflow()
    loaded = _load(files["savedmodel"])
    try:
        signature = loaded.signatures[data.get("signature", "serving_default")]
        results = signature(**{key: tf.constant(array) for key, array in feeds.items()})
    except (KeyError, ValueError, TypeError) as exc:
        raise VerificationError(f"TensorFlow failed to run the signature: {exc}"[:600]) from None
    except tf.errors.OpError as exc:
        raise VerificationError(f"TensorFlow failed to run the model: {exc.message}"
                                [:600]) from None
    outputs = [sidecar.to_source(results[entry.get("key", entry["name"])].numpy(), entry)
               for entry in data["outputs"]]
    if not layers:
        return RunResult(outputs)
    found, names = layer_outputs(loaded, data, feeds)
    return RunResult(outputs, found, names)


def layer_outputs(loaded, data: dict, feeds: dict[str, np.ndarray]):
    """Every recorded layer's output from a debug build of the saved function's graph."""
    tf = import_tensorflow()
    function = getattr(loaded, data.get("function", "serve"), None)
    concrete = getattr(function, "concrete_functions", None)
    if not concrete:
        return {}, {}
    body = concrete[0]
    graph_def = body.graph.as_graph_def()
    known = {f"{op.name}:{k}" for op in body.graph.get_operations()
             for k in range(len(op.outputs))}
    wanted = {path: view["tensor"] for path, view in data["layers"].items()
              if view["tensor"] in known}
    names = list(dict.fromkeys(wanted.values()))
    placeholders = [t.name for t in body.inputs]
    arguments = [feeds[entry.get("key", entry["name"])] for entry in data["inputs"]]
    handles = list(body.captured_inputs)

    def debug(*args):
        mapping = dict(zip(placeholders, args, strict=True))
        return tf.graph_util.import_graph_def(graph_def, input_map=mapping,
                                              return_elements=names, name="debug")

    specs = [tf.TensorSpec(a.shape, tf.as_dtype(a.dtype)) for a in arguments]
    specs += [tf.TensorSpec([], tf.resource)] * len(handles)
    try:
        wrapped = tf.compat.v1.wrap_function(debug, specs)
        values = wrapped(*[tf.constant(a) for a in arguments], *handles)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"TensorFlow failed to trace the layers: {exc}"[:600]) from None
    except tf.errors.OpError as exc:
        raise VerificationError(f"TensorFlow failed to run the layers: {exc.message}"
                                [:600]) from None
    by_name = {name: v.numpy() for name, v in zip(names, values, strict=True)}
    found = {path: sidecar.to_source(by_name[name], data["layers"][path])
             for path, name in wanted.items()}
    return found, dict(wanted)
