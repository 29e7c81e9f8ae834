"""Run a PyTorch ExportedProgram (`.pt2`, torch.export.save) in PyTorch itself, with
every layer's output under the key the PyTorch reader gives that layer
(`migrate.core.formats.torch_export.layer_keys`).

The program runs as saved (no decomposition): its graph is interpreted node by node
with its parameters, buffers and constants fed as the lifted inputs they are, so
the output of each layer's last node can be kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from migrate.core.errors import UsageError, VerificationError
from migrate.core.formats.torch_export import layer_keys, load_exported
from migrate.core.model import DEFAULT_MAX_BYTES, RunResult


def lifted_arguments(program: Any, inputs: Sequence[Any]) -> list[Any]:
    """The graph's placeholders in order: parameters, buffers, constants, then inputs."""
    from torch.export.graph_signature import InputKind

    specs = program.graph_signature.input_specs
    wanted = sum(spec.kind == InputKind.USER_INPUT for spec in specs)
    if wanted != len(inputs):
        raise UsageError(f"the program takes {wanted} input(s); {len(inputs)} given")
    user = list(inputs)
    args = []
    for spec in specs:
        if spec.kind == InputKind.USER_INPUT:
            args.append(user.pop(0))
        elif spec.kind == InputKind.PARAMETER:
            args.append(program.state_dict[spec.target])
        elif spec.kind == InputKind.BUFFER:
            table = program.state_dict if spec.persistent else program.constants
            args.append(table[spec.target])
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            args.append(program.constants[spec.target])
        else:
            raise VerificationError(f"the program takes a {spec.kind.name.lower()} input, "
                                    "which is not run here")
    return args


def run_program(program: Any, inputs: Sequence[np.ndarray], *, layers: bool) -> RunResult:
    """Outputs (and each layer's output) of an ExportedProgram for numpy inputs."""
    import torch
    from torch.export.graph_signature import OutputKind

    graph_module = program.graph_module
    keys = layer_keys(graph_module.graph.nodes) if layers else {}
    seen: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            found = keys.get(node.name)
            if found is not None and isinstance(result, torch.Tensor):
                # a layer's output is its last node's: later nodes overwrite
                seen[found[0]] = result.detach().numpy().copy()
                names[found[0]] = node.name
            return result

    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]
    try:
        with torch.no_grad():
            flat = Recorder(graph_module).run(*lifted_arguments(program, tensors))
    except (UsageError, VerificationError):
        raise
    except Exception as exc:  # an op that fails on these inputs
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VerificationError(f"PyTorch could not run the program: {text}"[:500]) from None
    flat = flat if isinstance(flat, list | tuple) else [flat]
    outputs = [value.detach().numpy().copy()
               for spec, value in zip(program.graph_signature.output_specs, flat, strict=True)
               if spec.kind == OutputKind.USER_OUTPUT and isinstance(value, torch.Tensor)]
    return RunResult(outputs, seen, names)


def run(path: str, inputs: Sequence[np.ndarray], *, layers: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES) -> RunResult:
    """Load a `.pt2` (checked: nothing unpickled but tensors) and run it."""
    return run_program(load_exported(path, max_bytes), inputs, layers=layers)
