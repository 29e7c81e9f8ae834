"""Peephole clean-up of a lowered program.

- A reshape of a reshape is one reshape; a reshape to the shape it already has goes.
- With optimization on, ReLU / ReLU6 / ReLU(-1, 1) after a convolution, dense layer,
  pooling or add/multiply becomes that op's fused activation (one kernel pass less).
- Ops whose results nobody uses go.

Layer records (where each source layer's output lives, for layer-by-layer reports)
follow a reshape that is removed to its input (the same memory); the output of a layer
whose activation was fused disappears, as in any optimized graph.
"""

from __future__ import annotations

from migrate.writers.tensorflow.program import Op, Program, Tensor

_FUSIBLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "SUB",
            "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE_CONV"}
_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}


def clean(program: Program, *, fuse_activations: bool) -> None:
    changed = True
    while changed:
        changed = _merge_reshapes(program)
        if fuse_activations:
            changed = _fuse_activations(program) or changed
        changed = _drop_unused(program) or changed


def _consumers(program: Program) -> dict[int, list[Op]]:
    found: dict[int, list[Op]] = {}
    for op in program.ops:
        for t in op.inputs:
            if t is not None:
                found.setdefault(id(t), []).append(op)
    return found


def _replace_input(program: Program, old: Tensor, new: Tensor) -> None:
    for op in program.ops:
        op.inputs = [new if t is old else t for t in op.inputs]


def _retarget_layers(program: Program, old: Tensor, new: Tensor | None) -> None:
    for path in list(program.layers):
        view = program.layers[path]
        if view.tensor != old.name:
            continue
        if new is None:
            del program.layers[path]
        else:
            view.tensor = new.name
            view.stored_shape = list(new.shape)


def _merge_reshapes(program: Program) -> bool:
    outputs = {id(t) for t in program.outputs}
    producers = {id(t): op for op in program.ops for t in op.outputs}
    changed = False
    for op in list(program.ops):
        if op.kind != "RESHAPE" or id(op.outputs[0]) in outputs:
            continue
        source = op.inputs[0]
        assert source is not None
        out = op.outputs[0]
        if source.shape == out.shape and not source.is_const:
            # a reshape that changes nothing: its users read its input
            _replace_input(program, out, source)
            _retarget_layers(program, out, source)
            program.ops.remove(op)
            changed = True
            continue
        before = producers.get(id(source))
        if before is not None and before.kind == "RESHAPE":
            op.inputs[0] = before.inputs[0]
            changed = True
    return changed


def _fuse_activations(program: Program) -> bool:
    outputs = {id(t) for t in program.outputs}
    consumers = _consumers(program)
    producers = {id(t): op for op in program.ops for t in op.outputs}
    changed = False
    for op in list(program.ops):
        if op.kind not in _ACTIVATIONS:
            continue
        source = op.inputs[0]
        assert source is not None
        producer = producers.get(id(source))
        if (producer is None or producer.kind not in _FUSIBLE
                or producer.attrs.get("activation", "NONE") != "NONE"
                or id(source) in outputs or len(consumers.get(id(source), [])) != 1):
            continue
        producer.attrs["activation"] = _ACTIVATIONS[op.kind]
        producer.outputs = list(op.outputs)
        _retarget_layers(program, source, None)
        program.ops.remove(op)
        changed = True
    return changed


def _drop_unused(program: Program) -> bool:
    outputs = {id(t) for t in program.outputs}
    consumers = _consumers(program)
    changed = False
    for op in reversed(list(program.ops)):
        if any(id(t) in outputs or consumers.get(id(t)) for t in op.outputs):
            continue
        program.ops.remove(op)
        for t in op.outputs:  # a reshape's input holds the same memory
            _retarget_layers(program, t, op.inputs[0] if op.kind == "RESHAPE" else None)
        for t in op.inputs:
            if t is not None and consumers.get(id(t)):
                consumers[id(t)].remove(op)
        changed = True
    return changed
