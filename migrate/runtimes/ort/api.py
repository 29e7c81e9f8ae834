"""ONNX Runtime: runs .onnx files, and the common graph itself as the reference for
sources that have no runtime of their own (Torch7)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnx

from migrate.core.errors import UsageError, VerificationError
from migrate.core.formats.onnx import layer_key
from migrate.core.model import RunResult, RuntimeStatus


def status() -> RuntimeStatus:
    try:
        import onnxruntime
    except ImportError:
        return RuntimeStatus(False, "not installed", "pip install onnxruntime")
    return RuntimeStatus(True, f"onnxruntime {onnxruntime.__version__}")


def _session(payload: bytes | str):
    import onnxruntime as ort  # imported when needed: conversions without --verify skip it

    options = ort.SessionOptions()
    # Run the graph as written: no fusions that could hide (or add) differences.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # failures are reported as our own errors, once
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise VerificationError(f"onnxruntime cannot load the model: {exc}"[:600]) from None


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
              "tensor(float16)": np.float16, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _feeds(session, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    declared = session.get_inputs()
    if len(declared) != len(inputs):
        raise UsageError(f"the model takes {len(declared)} input(s) "
                         f"({', '.join(i.name for i in declared)}); {len(inputs)} given")
    feeds = {}
    for spec, array in zip(declared, inputs, strict=True):
        array = np.asarray(array)
        want = [d if isinstance(d, int) else None for d in spec.shape]
        if len(want) != array.ndim or any(w is not None and w != a
                                          for w, a in zip(want, array.shape, strict=True)):
            shown = "x".join("?" if w is None else str(w) for w in want)
            raise UsageError(f"input '{spec.name}' has shape {'x'.join(map(str, array.shape))};"
                             f" the model expects {shown}")
        feeds[spec.name] = np.ascontiguousarray(array, dtype=_ORT_TYPES.get(spec.type,
                                                                            np.float32))
    return feeds


def run_session(payload: bytes | str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    session = _session(payload)
    feeds = _feeds(session, inputs)
    try:
        outputs = session.run(None, feeds)
    except Exception as exc:  # e.g. an allocation failure on an absurd tensor
        message = str(exc).split("Status Message:")[-1].strip()
        raise VerificationError(f"onnxruntime failed to run the model: {message}"[:600]) from None
    return [np.asarray(o) for o in outputs]


def layer_outputs(proto: onnx.ModelProto) -> dict[str, str]:
    """Layer path -> the value its last node computes (the layer's output)."""
    found: dict[str, str] = {}
    for i, node in enumerate(proto.graph.node):
        if node.output and node.output[0]:
            found[layer_key(node, i)[0]] = node.output[0]
    return found


def run_proto(proto: onnx.ModelProto, inputs: Sequence[np.ndarray], layers: bool = False
              ) -> RunResult:
    """Run a model; with `layers`, every layer's output is returned too."""
    if not layers:
        return RunResult(run_session(proto.SerializeToString(), inputs))
    mapping = layer_outputs(proto)
    extended = onnx.ModelProto()
    extended.CopyFrom(proto)
    existing = [o.name for o in extended.graph.output]
    extra = [n for n in dict.fromkeys(mapping.values()) if n not in existing]
    for name in extra:
        extended.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    values = run_session(extended.SerializeToString(), inputs)
    by_name = dict(zip(existing + extra, values, strict=True))
    return RunResult(values[:len(existing)],
                     {path: by_name[name] for path, name in mapping.items()},
                     dict(mapping))


def load_proto(path: str) -> onnx.ModelProto:
    try:
        return onnx.load(path, load_external_data=True)
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror or exc}", file=path) from None
    except Exception:  # protobuf's DecodeError and friends
        raise UsageError("not an ONNX model (it does not parse as ModelProto)",
                         file=path) from None


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False,
        python: str | None = None) -> RunResult:
    (path,) = files.values()
    if not layers:
        return RunResult(run_session(path, inputs))
    return run_proto(load_proto(path), inputs, layers=True)


def run_model(model, inputs: Sequence[np.ndarray], layers: bool = False) -> RunResult:
    """Run the common graph (an onnx_ir Model) itself."""
    from migrate.core.graph import to_proto

    return run_proto(to_proto(model), inputs, layers)


def run_onnx(source, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of a .onnx file or a common graph for positional inputs."""
    if isinstance(source, str | os.PathLike):
        return run_session(os.fspath(source), inputs)
    return run_model(source, inputs).outputs


__all__ = ["run", "run_model", "run_onnx", "run_proto", "status"]
