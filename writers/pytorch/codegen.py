"""The state of one code generation: the generated module's lines, its state_dict and
where every value of the common graph lives in `forward`.

Op converters (converters/*.py, one file per op family) get a `CodeGen` and the node,
declare submodules or parameters, and emit one statement per node with `emit`. The
code generator decides the variable names:

- a statement's output reuses the variable of an input that dies there (`x = f(x)`),
  other inputs that die there are deleted (`del x1`), so no activation outlives its last
  use, and names of dead variables are handed out again (x, x1, x2, ... as a person
  would name them);
- in-place operations (`nn.ReLU(inplace=True)`, `x += x1`) are allowed only on values
  nothing else can see any more (not a graph input or output, no live view of the same
  storage) and that come from ops whose gradient does not need their output, so the
  module stays trainable;
- whether a value's first dimension is the batch is tracked, so reshapes keep the batch
  free (`torch.flatten(x, 1)`, `x.reshape(-1, 4, 28)`) where the source allows it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.core.graph import SOURCE_CLASS, SOURCE_PATH, static_shape
from migrate.writers.pytorch.names import MODULE_ATTRIBUTES, RESERVED, Names, layer_name

# Ops whose output may be modified in place by the next op: their output is a fresh
# tensor (not a view) and autograd does not keep it for their backward pass.
INPLACE_SAFE_PRODUCERS = frozenset({
    "Conv", "ConvTranspose", "BatchNormalization", "Gemm", "MatMul", "Add", "Sub", "Sum",
    "Concat", "MaxPool", "AveragePool", "Pad", "Resize", "InstanceNormalization",
})
_MODULE_CALL = re.compile(r"^self\.(\w+)\(")
GRAPH_OUTPUT = 1 << 60  # "last use" of graph outputs: never dead


@dataclass
class Located:
    """Where a value of the graph lives in forward."""

    var: str | None = None
    statement: int | None = None  # index into CodeGen.body
    item: int | None = None  # element of a tuple assignment
    input: int | None = None  # a graph input, by position


@dataclass
class Statement:
    code: str
    comment: str = ""
    module: str | None = None  # the submodule the statement calls, if any


@dataclass
class Declaration:
    code: str
    comment: str = ""


@dataclass
class CodeGen:
    model: ir.Model
    input_names: list[str]
    batched_inputs: list[bool]
    init: list[Declaration] = field(default_factory=list)
    body: list[Statement] = field(default_factory=list)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    free_inputs: list[bool] = field(default_factory=list)  # set once generation is done

    def __post_init__(self) -> None:
        self.nodes: list[ir.Node] = list(self.model.graph)
        self.attributes = Names(MODULE_ATTRIBUTES | RESERVED)
        self.variables = Names(RESERVED | {"_"})
        self.node: ir.Node | None = None
        self.index = -1
        self._loc: dict[int, Located] = {}
        self._var_values: dict[str, list[ir.Value]] = {}
        self._free: list[str] = []  # generated variable names free for reuse
        self._generated: set[str] = set()
        self._storage: dict[int, int] = {}
        self._storage_members: dict[int, list[ir.Value]] = {}
        self._batched: set[int] = set()
        self._params: dict[int, str] = {}
        self._temps: list[str] = []
        # facts converters leave for the consumers of a value (e.g. "plane indices")
        self.tags: dict[int, str] = {}
        self.batch_broken = False
        self._owners: dict[tuple, str] = {}
        self._const_origin: dict[int, tuple[np.ndarray, ir.Value]] = {}
        self.ties: list[tuple[str, str]] = []  # (parameter, the one it is tied to)
        self._last_use = self._last_uses()
        self.arguments: list[str] = []
        for k, value in enumerate(self.model.graph.inputs):
            name = self.variables.take(self.input_names[k])
            self.arguments.append(name)
            self._bind(value, Located(var=name, input=k))
            self._new_storage(value)
            if self.batched_inputs[k]:
                self._batched.add(id(value))

    # -- liveness ---------------------------------------------------------------------
    def _last_uses(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for k, node in enumerate(self.nodes):
            for value in node.inputs:
                if value is not None:
                    last[id(value)] = k
        for value in self.model.graph.outputs:
            last[id(value)] = GRAPH_OUTPUT
        return last

    def last_use(self, value: ir.Value) -> int:
        return self._last_use.get(id(value), -1)

    def dies_here(self, value: ir.Value) -> bool:
        return self.last_use(value) == self.index

    def can_modify(self, value: ir.Value) -> bool:
        """May the current node overwrite `value` in place?"""
        producer = value.producer()
        if (producer is None or producer.op_type not in INPLACE_SAFE_PRODUCERS
                or value.const_value is not None or not self.dies_here(value)):
            return False
        loc = self._loc.get(id(value))
        if loc is None or loc.var is None:
            return False
        # another value held in the same variable, or a view of the same storage, that is
        # still needed (or is another input of this node) forbids it
        others = [v for v in self._var_values.get(loc.var, []) if v is not value]
        others += [v for v in self._storage_members.get(self._storage.get(id(value), -1), [])
                   if v is not value]
        return all(self.last_use(v) < self.index for v in others)

    # -- facts about values -----------------------------------------------------------
    @staticmethod
    def shape(value: ir.Value) -> tuple[int, ...]:
        return static_shape(value)

    @staticmethod
    def const(value: ir.Value | None) -> np.ndarray | None:
        if value is None or value.const_value is None:
            return None
        return np.asarray(value.const_value.numpy())

    def need_const(self, value: ir.Value | None, what: str) -> np.ndarray:
        array = self.const(value)
        if array is None:
            raise ConversionError(f"its {what} must be a constant to be written as PyTorch "
                                  "code (it is computed at run time here)")
        self._const_origin[id(array)] = (array, value)  # (kept alive: ids stay unique)
        return array

    def batched(self, value: ir.Value) -> bool:
        return id(value) in self._batched

    def path(self) -> str:
        assert self.node is not None
        return self.node.metadata_props.get(SOURCE_PATH, "") or self.node.name or "layer"

    def origin(self) -> str:
        assert self.node is not None
        path = self.node.metadata_props.get(SOURCE_PATH)
        cls = self.node.metadata_props.get(SOURCE_CLASS)
        if not path:
            return ""
        return f"{path} ({cls})" if cls else path

    # -- declarations in __init__ -----------------------------------------------------
    def _attribute(self, kind: str) -> str:
        assert self.node is not None
        return self.attributes.take(layer_name(self.path(), kind, self.node.op_type))

    def module(self, kind: str, constructor: str,
               params: dict[str, np.ndarray] | None = None) -> str:
        """Declare a submodule for the current node (`self.conv_1 = nn.Conv2d(...)`) and
        its state_dict entries; returns `self.NAME`."""
        name = self._attribute(kind)
        self.init.append(Declaration(f"self.{name} = {constructor}", self.origin()))
        for key, array in (params or {}).items():
            self.state[f"{name}.{key}"] = array
            owner = self._owner(array, f"{name}.{key}")
            if owner is not None:  # one tensor of the source used by two layers: tied
                self.init.append(Declaration(f"self.{name}.{key} = self.{owner}",
                                             f"shared with {owner} in the source"))
                self.ties.append((f"{name}.{key}", owner))
        return f"self.{name}"

    def _owner(self, array: np.ndarray, qualified: str) -> str | None:
        """The parameter already made from the same graph constant (a weight the source
        shares between layers, not just equal values), else None after recording this
        one. The array is traced back through its views to what need_const returned."""
        value, found = None, array
        while found is not None and value is None:
            origin = self._const_origin.get(id(found))
            if origin is not None and origin[0] is found:
                value = origin[1]
            found = found.base if isinstance(found.base, np.ndarray) else None
        if value is None or array.size <= 1:
            return None
        key = (id(value), array.shape)
        owner = self._owners.get(key)
        if owner is None:
            self._owners[key] = qualified
        return owner

    def parameter(self, kind: str, array: np.ndarray) -> str:
        """A tensor the model holds outside any layer (nn.Parameter for floating-point
        values, a buffer for integers); returns `self.NAME`."""
        name = self._attribute(kind)
        shape = ", ".join(str(d) for d in array.shape)
        dtype = torch_dtype(array.dtype)
        dims = f"({shape},)" if array.ndim == 1 else f"({shape})"
        if array.dtype.kind == "f":
            extra = "" if dtype == "torch.float32" else f", dtype={dtype}"
            code = f"self.{name} = nn.Parameter(torch.empty({dims}{extra}))"
        else:
            code = f'self.register_buffer("{name}", torch.empty({dims}, dtype={dtype}))'
        self.init.append(Declaration(code, self.origin()))
        self.state[name] = array
        return f"self.{name}"

    def tensor(self, value: ir.Value, kind: str) -> str:
        """A constant input used as a tensor: its parameter (declared on first use)."""
        ref = self._params.get(id(value))
        if ref is None:
            ref = self.parameter(kind, self.need_const(value, "tensor input"))
            self._params[id(value)] = ref
        return ref

    # -- expressions --------------------------------------------------------------------
    def ref(self, value: ir.Value, kind: str = "const") -> str:
        """The Python expression for a value: its variable, a literal for a scalar
        constant, else the parameter holding the constant."""
        loc = self._loc.get(id(value))
        if loc is not None and loc.var is not None:
            return loc.var
        array = self.const(value)
        if array is None:
            raise ConversionError(f"value {value.name} is used before it is computed")
        if array.size == 1 and array.ndim == 0:
            return literal(array.reshape(()).item(), array.dtype)
        return self.tensor(value, kind)

    # -- statements ---------------------------------------------------------------------
    def begin(self, index: int, node: ir.Node) -> None:
        self.index, self.node, self._temps = index, node, []

    def temporary(self, expr: str, replacing: ir.Value | None = None) -> str:
        """A statement computing an intermediate of the current node (e.g. the explicit
        padding before a convolution); returns its variable. The variable of `replacing`
        is reused when that value dies at this node and is read only here."""
        name = None
        if replacing is not None:
            loc = self._loc.get(id(replacing))
            uses = sum(v is replacing for v in self.node.inputs)
            if (loc is not None and loc.var in self._generated and uses == 1
                    and loc.var in self._dying_variables()):
                name = loc.var
        if name is None:
            name = self._fresh()
            self._temps.append(name)
        self.body.append(Statement(f"{name} = {expr}", ""))
        return name

    def emit(self, expr: str, outputs: Sequence[ir.Value] | None = None, *,
             batched: bool | None = None, view_of: ir.Value | None = None,
             inplace_of: ir.Value | None = None, comment: bool = False) -> None:
        """One statement computing the current node's outputs.

        `batched`: whether the output's first dimension is the batch (default: when the
        first input's is and the size is unchanged); `view_of`: the output may share the
        input's storage; `inplace_of`: the statement overwrote that input (`x += y`), whose
        variable the output keeps; `comment`: name the source layer after the statement
        (for lines that call no named submodule)."""
        assert self.node is not None
        outs = list(self.node.outputs if outputs is None else outputs)
        dying = self._dying_variables()
        if inplace_of is not None:
            loc = self._loc[id(inplace_of)]
            assert loc.var is not None
            targets = [loc.var]
            self._release(loc.var, dying)
        else:
            targets = self._targets(outs, dying)
        if all(t == "_" for t in targets):
            self._delete(dying)
            return
        lhs = ", ".join(targets) if len(targets) > 1 else targets[0]
        module = _MODULE_CALL.match(expr)
        code = expr if inplace_of is not None else f"{lhs} = {expr}"
        self.body.append(Statement(code, self.origin() if comment else "",
                                   module.group(1) if module else None))
        statement = len(self.body) - 1
        for k, (value, target) in enumerate(zip(outs, targets, strict=True)):
            if target == "_":
                continue
            self._bind(value, Located(target, statement, k if len(outs) > 1 else None))
            if view_of is not None or inplace_of is not None:
                self._share_storage(value, view_of if view_of is not None else inplace_of)
            else:
                self._new_storage(value)
        self._mark_batched(outs, batched)
        self._delete([v for v in dying if v not in targets])

    def alias(self, output: ir.Value, value: ir.Value) -> None:
        """The node computes nothing: its output is `value` itself (Identity, Dropout in
        evaluation, a reshape to the same shape)."""
        loc = self._loc.get(id(value))
        if loc is None:  # a constant passed through
            self.emit(self.ref(value))
            return
        self._bind(output, loc)
        self._share_storage(output, value)
        if self.batched(value):
            self._batched.add(id(output))
        dying = self._dying_variables()
        self._delete(dying)

    # -- internals ------------------------------------------------------------------------
    def _bind(self, value: ir.Value, loc: Located) -> None:
        self._loc[id(value)] = loc
        if loc.var is not None:
            self._var_values.setdefault(loc.var, []).append(value)

    def located(self, value: ir.Value) -> Located | None:
        return self._loc.get(id(value))

    def _new_storage(self, value: ir.Value) -> None:
        self._storage[id(value)] = id(value)
        self._storage_members[id(value)] = [value]

    def _share_storage(self, value: ir.Value, base: ir.Value) -> None:
        group = self._storage.get(id(base), id(base))
        self._storage[id(value)] = group
        self._storage_members.setdefault(group, []).append(value)

    def _mark_batched(self, outs: list[ir.Value], batched: bool | None) -> None:
        if batched is None:
            first = next((v for v in self.node.inputs if v is not None and v.const_value is None),
                         None)
            batched = False
            if first is not None and self.batched(first) and outs and outs[0].shape is not None:
                out_shape, in_shape = outs[0].shape, first.shape
                batched = (len(out_shape) > 0 and in_shape is not None and len(in_shape) > 0
                           and out_shape[0] == in_shape[0])
        if batched:
            for value in outs:
                self._batched.add(id(value))
        elif any(v is not None and self.batched(v) for v in self.node.inputs):
            self.batch_broken = True  # e.g. the batch dimension reshaped, reduced or cut

    def batch_is_free(self) -> bool:
        """Whether the batch dimension stays free: it runs through every op to every
        output (else the inputs' first dimension is something else, e.g. the channels of
        an unbatched image)."""
        return not self.batch_broken and all(self.batched(v) for v in self.model.graph.outputs)

    def _dying_variables(self) -> list[str]:
        """Variables whose every value is dead after the current node."""
        found = []
        for value in self.node.inputs:
            if value is None:
                continue
            loc = self._loc.get(id(value))
            if loc is None or loc.var is None or loc.var in found:
                continue
            if all(self.last_use(v) <= self.index for v in self._var_values.get(loc.var, [])):
                found.append(loc.var)
        return found + [t for t in self._temps if t not in found]

    def _release(self, var: str, dying: list[str]) -> None:
        if var in dying:
            dying.remove(var)
        self._var_values[var] = []

    def _targets(self, outs: list[ir.Value], dying: list[str]) -> list[str]:
        targets = []
        for value in outs:
            if self.last_use(value) < 0:  # computed but never used
                targets.append("_")
                continue
            reusable = [v for v in dying if v in self._generated and v not in targets]
            if reusable:
                name = reusable[0]
                self._var_values[name] = []
            else:
                name = self._fresh()
            targets.append(name)
        return targets

    def _fresh(self) -> str:
        for name in self._free:
            self._free.remove(name)
            self._var_values[name] = []
            return name
        k = len(self._generated)
        if k == 0:  # the main chain's name: x, unless an input is called that
            self._base = next(b for b in ("x", "y", "h", "z", "t") if not self.variables.taken(b)
                              and all(not self.variables.taken(f"{b}{i}") for i in range(1, 4)))
        name = self.variables.take(self._base if k == 0 else f"{self._base}{k}")
        self._generated.add(name)
        return name

    def _delete(self, names: list[str]) -> None:
        # the caller's input tensors are not ours to free: only intermediates are deleted
        names = [n for n in names if n in self._generated]
        if not names:
            return
        self.body.append(Statement(f"del {', '.join(names)}"))
        for name in names:
            self._var_values[name] = []
            if name in self._generated:
                self._free.append(name)
        self._free.sort(key=lambda n: (len(n), n))

    # -- the layer map --------------------------------------------------------------------
    def layer_values(self) -> dict[str, ir.Value]:
        """Source layer path -> the value it outputs (its last node's first output)."""
        found: dict[str, ir.Value] = {}
        for node in self.nodes:
            path = node.metadata_props.get(SOURCE_PATH)
            if path and node.outputs:
                found[path] = node.outputs[0]
        return found


def torch_dtype(dtype: np.dtype) -> str:
    names = {"float32": "float32", "float64": "float64", "float16": "float16",
             "int64": "int64", "int32": "int32", "int8": "int8", "uint8": "uint8",
             "bool": "bool", "int16": "int16"}
    name = np.dtype(dtype).name
    if name not in names:
        raise ConversionError(f"tensors of type {name} have no PyTorch equivalent here")
    return f"torch.{names[name]}"


def literal(value, dtype: np.dtype | None = None) -> str:
    """A Python literal that PyTorch turns back into exactly `value` (float32 values are
    written with the fewest digits that round-trip through float32)."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else 'float("-inf")'
    if dtype is not None and np.dtype(dtype) == np.float32:
        text = np.format_float_positional(np.float32(value), unique=True, trim="0")
        if len(text) > 12:
            text = np.format_float_scientific(np.float32(value), unique=True, trim="0")
    else:
        text = repr(value)
    if text.endswith("."):
        text += "0"
    return text


def ints(values: Sequence[int]) -> str:
    """`(1, 2)` -> "1, 2"."""
    return ", ".join(str(int(v)) for v in values)


def tuple_literal(values: Sequence[int]) -> str:
    values = [int(v) for v in values]
    return f"({values[0]},)" if len(values) == 1 else f"({ints(values)})"


def single_or_tuple(values: Sequence[int]) -> str:
    """3 for (3, 3), else (3, 5): how a person writes kernel sizes and strides."""
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return str(values[0])
    return tuple_literal(values)
