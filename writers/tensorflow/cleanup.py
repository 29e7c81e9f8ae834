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
    _fuse_gelu(program)
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


def _scalar_const(t: Tensor | None, value: float) -> bool:
    return (t is not None and t.data is not None and t.data.size == 1
            and abs(float(t.data.reshape(())) - value) < 1e-6)


def _other(op: Op, t: Tensor) -> Tensor | None:
    """The other operand of a binary op that has `t` as one operand."""
    a, b = op.inputs[0], op.inputs[1]
    return b if a is t else a if b is t else None


def _fuse_gelu(program: Program) -> None:
    """x * 0.5 * (1 + erf(x / sqrt(2))), as exporters spell GELU (ONNX 17 has no Gelu),
    -> LiteRT's GELU builtin (exact erf form): LiteRT has no erf."""
    producers = {id(t): op for op in program.ops for t in op.outputs}
    consumers = _consumers(program)
    outputs = {id(t) for t in program.outputs}

    def only_use(t: Tensor) -> Op | None:
        found = consumers.get(id(t), [])
        return found[0] if len(found) == 1 and id(t) not in outputs else None

    for erf in [op for op in program.ops if op.kind == "ERF"]:
        scaled = producers.get(id(erf.inputs[0]))
        if scaled is None or scaled.kind not in ("MUL", "DIV"):
            continue
        x = scaled.inputs[0]
        factor = scaled.inputs[1]
        if not (_scalar_const(factor, 0.7071067811865476) and scaled.kind == "MUL"
                or _scalar_const(factor, 1.4142135623730951) and scaled.kind == "DIV"):
            continue
        add = only_use(erf.outputs[0])
        if add is None or add.kind != "ADD" or not _scalar_const(
                _other(add, erf.outputs[0]), 1.0):
            continue
        final = only_use(add.outputs[0])
        if final is None or final.kind != "MUL":
            continue
        half = producers.get(id(_other(final, add.outputs[0])))
        if half is None or half.kind != "MUL" or x not in half.inputs or \
                not _scalar_const(_other(half, x), 0.5):
            continue
        gelu = Op("GELU", [x], final.outputs, {"approximate": False}, final.layer, final.cls)
        program.ops[program.ops.index(final)] = gelu
        for op in (add, erf):
            program.ops.remove(op)
        for op in (scaled, half):  # unless something else reads them
            if len(consumers.get(id(op.outputs[0]), [])) <= 1 and \
                    id(op.outputs[0]) not in outputs:
                program.ops.remove(op)
        for t in (erf.outputs[0], add.outputs[0], scaled.outputs[0], half.outputs[0]):
            _retarget_layers(program, t, None)
