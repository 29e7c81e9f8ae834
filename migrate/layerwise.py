"""Layer-by-layer comparison of a source model and its conversion.

The reference is the common graph run in onnxruntime with every source module's
output exposed; the candidate is the written model run in its real runtime
(Caffe2 side runtime, or onnxruntime for .onnx) with the corresponding blobs
fetched. Each pair is compared as is (shapes checked, nothing sorted).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
import onnx_ir as ir

from migrate.caffe2_side import Caffe2Job, find_caffe2_python, run_caffe2_jobs
from migrate.errors import UsageError, VerificationError
from migrate.graph import SOURCE_CLASS, SOURCE_PATH, to_proto
from migrate.onnx_runtime import run_onnx
from migrate.verify import Comparison, compare
from writers.caffe2.caffe2_pb2 import NetDef


@dataclass
class LayerRow:
    path: str
    cls: str
    reference: str  # value name in the common graph
    converted: str | None  # blob / value name in the written model
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
    runtime: str
    executed: bool
    layers: list[LayerRow] = field(default_factory=list)
    outputs: Comparison | None = None
    skipped: str | None = None
    first_divergence: LayerRow | None = None
    output_differences: list[float] = field(default_factory=list)  # |a - b| of final outputs

    def to_dict(self) -> dict:
        data = asdict(self)
        data["first_divergence"] = self.first_divergence.label if self.first_divergence else None
        data.pop("output_differences")
        return data


def module_values(model: ir.Model) -> list[tuple[str, str, ir.Value]]:
    """(module path, class, its output value) for every module that made nodes,
    in the order the graph computes them; a module's output is its last node's."""
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


def caffe2_ops_by_module(predict_net: NetDef) -> dict[str, tuple[int, str]]:
    """Module path -> (index, output blob) of the last op carrying it in debug_info."""
    ops: dict[str, tuple[int, str]] = {}
    for i, op in enumerate(predict_net.op):
        if op.debug_info and op.output:
            ops[op.debug_info.rsplit(" (", 1)[0]] = (i, op.output[0])
    return ops


def _load_onnx(path: str) -> onnx.ModelProto:
    try:
        return onnx.load(path)
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror or exc}", file=path) from None
    except Exception:  # protobuf's DecodeError and friends
        raise UsageError("not an ONNX model (it does not parse as ModelProto)",
                         file=path) from None


def _onnx_values_by_module(proto: onnx.ModelProto) -> dict[str, str]:
    """Module path -> output of the last node tagged with it in a written .onnx file."""
    found: dict[str, str] = {}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        if SOURCE_PATH in meta and node.output:
            found[meta[SOURCE_PATH]] = node.output[0]
    return found


def _with_outputs(model_proto: onnx.ModelProto, names: Sequence[str]) -> bytes:
    """The model with extra graph outputs, so a runtime returns intermediate values."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model_proto)
    existing = {o.name for o in proto.graph.output}
    for name in names:
        if name not in existing:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            existing.add(name)
    return proto.SerializeToString()


def _run_onnx_values(proto: onnx.ModelProto, inputs, names) -> dict[str, np.ndarray]:
    payload = _with_outputs(proto, names)
    with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as fh:
        fh.write(payload)
    try:
        outs = run_onnx(fh.name, inputs)
    finally:
        os.unlink(fh.name)
    order = [o.name for o in proto.graph.output]
    order += [n for n in names if n not in order]
    return dict(zip(order, outs, strict=True))


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


def run_layerwise(
    model: ir.Model,
    written: dict[str, str],
    inputs: Sequence[np.ndarray],
    atol: float,
    rtol: float,
    caffe2_python: str | None = None,
) -> LayerwiseResult:
    """Compare every module's output between the common graph and the written files."""
    proto = to_proto(model)
    modules = module_values(model)
    names = [v.name for _, _, v in modules]
    reference = _run_onnx_values(proto, inputs, names)
    ref_outputs = [reference[v.name] for v in model.graph.outputs]

    if "onnx" in written:
        runtime = "onnxruntime (written .onnx)"
        written_proto = _load_onnx(written["onnx"])
        mapping = _onnx_values_by_module(written_proto)
        values = _run_onnx_values(written_proto, inputs, sorted(set(mapping.values())))
        candidate = {path: values[name] for path, name in mapping.items()}
        actual_outputs = [values[o.name] for o in written_proto.graph.output]
    else:
        python = find_caffe2_python(caffe2_python)
        runtime = "Caffe2 (real runtime)"
        if python is None:
            return LayerwiseResult(
                runtime, executed=False,
                layers=[LayerRow(p, c, v.name, None, list(reference[v.name].shape))
                        for p, c, v in modules],
                skipped="Caffe2 side runtime not found (tools/provision-caffe2.sh or "
                        "--caffe2-python): the Caffe2 files were NOT executed")
        predict = NetDef.FromString(open(written["predict_net"], "rb").read())
        ops = caffe2_ops_by_module(predict)
        # ops run one by one so that blobs later overwritten in place are seen
        job = Caffe2Job(written["init_net"], written["predict_net"], inputs,
                        trace=sorted(i for i, _ in ops.values()))
        run_caffe2_jobs(python, [job])
        if job.error:
            raise VerificationError(f"Caffe2 could not run the net: {job.error}")
        mapping = {path: blob for path, (_, blob) in ops.items()}
        candidate = {path: job.traced[i] for path, (i, _) in ops.items() if i in job.traced}
        actual_outputs = job.outputs

    result = LayerwiseResult(runtime, executed=True)
    for path, cls, value in modules:
        row = LayerRow(path, cls, value.name, mapping.get(path),
                       list(reference[value.name].shape))
        got = candidate.get(path)
        if got is None:
            row.note = "no op of its own in the converted model (folded into the next layer)"
        else:
            for key, val in layer_stats(got, reference[value.name], atol, rtol).items():
                setattr(row, key, val)
            if row.passed is False and result.first_divergence is None:
                result.first_divergence = row
        result.layers.append(row)
    result.outputs = compare(actual_outputs, ref_outputs, atol, rtol)
    result.output_differences = [
        float(d) for a, b in zip(actual_outputs, ref_outputs, strict=False)
        if np.asarray(a).size == np.asarray(b).size
        for d in np.abs(np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel())
    ]
    return result


def format_table(result: LayerwiseResult, atol: float, rtol: float) -> str:
    """The comparison as a plain-text table for the terminal."""
    lines = [f"layer-by-layer: {result.runtime} vs onnxruntime reference"]
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
        lines.append(f"first divergence: {r.label} (blob {r.converted}): max abs {r.max_abs:.3g}"
                     f" exceeds atol={atol:g} rtol={rtol:g}")
    else:
        lines.append(f"every layer within atol={atol:g} rtol={rtol:g}")
    return "\n".join(lines)
