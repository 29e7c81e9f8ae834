"""What a Torch7 model takes as input: one tensor or a (nested) Lua table of tensors,
and, when the user gives no --input-shape, plausible shapes for each of them.

A model's input structure is found by tracing symbolic input markers through the
module tree, the way the converters will later pass real values: containers route
them (Sequential, ConcatTable, ParallelTable, MapTable, table selectors, gModule
nodes, nested gModules), and the first layer a marker reaches that declares its
input size (a convolution's nInputPlane, a Linear's weight) suggests its shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from migrate.core.errors import ConversionError
from migrate.readers.torch7.module import T7Module, lua_list
from migrate.readers.torch7.values import TENSOR

# Spatial sizes tried, in order, when the input shape is not given: the first one
# for which every layer (e.g. a View before a Linear) accepts the shape wins.
SPATIAL_CANDIDATES = (64, 32, 28, 224, 96, 48, 16, 24, 12, 8, 227, 256, 299)

# Layers that keep the number of channels: the first layer after them still tells
# the input's channel count.
SHAPE_PRESERVING = (
    "ReLU", "ReLU6", "Tanh", "Sigmoid", "Threshold", "LeakyReLU", "ELU", "HardTanh",
    "SoftPlus", "Dropout", "SpatialDropout", "SpatialMaxPooling", "SpatialAveragePooling",
    "SpatialZeroPadding", "SpatialReflectionPadding", "SpatialReplicationPadding",
    "MulConstant", "AddConstant", "Identity", "Abs", "Square", "Sqrt", "Power", "Exp",
    "SpatialUpSamplingNearest", "SpatialUpSamplingBilinear", "SpatialCrossMapLRN",
    "InplaceClip01", "TotalVariation", "InstanceNormalization", "Print", "GradWeight",
)

# Modules that take a table of exactly this many entries.
_TABLE_OF = {
    "nn.CSubTable": 2, "nn.CDivTable": 2, "nn.MixtureTable": 2, "nn.CAddTensorTable": 2,
    "nn.ZipTableOneToMany": 2, "nn.PairwiseDistance": 2, "nn.DotProduct": 2,
    "nn.CosineDistance": 2, "nn.MM": 2, "nn.MV": 2, "nn.Bilinear": 2,
    "nn.BilinearSamplerBHWD": 2, "w2nn.ScaleTable": 2, "w2nn.ShakeShakeTable": 2,
}
# Modules that take a table of any length.
_OPEN_TABLE = ("nn.MapTable", "nn.CAddTable", "nn.CMulTable", "nn.CMaxTable", "nn.CMinTable",
               "nn.JoinTable", "nn.FlattenTable", "nn.ZipTable", "w2nn.AuxiliaryLossTable",
               "w2nn.PrintTable")
# Containers whose input goes to their first child (and, for a tensor, on through them).
_FIRST_CHILD = ("nn.Sequential", "nn.Concat", "nn.DepthConcat", "nn.Decorator", "nn.Inception")
MAX_DEPTH = 200
MAX_VISITS = 100_000  # a shared module counts once per use
# Element-Research/rnn layers that take one time step per call
_ONE_STEP = ("nn.LSTM", "nn.FastLSTM", "nn.GRU")

Path = tuple[int, ...]


@dataclass(frozen=True)
class Marker:
    """Stands for the model input at `path` (() = the whole input, (2, 1) = input[2][1])."""

    path: Path


@dataclass
class Trace:
    paths: set[Path] = field(default_factory=lambda: {()})
    # the modules each input reaches first, in forward order
    consumers: dict[Path, list[T7Module]] = field(default_factory=dict)
    # input paths that are tables of a length nothing tells, with the module taking them
    open_tables: dict[Path, T7Module] = field(default_factory=dict)
    visits: int = 0

    def marker(self, path: Path) -> Marker:
        self.paths.add(path)
        return Marker(path)

    def consume(self, marker: Marker, module: T7Module) -> None:
        self.consumers.setdefault(marker.path, []).append(module)


def _short(cls: str) -> str:
    return cls.rsplit(".", 1)[-1]


def _trace(t: Trace, module: T7Module, x: Any, depth: int = 0) -> Any:
    """Route markers through `module`; returns its output (markers, lists, or None)."""
    t.visits += 1
    if depth > MAX_DEPTH or t.visits > MAX_VISITS:
        raise ConversionError("module tree too deep or too large to trace its inputs")
    cls = module.cls
    children = module.children()
    if cls == "nn.gModule":
        return _trace_gmodule(t, module, x, depth)
    if cls.endswith(_FIRST_CHILD) and children:
        if cls.endswith("Sequential") and isinstance(x, Marker) and not _takes_table(children[0]):
            t.consume(x, module)  # the whole chain: its first sizing layer tells the shape
            return None
        out = x
        for child in children if cls.endswith("Sequential") else children[:1]:
            out = _trace(t, child, out, depth + 1)
        return out if cls.endswith("Sequential") else None
    if cls == "nn.ConcatTable":
        return [_trace(t, c, x, depth + 1) for c in children]
    if cls == "nn.ParallelTable":
        items = _items(t, x, len(children))
        return [_trace(t, c, item, depth + 1) for c, item in zip(children, items, strict=False)]
    if cls == "nn.MapTable" and isinstance(x, list):
        module_ = children[0] if children else None
        return [_trace(t, children[i] if i < len(children) else module_, item, depth + 1)
                for i, item in enumerate(x)] if module_ is not None else None
    if cls == "nn.SelectTable":
        index = module.int("index", 1)
        if isinstance(x, Marker):
            return t.marker((*x.path, index)) if index > 0 else None
        if isinstance(x, list):
            index = len(x) + index + 1 if index < 0 else index
            return x[index - 1] if 1 <= index <= len(x) else None
        return None
    if cls == "nn.NarrowTable":
        offset, length = module.int("offset", 1), module.int("length", 1)
        return _items(t, x, offset - 1 + length)[offset - 1:]
    if cls in _TABLE_OF:
        _items(t, x, _TABLE_OF[cls])
        return None
    if cls in _OPEN_TABLE and isinstance(x, Marker):
        t.open_tables.setdefault(x.path, module)
        return None
    if isinstance(x, Marker):
        if _short(cls) in SHAPE_PRESERVING:
            return x
        t.consume(x, module)
    return None


def _takes_table(module: T7Module) -> bool:
    cls = module.cls
    children = module.children()
    if cls in _TABLE_OF or cls in _OPEN_TABLE or cls in (
            "nn.ParallelTable", "nn.SelectTable", "nn.NarrowTable", "nn.gModule"):
        return True
    if cls in ("nn.ConcatTable", "nn.Concat", "nn.DepthConcat"):
        return any(_takes_table(c) for c in children)
    return cls.endswith(_FIRST_CHILD) and bool(children) and _takes_table(children[0])


def _items(t: Trace, x: Any, n: int) -> list[Any]:
    """The first n entries of a table value (a marker becomes n sub-markers)."""
    if isinstance(x, Marker):
        return [t.marker((*x.path, i)) for i in range(1, n + 1)]
    if isinstance(x, list):
        return list(x[:n])
    return [None] * n


def _node_data(node: Any) -> dict:
    data = node["data"] if node is not None else None
    return data if isinstance(data, dict) else {}


def _trace_gmodule(t: Trace, module: T7Module, x: Any, depth: int) -> Any:
    nodes = lua_list(module.fields.get("forwardnodes"))
    innode, outnode = module.fields.get("innode"), module.fields.get("outnode")
    if not nodes or innode is None or outnode is None:
        return None
    n_inputs = module.get("nInputs") or len(lua_list(innode["children"]))
    inputs = [x] if n_inputs <= 1 else _items(t, x, int(n_inputs))
    received: dict[int, dict[int, Any]] = {id(_node_data(innode)): dict(enumerate(inputs, 1))}
    for node in nodes:
        data = _node_data(node)
        got = received.get(id(data), {})
        ordered = [got[k] for k in sorted(got)]
        value = ordered[0] if len(ordered) == 1 else ordered
        select = data.get(b"selectindex")
        if select is not None:
            value = _items(t, value, int(select))[int(select) - 1]
        elif data.get(b"module") is not None:
            value = _trace(t, module.child(data[b"module"], module.path), value, depth + 1)
        for child in lua_list(node["children"]):
            child_data = _node_data(child)
            slot = (child_data.get(b"mapindex") or {}).get(data)
            if slot is not None:
                received.setdefault(id(child_data), {})[int(slot)] = value
    outs = received.get(id(_node_data(outnode)), {})
    outputs = [outs[k] for k in sorted(outs)]
    return outputs[0] if len(outputs) == 1 else outputs


def _template(paths: set[Path], prefix: Path = ()) -> Any:
    """The (nested) table shape implied by the input paths that were used."""
    sub = sorted({p[len(prefix)] for p in paths if len(p) > len(prefix) and p[:len(prefix)]
                  == prefix})
    if not sub:
        return TENSOR
    return [_template(paths, (*prefix, i)) for i in range(1, max(sub) + 1)]


def _leaves(template: Any, prefix: Path = ()) -> list[Path]:
    if template == TENSOR:
        return [prefix]
    return [leaf for i, sub in enumerate(template, 1) for leaf in _leaves(sub, (*prefix, i))]


@dataclass
class InputPlan:
    template: Any  # TENSOR or a nested list of TENSOR leaves
    leaves: list[Path]
    consumers: dict[Path, list[T7Module]]
    open_tables: dict[Path, T7Module]


def plan_inputs(root: T7Module) -> InputPlan:
    """The input structure of a model (one tensor unless it visibly takes a table)."""
    t = Trace()
    try:
        _trace(t, root, Marker(()))
    except (ConversionError, KeyError, TypeError, ValueError, AttributeError):
        t = Trace()  # a damaged or unusual tree: the converters will say what is wrong
    template = _template(t.paths)
    return InputPlan(template, _leaves(template), t.consumers, t.open_tables)


def declared_shapes(modules: Iterator[T7Module], root: Any = None) -> list[list[int]] | None:
    """Plausible input shapes from the first layer (in `modules`) that declares its size."""
    for m in modules:
        if m.has("nInputPlane") and m.has("kW"):
            return [[1, m.int("nInputPlane"), s, s] for s in SPATIAL_CANDIDATES]
        if m.cls.endswith("Linear") and m.tensor("weight") is not None:
            return [[1, m.tensor("weight").shape[1]]]
        if m.cls.endswith("BatchNormalization") and m.tensor("running_mean") is not None:
            n = m.tensor("running_mean").size
            if "Spatial" in m.cls:
                return [[1, n, s, s] for s in SPATIAL_CANDIDATES]
            return [[1, n]]
        if m.cls.endswith("InstanceNormalization") and m.has("nOutput"):
            return [[1, m.int("nOutput"), s, s] for s in SPATIAL_CANDIDATES]
        if m.cls in _ONE_STEP and m.has("inputSize"):  # one step of a recurrent layer
            return [[1, m.int("inputSize")]]
        if m.cls in ("nn.SeqLSTM", "nn.SeqLSTMP") and m.has("inputsize"):
            return [[1, 1, m.int("inputsize")]]  # a sequence of one step, batch of one
        if m.cls == "nn.Sequencer" and m.children():
            from migrate.readers.torch7.reader import iter_modules

            inner = declared_shapes(iter_modules(m.children()[0]), m.children()[0])
            return None if inner is None else [[1, *shape] for shape in inner]
        if not m.children() and m is not root and not _short(m.cls).endswith(SHAPE_PRESERVING):
            return None
    return None


def candidate_input_shapes(root: T7Module) -> list[list[list[int]]]:
    """Candidate input shape lists (one shape per input), most likely first."""
    from migrate.readers.torch7.reader import iter_modules

    plan = plan_inputs(root)
    for path, module in plan.open_tables.items():
        where = "its input" + "".join(f"[{i}]" for i in path)
        raise ConversionError(
            f"{where} is a table whose length nothing in the model tells ({module.path} "
            f"({module.cls}) takes it); pass one --input-shape per entry, comma-separated")
    if plan.template == TENSOR:
        found = declared_shapes(iter_modules(root), root)
        if found is None:
            raise ConversionError("cannot infer the input shape from the first layer; pass "
                                  "--input-shape, e.g. 1x3x224x224")
        return [[shape] for shape in found]
    per_leaf = []
    for leaf in plan.leaves:
        found = None
        for consumer in plan.consumers.get(leaf, []):
            found = declared_shapes(iter_modules(consumer), consumer)
            if found is not None:
                break
        if found is None:
            where = "input" + "".join(f"[{i}]" for i in leaf)
            raise ConversionError(
                f"the model takes a table of {len(plan.leaves)} inputs and the shape of {where} "
                f"cannot be inferred; pass {len(plan.leaves)} --input-shape values, "
                "comma-separated")
        per_leaf.append(found)
    count = max(len(f) for f in per_leaf)
    # candidate k uses each input's k-th guess (inputs with one guess keep it)
    return [[f[min(k, len(f) - 1)] for f in per_leaf] for k in range(count)]
