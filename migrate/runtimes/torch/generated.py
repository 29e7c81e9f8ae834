"""Run a module the PyTorch writer generated (STEM.py + STEM.safetensors + STEM.json) in
PyTorch itself, as a user would: the file imported from its folder, `Model()` with
`load_state_dict(safetensors.torch.load_file(...), strict=True)`, `eval()`,
`torch.inference_mode()`. (Tests also run the files in a fresh interpreter without this
project, `Model()` built for real.)

Per-layer outputs: the JSON's layer map gives, for each source layer, the line of
`forward` (and the variable, or the tuple item) that computes its output. Forward hooks
would only see submodules, not the functional lines (`torch.cat`, `x += x1`, slicing), so
the module is traced with torch.fx, each graph node is tagged with the line of forward
that created it, and the graph is run by an fx Interpreter that keeps a copy of each
mapped node's value the moment it is computed (a later in-place ReLU cannot change it).
The outputs themselves come from calling the module, exactly the code the user runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from migrate.core.errors import UsageError, VerificationError
from migrate.core.model import RunResult

MAX_META_BYTES = 64 << 20


def read_meta(path: str) -> dict:
    try:
        if os.path.getsize(path) > MAX_META_BYTES:
            raise UsageError("is too large for the JSON of a generated module", file=path)
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the module's JSON: {exc}"[:300], file=path) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("inputs"), list):
        raise UsageError("is not the JSON of a module the PyTorch writer generated", file=path)
    return meta


def import_generated(path: str) -> Any:
    """Import STEM.py from its folder without touching sys.path or sys.modules."""
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"migrate_generated_{digest}", path)
    if spec is None or spec.loader is None:
        raise UsageError("cannot be imported as a Python module", file=path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise VerificationError(f"importing the generated module failed: "
                                f"{type(exc).__name__}: {exc}"[:500]) from None
    if not hasattr(module, "Model"):
        raise UsageError("defines no class Model", file=path)
    return module


def load_model(files: dict[str, str]) -> Any:
    """Model() with its weights, in evaluation mode."""
    import torch
    from safetensors.torch import load_file

    module = import_generated(files["code"])
    # built on the meta device and given the loaded tensors (as the file's load_model
    # does): no time spent initializing weights that are replaced at once
    with torch.device("meta"):
        model = module.Model()
    try:
        model.load_state_dict(load_file(files["weights"]), strict=True, assign=True)
    except Exception as exc:  # missing/unexpected keys, shape mismatches, a bad file
        raise VerificationError(f"loading {os.path.basename(files['weights'])} into the "
                                f"generated Model failed: {exc}"[:600]) from None
    return model.eval()


def _tensors(meta: dict, inputs: Sequence[np.ndarray]) -> list:
    import torch

    specs = meta["inputs"]
    if len(specs) != len(inputs):
        raise UsageError(f"the model takes {len(specs)} input(s) "
                         f"({', '.join(str(s.get('name')) for s in specs)}); {len(inputs)} given")
    tensors = []
    for spec, array in zip(specs, inputs, strict=True):
        array = np.asarray(array)
        want = list(spec.get("shape", []))
        free = spec.get("batch") == "free"
        shape = list(array.shape)
        if len(shape) != len(want) or (shape[1:] if free else shape) != (want[1:] if free
                                                                          else want):
            raise UsageError(f"input '{spec.get('name')}' has shape "
                             f"{'x'.join(map(str, shape))}; the model expects "
                             f"{'x'.join(map(str, want))}")
        dtype = np.dtype(spec.get("dtype", "float32"))
        tensors.append(torch.from_numpy(np.array(array, dtype=dtype, order="C")))
    return tensors


def _numpy(value: Any) -> list[np.ndarray]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value.detach().cpu().numpy().copy()]
    return [v.detach().cpu().numpy().copy() for v in value]


def run(files: dict[str, str], inputs: Sequence[np.ndarray], *, layers: bool = False
        ) -> RunResult:
    import torch

    meta = read_meta(files["meta"])
    model = load_model(files)
    tensors = _tensors(meta, inputs)
    try:
        with torch.inference_mode():
            outputs = _numpy(model(*tensors))
    except Exception as exc:
        raise VerificationError(f"the generated module failed to run: "
                                f"{type(exc).__name__}: {exc}"[:500]) from None
    if not layers or not _code_unchanged(files["code"], meta):
        return RunResult(outputs)  # an edited file: the layer map's lines may be wrong
    values, names = layer_values(model, meta.get("layers") or {}, tensors)
    return RunResult(outputs, values, names)


# -- per-layer values ----------------------------------------------------------------------

def _code_unchanged(path: str, meta: dict) -> bool:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest() == meta.get("code_sha256")


def _traced(model: Any):
    """The module's fx graph, each node tagged with the line of forward that made it."""
    import torch

    forward_code = type(model).forward.__code__

    class LineTracer(torch.fx.Tracer):
        def create_node(self, *args, **kwargs):
            node = super().create_node(*args, **kwargs)
            frame = inspect.currentframe()
            while frame is not None and frame.f_code is not forward_code:
                frame = frame.f_back
            if frame is not None:
                node.meta["forward_line"] = frame.f_lineno
            return node

    graph = LineTracer().trace(model)
    return torch.fx.GraphModule(model, graph)


def _layer_nodes(graph_module, layers: dict[str, dict]) -> dict[str, Any]:
    """Source layer -> the fx node holding its output."""
    by_line: dict[int, list] = {}
    for node in graph_module.graph.nodes:
        line = node.meta.get("forward_line")
        if line is not None and node.op not in ("placeholder", "output"):
            by_line.setdefault(line, []).append(node)
    found = {}
    for path, entry in layers.items():
        first = entry.get("line", -1)
        # a statement wrapped over several lines: its nodes carry any of those lines
        nodes = [n for line in range(first, entry.get("end_line", first) + 1)
                 for n in by_line.get(line, [])]
        if not nodes:
            continue
        item = entry.get("item")
        if item is None:
            found[path] = nodes[-1]
            continue
        for node in nodes:  # `a, b = torch.split(...)`: the getitem of that element
            if node.op == "call_function" and node.target.__name__ == "getitem" \
                    and len(node.args) == 2 and node.args[1] == item:
                found[path] = node
                break
    return found


def layer_values(model: Any, layers: dict[str, dict], tensors: list
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import torch

    inputs = {entry["input"]: path for path, entry in layers.items() if "input" in entry}
    try:
        graph_module = _traced(model)
    except Exception:  # e.g. a shape read from an input's values (x.tolist()) stops fx:
        return {}, {}  # the outputs are still compared, the layers show as not observable
    wanted = _layer_nodes(graph_module, {p: e for p, e in layers.items() if "line" in e})
    owners: dict[Any, list[str]] = {}
    for path, node in wanted.items():
        owners.setdefault(node, []).append(path)
    values: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            for path in owners.get(node, ()):
                if isinstance(result, torch.Tensor):
                    values[path] = result.detach().cpu().numpy().copy()
                    entry = layers[path]
                    names[path] = entry.get("module") or f"line {entry.get('line')}"
            return result

    with torch.inference_mode():
        Recorder(graph_module).run(*tensors)
    for index, path in inputs.items():
        values[path] = tensors[index].numpy().copy()
        names[path] = "input"
    return values, names
