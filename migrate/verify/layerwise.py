"""Layer-by-layer comparison of a source model and its conversion.

The reference is the source model run in its own real runtime (ONNX in onnxruntime,
Caffe2 in Caffe2, Caffe in Caffe, ...) or, for sources no maintained framework runs
(Torch7), the common graph run in onnxruntime; or the outputs the original framework
recorded (--expected). The candidate is the written model run in its target's real
runtime. Both give each source layer's output under the layer's path (the key every
reader, writer and runtime agree on); each pair is compared as is (shapes checked,
nothing sorted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx_ir as ir

from migrate.core.errors import VerificationError
from migrate.core.graph import SOURCE_CLASS, SOURCE_PATH
from migrate.core.model import RunResult
from migrate.core.registry import RUNTIMES
from migrate.verify.compare import Comparison, compare


@dataclass
class LayerRow:
    path: str
    cls: str
    reference: str  # value name in the reference run
    converted: str | None  # tensor / blob name in the written model
    shape: list[int]
    max_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    passed: bool | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.path} ({self.cls})"


@dataclass
class LayerwiseResult:
    runtime: str  # what ran the converted files, e.g. "Caffe2 (real runtime)"
    executed: bool
    reference: str = "the source graph in onnxruntime"  # what it was compared with
    layers: list[LayerRow] = field(default_factory=list)
    outputs: Comparison | None = None
    skipped: str | None = None
    first_divergence: LayerRow | None = None
    output_differences: list[float] = field(default_factory=list)  # |a - b| of final outputs
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.executed and self.outputs is not None and self.outputs.passed

    def to_dict(self) -> dict:
        data = asdict(self)
        data["first_divergence"] = self.first_divergence.label if self.first_divergence else None
        data.pop("output_differences")
        return data


def module_values(model: ir.Model) -> list[tuple[str, str, ir.Value]]:
    """(layer path, class, its output value) for every source layer that made nodes,
    in the order the graph computes them; a layer's output is its last node's."""
    last: dict[str, tuple[str, ir.Value]] = {}
    order: list[str] = []
    for node in model.graph:
        path = node.metadata_props.get(SOURCE_PATH)
        if not path:
            continue
        if path not in last:
            order.append(path)
        last[path] = (node.metadata_props.get(SOURCE_CLASS, ""), node.outputs[0])
    return [(p, last[p][0], last[p][1]) for p in order]


def layer_stats(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> dict:
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return dict(passed=False, note=f"shape {list(a.shape)}, expected {list(b.shape)}")
    if a.size == 0:
        return dict(max_abs=0.0, max_rel=0.0, cosine=1.0, passed=True)
    diff = np.abs(a - b)
    max_abs = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
    scale = float(np.max(np.abs(b))) or 1.0
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(np.dot(a.ravel(), b.ravel()) / norms) if norms else 1.0
    passed = bool(np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))
    return dict(max_abs=max_abs, max_rel=max_abs / scale, cosine=cosine, passed=passed)


def runtime_label(name: str) -> str:
    spec = RUNTIMES.get(name)
    label = spec.label if spec is not None else name
    return f"{label} (real runtime)"


def run_files(runtime: str, files: dict[str, str], inputs: Sequence[np.ndarray], *,
              layers: bool, python: dict[str, str] | None = None) -> RunResult:
    spec = RUNTIMES.get(runtime)
    if spec is None:
        raise VerificationError(f"no runtime named {runtime}")
    return spec.load().run(files, inputs, layers=layers, python=(python or {}).get(runtime))


def runtime_missing(runtime: str, python: dict[str, str] | None = None) -> str | None:
    """Why a runtime cannot run here (with how to install it), or None when it can."""
    spec = RUNTIMES.get(runtime)
    if spec is None:
        return f"no runtime named {runtime}"
    try:  # an interpreter the user named that does not work is an error (raised)
        state = spec.load().status(**({"python": python[runtime]}
                                       if python and runtime in python else {}))
    except ImportError as exc:
        return f"{spec.label} is not installed ({exc.name}): {spec.install_hint}"
    if state.installed:
        return None
    return f"{spec.label} is not installed: {state.install_hint or spec.install_hint}"


def compare_runs(graph: ir.Model, reference: RunResult, candidate: RunResult, *,
                 runtime: str, reference_label: str, atol: float, rtol: float
                 ) -> LayerwiseResult:
    """Compare every layer and the outputs of two runs of the same model."""
    result = LayerwiseResult(runtime, executed=True, reference=reference_label)
    for path, cls, value in module_values(graph):
        expected = reference.layers.get(path)
        got = candidate.layers.get(path)
        shape = list(np.shape(expected)) if expected is not None else list(
            value.shape or []) if value.shape is not None else []
        row = LayerRow(path, cls, reference.tensor_names.get(path, value.name),
                       candidate.tensor_names.get(path), [int(d) if isinstance(d, int) else -1
                                                          for d in shape])
        if expected is None:
            row.note = "not observable in the reference run"
        elif got is None:
            row.note = "no op of its own in the converted model (folded into a neighbour)"
        else:
            for key, val in layer_stats(got, expected, atol, rtol).items():
                setattr(row, key, val)
            if row.passed is False and result.first_divergence is None:
                result.first_divergence = row
        result.layers.append(row)
    actual, wanted = candidate.outputs, reference.outputs
    result.outputs = compare(actual, wanted, atol, rtol)
    result.output_differences = [
        float(d) for a, b in zip(actual, wanted, strict=False)
        if np.asarray(a).size == np.asarray(b).size
        for d in np.abs(np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel())
    ]
    return result


def format_table(result: LayerwiseResult, atol: float, rtol: float) -> str:
    """The comparison as a plain-text table for the terminal."""
    lines = [f"layer-by-layer: {result.runtime} vs {result.reference}"]
    if not result.executed:
        lines.append(f"  NOT RUN: {result.skipped}")
        return "\n".join(lines)
    width = max([len(r.label) for r in result.layers] + [5])
    lines.append(f"  {'layer':<{width}}  {'blob':<16} {'shape':<16} {'max abs':>9} "
                 f"{'max rel':>9} {'cosine':>9}")
    for r in result.layers:
        shape = "x".join(map(str, r.shape))
        if r.max_abs is None:
            stats = f"{'-':>9} {'-':>9} {'-':>9}  {r.note}"
        else:
            mark = "" if r.passed else "  <-- exceeds tolerance"
            stats = f"{r.max_abs:9.2e} {r.max_rel:9.2e} {r.cosine:9.6f}{mark}"
        lines.append(f"  {r.label:<{width}}  {(r.converted or '-'):<16} {shape:<16} {stats}")
    if result.first_divergence:
        r = result.first_divergence
        what = r.note if r.max_abs is None else \
            f"max abs {r.max_abs:.3g} exceeds atol={atol:g} rtol={rtol:g}"
        lines.append(f"first divergence: {r.label} (blob {r.converted}): {what}")
    elif result.layers:
        lines.append(f"every layer within atol={atol:g} rtol={rtol:g}")
    return "\n".join(lines)
