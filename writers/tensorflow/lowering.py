"""Common graph (ONNX semantics, the source's layout) -> lowered program (stored layouts).

The layout pass runs while lowering, node by node in graph order: every value keeps the
layout its producer gave it, and an op asks for another layout only when it needs one:

- convolutions, pooling, LRN and resizing need channels last (NHWC);
- element-wise ops, concatenation, split, slice, pad, reductions, batch norm and
  Transpose work on any permutation layout: their axes and constants are permuted
  instead (a Transpose costs nothing: the next op sees the same memory differently);
- Softmax needs its axis last; a Reshape keeps the memory when its factors allow it;
  Flatten feeding dense layers permutes the dense weights.

So a Transpose op is emitted only where an op needs a layout its input does not have,
and each one is recorded with the layer and the reason. Graph inputs and outputs of
rank 4 are NHWC (the source's layout with --keep-layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError, MigrateError
from migrate.core.graph import SOURCE_CLASS, SOURCE_PATH, static_shape
from migrate.writers.tensorflow import layout as lay
from migrate.writers.tensorflow.layout import Layout
from migrate.writers.tensorflow.program import Boundary, Op, Program, StoredView, Tensor
from migrate.writers.tensorflow.registry import lookup

_DTYPES = {
    ir.DataType.FLOAT: "float32", ir.DataType.DOUBLE: "float32", ir.DataType.INT64: "int64",
    ir.DataType.INT32: "int32", ir.DataType.BOOL: "bool", ir.DataType.UINT8: "uint8",
    ir.DataType.INT8: "int8", ir.DataType.FLOAT16: "float32",
}
# ops that compute each element from the same element of their input: any layout
# (even a permuted feature axis) passes through them unchanged
ELEMENTWISE_UNARY = {"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Floor",
                     "Ceil", "Round", "Elu", "LeakyRelu", "Softplus", "Clip", "Selu",
                     "Reciprocal", "Sin", "Cos", "Sign", "HardSigmoid", "Softsign",
                     "Identity", "Dropout", "Erf", "Not", "Cast", "ThresholdedRelu",
                     "HardSwish", "Mish", "Gelu"}

RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


@dataclass
class Stored:
    """A common-graph value as lowered: the stored tensor and how it holds the value."""

    tensor: Tensor
    layout: Layout


class Lowering:
    """State while lowering one graph; handed to every op lowering."""

    def __init__(self, model: ir.Model, *, keep_layout: bool = False,
                 optimize: bool = True) -> None:
        self.model = model
        self.keep_layout = keep_layout
        self.optimize = optimize
        self.program = Program()
        self.node: ir.Node | None = None
        self._env: dict[int, Stored] = {}
        self._names: set[str] = set()
        self._consts: dict[int, Tensor] = {}

    # -- names and provenance -------------------------------------------------------
    def unique(self, hint: str) -> str:
        base = hint or "t"
        name, k = base, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    @property
    def layer(self) -> str:
        return self.node.metadata_props.get(SOURCE_PATH, "") if self.node is not None else ""

    @property
    def layer_class(self) -> str:
        if self.node is None:
            return ""
        return self.node.metadata_props.get(SOURCE_CLASS, self.node.op_type)

    def where(self) -> str:
        if self.node is None:
            return "graph boundary"
        return f"{self.layer or self.node.name} ({self.layer_class})"

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.where()}: {message}")

    # -- tensors ----------------------------------------------------------------------
    def _hint(self, hint: str | None) -> str:
        base = self.layer or (self.node.name if self.node is not None else "") or "t"
        return f"{base}/{hint}" if hint else base

    def new_tensor(self, shape: Sequence[int], dtype: str = "float32",
                   hint: str | None = None) -> Tensor:
        return Tensor(self.unique(self._hint(hint)), tuple(int(d) for d in shape), dtype)

    def const(self, array: np.ndarray, hint: str = "const", role: str | None = None,
              data: bool = False) -> Tensor:
        """A constant tensor; with a role (kernel, bias, ...) it is a weight of the layer.
        Integer constants are int32 (LiteRT's shape, axis and index tensors) unless they
        are `data`: operands of arithmetic on int64 values keep their int64."""
        array = np.asarray(array)
        if array.dtype in (np.float64, np.float16):
            array = array.astype(np.float32)
        elif array.dtype == np.int64 and role is None and not data:
            array = array.astype(np.int32)
        return Tensor(self.unique(self._hint(hint)), tuple(array.shape), array.dtype.name,
                      data=np.asarray(array, order="C"), role=role,
                      layer=self.layer or None)

    def int32s(self, values: Sequence[int], hint: str = "shape") -> Tensor:
        return self.const(np.asarray(list(values), dtype=np.int32), hint)

    def emit(self, kind: str, inputs: Sequence[Tensor | None], shape: Sequence[int],
             dtype: str = "float32", hint: str | None = None, **attrs: Any) -> Tensor:
        """One op with one output of `shape` (stored)."""
        return self.emit_many(kind, inputs, [shape], dtype, hint, **attrs)[0]

    def emit_many(self, kind: str, inputs: Sequence[Tensor | None],
                  shapes: Sequence[Sequence[int]], dtype: str = "float32",
                  hint: str | None = None, **attrs: Any) -> list[Tensor]:
        outputs = [self.new_tensor(s, dtype, hint or kind.lower()) for s in shapes]
        self.program.ops.append(Op(kind, list(inputs), outputs, dict(attrs), self.layer,
                                   self.layer_class))
        return outputs

    def reshape(self, tensor: Tensor, shape: Sequence[int], hint: str = "reshape") -> Tensor:
        """The tensor with another stored shape (the same memory)."""
        shape = tuple(int(d) for d in shape)
        if tensor.shape == shape:
            return tensor
        if tensor.is_const:
            return self._apply(tensor, "reshape", shape, "")
        return self.emit("RESHAPE", [tensor, self.int32s(shape)], shape, tensor.dtype,
                         hint=hint, new_shape=shape)

    # -- values -----------------------------------------------------------------------
    @staticmethod
    def shape(value: ir.Value) -> tuple[int, ...]:
        return static_shape(value)

    @staticmethod
    def boundary_shape(value: ir.Value) -> tuple[int, ...]:
        """A graph output's shape, -1 where only the run knows the size (Compress)."""
        if value.shape is not None and value.shape.rank() and any(
                not isinstance(d, int) for d in value.shape):
            return tuple(d if isinstance(d, int) else -1 for d in value.shape)
        return static_shape(value)

    @staticmethod
    def const_of(value: ir.Value | None) -> np.ndarray | None:
        if value is None or value.const_value is None:
            return None
        return np.asarray(value.const_value.numpy())

    def require_const(self, value: ir.Value | None, what: str) -> np.ndarray:
        array = self.const_of(value)
        if array is None:
            raise self.error(f"{what} must be a constant for TensorFlow/LiteRT")
        return array

    def get(self, value: ir.Value) -> Stored:
        found = self._env.get(id(value))
        if found is not None:
            return found
        array = self.const_of(value)
        if array is None:
            raise self.error(f"value {value.name} is used before it is computed")
        tensor = self._consts.get(id(value))
        if tensor is None:
            tensor = self._consts[id(value)] = self.const(array, value.name, data=True)
        return Stored(tensor, Layout.identity(array.shape))

    def bind(self, value: ir.Value, tensor: Tensor, layout: Layout) -> None:
        self._env[id(value)] = Stored(tensor, layout)

    def bind_permuted(self, value: ir.Value, tensor: Tensor, perm: Sequence[int]) -> None:
        self.bind(value, tensor, Layout.permuted(self.shape(value), perm))

    def alias(self, value: ir.Value, source: ir.Value) -> None:
        self._env[id(value)] = self.get(source)

    # -- layouts ----------------------------------------------------------------------
    def perm_of(self, value: ir.Value) -> tuple[int, ...] | None:
        return self.get(value).layout.perm

    def convert(self, stored: Stored, target: Layout, stored_shape: Sequence[int] | None = None,
                why: str = "") -> Tensor:
        """The stored tensor re-laid out as `target` (reshape when only axes of size 1
        move; one transpose otherwise, recorded with `why`)."""
        if stored_shape is None:
            stored_shape = target.permuted_shape()
        steps = lay.convert_plan(stored.layout, stored.tensor.shape, target, stored_shape)
        if steps is None:  # atoms that do not match: through the source layout
            plain = Layout.identity(stored.layout.shape)
            middle = self.convert(stored, plain, why=why)
            steps = lay.convert_plan(plain, middle.shape, target, stored_shape)
            stored = Stored(middle, plain)
            assert steps is not None
        tensor = stored.tensor
        order = _last_axis_order(steps, tuple(stored_shape))
        if order is not None and not tensor.is_const:
            # only the channels change order (e.g. a channel shuffle): one GATHER of the
            # last axis instead of reshape-transpose-reshape
            tensor = self.reshape(tensor, stored_shape)
            return self.emit("GATHER", [tensor, self.const(order.astype(np.int32), "order")],
                             tuple(stored_shape), tensor.dtype, hint="shuffle",
                             axis=len(stored_shape) - 1,
                             reason=f"{self.where()}: {why or 'layout change'}")
        for kind, arg in steps:
            tensor = self._apply(tensor, kind, arg, why)
        return tensor

    def _apply(self, tensor: Tensor, kind: str, arg: tuple[int, ...], why: str) -> Tensor:
        if tensor.is_const:  # constants are re-laid out here, not at run time
            assert tensor.data is not None
            data = tensor.data.reshape(arg) if kind == "reshape" else tensor.data.transpose(arg)
            return Tensor(self.unique(tensor.name), tuple(data.shape), tensor.dtype,
                          np.asarray(data, order="C"), tensor.role, tensor.layer)
        if kind == "reshape":
            return self.reshape(tensor, arg)
        shape = tuple(tensor.shape[p] for p in arg)
        return self.emit("TRANSPOSE", [tensor, self.int32s(arg, "perm")], shape, tensor.dtype,
                         hint="transpose", perm=tuple(arg),
                         reason=f"{self.where()}: {why or 'layout change'}")

    def stored(self, value: ir.Value, perm: Sequence[int], why: str = "") -> Tensor:
        """The value's tensor in permutation layout `perm`."""
        found = self.get(value)
        target = Layout.permuted(found.layout.shape, perm)
        return self.convert(found, target, why=why)

    def channels_last(self, value: ir.Value, why: str = "") -> Tensor:
        rank = len(self.shape(value))
        return self.stored(value, lay.channels_last(rank),
                           why or f"{self.node.op_type if self.node else 'op'} needs channels "
                                  "last")

    def plain(self, value: ir.Value, why: str = "") -> Tensor:
        """The value in the source's own layout."""
        rank = len(self.shape(value))
        return self.stored(value, lay.identity(rank),
                           why or f"{self.node.op_type if self.node else 'op'} needs the "
                                  "source layout")

    def permutation(self, value: ir.Value, why: str = "") -> tuple[Tensor, tuple[int, ...]]:
        """The value in whatever permutation layout it has (identity if it has none)."""
        found = self.get(value)
        if found.layout.perm is not None and found.tensor.shape == \
                found.layout.permuted_shape():
            return found.tensor, found.layout.perm
        perm = lay.identity(len(found.layout.shape))
        if found.layout.perm is None:
            candidate = lay.as_permutation(found.layout)
            if candidate is not None:
                perm = candidate.perm
        return self.stored(value, perm, why), perm

    def preferred_perm(self, values: Sequence[ir.Value], rank: int) -> tuple[int, ...]:
        """The permutation most of these (non-constant) values already have."""
        votes: dict[tuple[int, ...], int] = {}
        for value in values:
            if self.const_of(value) is not None and id(value) not in self._env:
                continue
            perm = self.get(value).layout.perm
            if perm is not None and len(perm) == rank:
                votes[perm] = votes.get(perm, 0) + 1
        if not votes:
            return lay.identity(rank)
        return max(votes, key=lambda p: (votes[p], p == lay.channels_last(rank)))

    def conform(self, value: ir.Value, rank: int, perm: Sequence[int], why: str = "",
                broadcast: bool = True) -> Tensor:
        """The value broadcast to `rank` (leading 1s, numpy rules) in layout `perm`;
        constants lose their leading 1s when the op `broadcast`s (not Concat)."""
        array = self.const_of(value)
        if array is not None and id(value) not in self._env:
            full = array.reshape((1,) * (rank - array.ndim) + array.shape)
            stored = full.transpose(perm)
            while broadcast and stored.ndim > 1 and stored.shape[0] == 1:
                stored = stored[0]  # leading 1s broadcast anyway: smaller constants
            return self.const(stored, value.name, data=True)
        found = self.get(value)
        extra = rank - len(found.layout.shape)
        if extra:
            found = Stored(found.tensor, _expand(found.layout, extra))
        target = Layout.permuted(found.layout.shape, perm)
        return self.convert(found, target, why=why)

    def dense_only(self, value: ir.Value) -> bool:
        """Whether every use of `value` (through element-wise ops) is the input of a
        dense layer with constant weights, which can take its features in any order."""
        if value.is_graph_output():
            return False
        uses = list(value.uses())
        if not uses:
            return False
        for use in uses:
            node, index = use.node, use.idx
            if node.op_type in ELEMENTWISE_UNARY and index == 0:
                if not self.dense_only(node.outputs[0]):
                    return False
            elif node.op_type in RESHAPES and index == 0:
                # (features,) <-> (1, features): the features stay one stored axis
                before, after = self.shape(value), self.shape(node.outputs[0])
                if len(before) > 2 or len(after) > 2 or before[-1] != after[-1] \
                        or not self.dense_only(node.outputs[0]):
                    return False
            elif node.op_type == "Gemm" and index == 0:
                if node.attributes.get_int("transA", 0) or self.const_of(node.inputs[1]) is None:
                    return False
            elif node.op_type == "MatMul" and index == 0:
                b = self.const_of(node.inputs[1])
                if b is None or b.ndim != 2:
                    return False
            else:
                return False
        return True


def _last_axis_order(steps, target: tuple[int, ...]) -> np.ndarray | None:
    """When a reshape-transpose-reshape plan only reorders the last axis: for each
    position of the result's last axis, the position it comes from."""
    if [kind for kind, _ in steps] != ["reshape", "transpose", "reshape"]:
        return None
    blocks, perm = steps[0][1], steps[1][1]
    lead, product, k = int(np.prod(target[:-1])), 1, 0
    while k < len(blocks) and product < lead:
        product *= blocks[k]
        k += 1
    if product != lead or list(perm[:k]) != list(range(k)):
        return None
    trailing = blocks[k:]
    moved = [p - k for p in perm[k:]]
    if sorted(moved) != list(range(len(trailing))) or int(np.prod(trailing)) != target[-1]:
        return None
    return np.arange(int(np.prod(trailing))).reshape(trailing).transpose(moved).reshape(-1)


def _expand(layout: Layout, extra: int) -> Layout:
    """The same layout for the value with `extra` leading axes of size 1."""
    shape = (1,) * extra + layout.shape
    atoms = (1,) * extra + layout.atoms
    groups = tuple((i,) for i in range(extra)) + tuple(
        tuple(a + extra for a in g) for g in layout.groups)
    order = tuple(range(extra)) + tuple(o + extra for o in layout.order)
    return Layout(shape, atoms, groups, order)


def _view(name: str, stored: Stored) -> StoredView:
    atoms, order = lay.source_view(stored.layout)
    return StoredView(name, list(stored.layout.shape), atoms, order, list(stored.tensor.shape))


def _layout_label(perm: tuple[int, ...] | None, rank: int) -> str:
    if rank != 4:
        return ""
    return "NHWC" if perm == lay.channels_last(4) else "NCHW"


def _boundary_perm(rank: int, keep_layout: bool) -> tuple[int, ...]:
    if rank == 4 and not keep_layout:
        return lay.channels_last(4)
    return lay.identity(rank)


def lower(model: ir.Model, *, keep_layout: bool = False, optimize: bool = True) -> Program:
    """Lower the common graph; raises ConversionError naming the layer that fails."""
    import migrate.writers.tensorflow.converters  # noqa: F401  (registers every lowering)

    ctx = Lowering(model, keep_layout=keep_layout, optimize=optimize)
    program = ctx.program
    graph = model.graph
    for value in graph.inputs:
        shape = ctx.shape(value)
        dtype = _DTYPES.get(value.dtype, "float32")
        perm = _boundary_perm(len(shape), keep_layout)
        tensor = Tensor(ctx.unique(value.name), tuple(shape[p] for p in perm), dtype)
        program.inputs.append(tensor)
        ctx.bind_permuted(value, tensor, perm)
        program.input_boundaries.append(Boundary(
            value.name, _view(tensor.name, ctx.get(value)), _layout_label(perm, len(shape)),
            dtype))
    for node in graph:
        ctx.node = node
        convert = lookup(node.op_type) if not node.domain else None
        if convert is None:
            raise ctx.error(f"the {node.op_type} op has no TensorFlow/LiteRT lowering")
        try:
            convert(ctx, node)
        except MigrateError as exc:
            if ctx.where() not in exc.message:
                exc.message = f"{ctx.where()}: {exc.message}"
            raise
        except MemoryError:
            raise
        except Exception as exc:  # a case the op's lowering did not expect
            raise ctx.error(f"the TensorFlow/LiteRT writer failed on {node.op_type}: "
                            f"{type(exc).__name__}: {exc}"[:500]) from exc
        path = node.metadata_props.get(SOURCE_PATH)
        if path and node.outputs and id(node.outputs[0]) in ctx._env:
            found = ctx.get(node.outputs[0])
            program.layers[path] = _view(found.tensor.name, found)
    ctx.node = None
    taken: set[int] = {id(t) for t in program.inputs}
    for value in graph.outputs:
        shape = ctx.boundary_shape(value)
        perm = _boundary_perm(len(shape), keep_layout or min(shape) < 0)
        found = ctx.get(value)
        why = "graph output in the source layout" if keep_layout else "graph output layout"
        tensor = ctx.convert(found, Layout.permuted(shape, perm), why=why)
        if id(tensor) in taken or tensor.is_const:
            # every output is a tensor of its own, computed by an op
            tensor = ctx.emit("RESHAPE", [tensor, ctx.int32s(tensor.shape)], tensor.shape,
                              tensor.dtype, hint="output", new_shape=tensor.shape)
        taken.add(id(tensor))
        program.outputs.append(tensor)
        stored = Stored(tensor, Layout.permuted(shape, perm))
        program.output_boundaries.append(Boundary(
            value.name, _view(tensor.name, stored), _layout_label(perm, len(shape)),
            tensor.dtype))
    from migrate.writers.tensorflow.cleanup import clean

    clean(program, fuse_activations=optimize)
    return program
