"""Caffe2 NetDef pair -> common graph.

The init net's fills become constants (weights stay views of the mapped file), the
predict net's ops are converted one by one by registered converters (one file per
operator family in `converters/`), with blob names tracked as the net rebinds them (an
in-place op gives the blob a new value). Inputs are the external inputs the init net does
not fill with real data; their shape comes from --input-shape, the input's own fill, or
is inferred from the first layer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

import migrate.readers.caffe2.converters  # noqa: F401  (registers every converter)
from migrate.core.errors import (
    ConversionError,
    CorruptFileError,
    MigrateError,
    TooLargeError,
    UnsupportedError,
    UnsupportedModulesError,
    UsageError,
)
from migrate.core.formats.caffe2 import layer_key
from migrate.core.formats.caffe2_pb2 import NetDef, OperatorDef
from migrate.core.graph import GraphBuilder, static_shape
from migrate.core.model import InputInfo, ReadOptions, SourceModel
from migrate.core.passes.fold import fold_constants
from migrate.readers.caffe2.loader import LoadedNet, argument_map, load_net
from migrate.readers.caffe2.registry import lookup

# Ops that carry no computation at inference
PASS_THROUGH = ("Copy", "Alias", "EnsureCPUOutput", "StopGradient", "CopyCPUToCPU")
RANDOM_FILLS = ("XavierFill", "MSRAFill", "GaussianFill", "UniformFill", "UniformIntFill",
                "RandomFill", "LengthsRangeFill", "DiagonalFill")
# Spatial sizes tried, in order, when no input shape is given or declared
_SPATIAL_CANDIDATES = (224, 64, 32, 28, 227, 96, 48, 16, 24, 12, 8, 256, 299)


class Args:
    """Typed access to an operator's arguments."""

    def __init__(self, op: OperatorDef) -> None:
        self.op = op
        self._args = argument_map(op)

    def has(self, name: str) -> bool:
        return name in self._args

    def int(self, name: str, default: int | None = None) -> int:
        arg = self._args.get(name)
        if arg is None:
            if default is None:
                raise ConversionError(f"argument '{name}' is missing")
            return default
        return int(arg.i) if arg.HasField("i") else int(arg.f)

    def float(self, name: str, default: float | None = None) -> float:
        arg = self._args.get(name)
        if arg is None:
            if default is None:
                raise ConversionError(f"argument '{name}' is missing")
            return default
        return float(arg.f) if arg.HasField("f") else float(arg.i)

    def ints(self, name: str, default: Sequence[int] | None = None) -> list[int]:
        arg = self._args.get(name)
        if arg is None:
            if default is None:
                raise ConversionError(f"argument '{name}' is missing")
            return list(default)
        return [int(v) for v in arg.ints]

    def floats(self, name: str, default: Sequence[float] | None = None) -> list[float]:
        arg = self._args.get(name)
        if arg is None:
            if default is None:
                raise ConversionError(f"argument '{name}' is missing")
            return list(default)
        return [float(v) for v in arg.floats]

    def str(self, name: str, default: str = "") -> str:
        arg = self._args.get(name)
        return default if arg is None else arg.s.decode("utf-8", "replace")


@dataclass
class BuildContext:
    builder: GraphBuilder
    args: Args | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def op(self, op_type: str, inputs: Sequence[ir.Value | None], hint: str | None = None,
           num_outputs: int = 1, **attributes: Any) -> ir.Value:
        return self.builder.op(op_type, inputs, attributes, hint=hint, num_outputs=num_outputs)

    def outputs(self, op_type: str, inputs: Sequence[ir.Value | None], n: int,
                hint: str | None = None, **attributes: Any) -> list[ir.Value]:
        first = self.op(op_type, inputs, hint, num_outputs=n, **attributes)
        return list(first.producer().outputs)

    def const(self, array: Any, hint: str = "const") -> ir.Value:
        return self.builder.constant(np.asarray(array), hint)

    def int64s(self, values: Sequence[int], hint: str = "shape") -> ir.Value:
        return self.builder.int64s(values, hint)

    def shape(self, value: ir.Value) -> tuple[int, ...]:
        return static_shape(value)

    @staticmethod
    def constant_of(value: ir.Value) -> np.ndarray | None:
        return None if value.const_value is None else value.const_value.numpy()

    # -- layout ----------------------------------------------------------------------
    def order(self) -> str:
        order = self.args.str("order", "NCHW").upper() if self.args else "NCHW"
        if order not in ("NCHW", "NHWC"):
            raise ConversionError(f"order {order!r} (only NCHW and NHWC exist)")
        return order

    def to_nchw(self, x: ir.Value) -> ir.Value:
        """The op's image input in NCHW (NHWC nets are transposed around each op)."""
        if self.order() == "NCHW":
            return x
        rank = len(self.shape(x))
        return self.op("Transpose", [x], perm=[0, rank - 1] + list(range(1, rank - 1)))

    def from_nchw(self, y: ir.Value) -> ir.Value:
        if self.order() == "NCHW":
            return y
        rank = len(self.shape(y))
        return self.op("Transpose", [y], perm=[0] + list(range(2, rank)) + [1])


# -- weights --------------------------------------------------------------------------

_FILL_DTYPES = {"GivenTensorFill": np.float32, "GivenTensorDoubleFill": np.float64,
                "GivenTensorIntFill": np.int32, "GivenTensorInt64Fill": np.int64,
                "GivenTensorBoolFill": np.bool_, "GivenTensorInt16Fill": np.int16}
# caffe2.TensorProto.DataType (ConstantFill's dtype argument)
DATA_TYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 5: np.bool_, 6: np.uint8, 7: np.int8,
              8: np.uint16, 9: np.int16, 10: np.int64, 12: np.float16, 13: np.float64}


def _fill(op: OperatorDef, index: int, loaded: LoadedNet, budget: list[int],
          options: ReadOptions, rng: np.random.Generator) -> tuple[np.ndarray, str | None]:
    """The array one init-net op fills (and a note for random fills)."""
    args = Args(op)
    shape = args.ints("shape", [])
    if any(d < 0 for d in shape):
        raise CorruptFileError(f"negative shape {shape}")
    count = math.prod(shape)
    itemsize = np.dtype(_FILL_DTYPES.get(op.type, np.float32)).itemsize
    budget[0] -= count * itemsize
    if budget[0] < 0 or count * itemsize > options.max_bytes:
        raise TooLargeError(f"declares a tensor of shape {shape} ({count:,} elements), over "
                            "the limit (--max-bytes)")
    if op.type in _FILL_DTYPES:
        dtype = _FILL_DTYPES[op.type]
        mapped = loaded.mapped.get((index, "values"))
        if mapped is not None:
            values = mapped
        else:
            arg = argument_map(op).get("values")
            if arg is None:
                values = np.zeros(0, dtype)
            elif dtype in (np.float32, np.float64):
                values = np.asarray(arg.floats, dtype)
            else:
                values = np.asarray(arg.ints, dtype)
        if values.size != count:
            if count == 0 and not shape:
                shape = [values.size]
            else:
                raise CorruptFileError(f"shape {shape} needs {count} values, the fill has "
                                       f"{values.size}")
        return values.reshape(shape).astype(dtype, copy=False), None
    if op.type == "GivenTensorByteStringToUInt8Fill":
        arg = argument_map(op).get("values")
        raw = b"".join(arg.strings) if arg is not None else b""
        if len(raw) != count:
            raise CorruptFileError(f"shape {shape} needs {count} bytes, the fill has {len(raw)}")
        return np.frombuffer(raw, np.uint8).reshape(shape), None
    if op.type == "ConstantFill":
        dtype = DATA_TYPES.get(args.int("dtype", 1), np.float32)
        value = args.float("value", 0.0) if np.dtype(dtype).kind == "f" else args.int(
            "value", 0)
        return np.broadcast_to(np.asarray(value, dtype), shape), None
    if op.type in RANDOM_FILLS:
        if not options.allow_random_init:
            raise UnsupportedError(f"{op.type} fills '{op.output[0]}' with random values: this "
                                   "init net holds no trained weights (--allow-random-init to "
                                   "convert it anyway, with seeded random weights)")
        scale = 1.0 / math.sqrt(max(1, count // max(1, shape[0] if shape else 1)))
        return (rng.standard_normal(shape) * scale).astype(np.float32), \
            "random init-net fills replaced by seeded random weights (--allow-random-init)"
    raise UnsupportedError(f"init net op {index} ({op.type} -> {', '.join(op.output)}) is not a "
                           "fill of constant values")


def load_weights(loaded: LoadedNet, options: ReadOptions) -> tuple[dict[str, np.ndarray],
                                                                    list[str]]:
    weights: dict[str, np.ndarray] = {}
    notes: list[str] = []
    budget = [options.max_bytes]
    rng = np.random.default_rng(0)
    for index, op in enumerate(loaded.net.op):
        if not op.output:
            continue
        try:
            array, note = _fill(op, index, loaded, budget, options, rng)
        except MigrateError as exc:
            exc.where = exc.where or f"init net op {index} ({op.type} -> {op.output[0]})"
            raise
        weights[op.output[0]] = array
        if note and note not in notes:
            notes.append(note)
    return weights, notes


# -- graph ----------------------------------------------------------------------------

def _is_placeholder(array: np.ndarray) -> bool:
    """Exporters fill each input with one zero so that the blob exists: mobile_exporter
    (and our writer) a [1, 1] GivenTensorFill, caffe_translator's command line a [1]
    ConstantFill. A one-value parameter that is not 0 (a scalar, a shared PReLU slope)
    is not a placeholder."""
    return array.size <= 1 and not np.asarray(array).any()


def find_inputs(predict: NetDef, weights: dict[str, np.ndarray]) -> list[str]:
    """The external inputs a user feeds, in order (Caffe2's Predictor feeds the first
    ones): those the init net does not fill, and the leading ones it fills with only a
    placeholder (mobile_exporter lists the data inputs first)."""
    names = []
    leading = True
    for name in predict.external_input:
        array = weights.get(name)
        if array is None or (leading and _is_placeholder(array)):
            names.append(name)
        else:
            leading = False
    return names


def _unsupported(predict: NetDef) -> None:
    missing = []
    for i, op in enumerate(predict.op):
        if op.type.startswith("Int8") or op.type.startswith("Dequantize") or op.type.startswith(
                "Quantize"):
            missing.append((f"op[{i}]:{op.output[0] if op.output else ''}",
                            f"{op.type} (quantized int8 ops are not converted)"))
        elif op.type not in PASS_THROUGH and op.type != "Dropout" and lookup(op.type) is None:
            missing.append((f"op[{i}]:{op.output[0] if op.output else ''}", op.type))
    if missing:
        raise UnsupportedModulesError(missing, kind="Caffe2 operator(s)")


def _first_consumer_shapes(predict: NetDef, name: str, weights: dict[str, np.ndarray]
                           ) -> list[list[int]]:
    """Plausible shapes of an input from the first op that reads it."""
    for op in predict.op:
        if not op.input or op.input[0] != name:
            continue
        order = Args(op).str("order", "NCHW").upper()
        if op.type in ("Conv", "ConvTranspose") and len(op.input) > 1 and op.input[1] in weights:
            w = weights[op.input[1]]
            group = Args(op).int("group", 1)
            if w.ndim == 4:
                channels = (w.shape[1] if order == "NCHW" else w.shape[3])
                channels = channels * group if op.type == "Conv" else w.shape[0]
                if order == "NCHW":
                    return [[1, channels, s, s] for s in _SPATIAL_CANDIDATES]
                return [[1, s, s, channels] for s in _SPATIAL_CANDIDATES]
        if op.type in ("FC",) and len(op.input) > 1 and op.input[1] in weights:
            return [[1, weights[op.input[1]].shape[-1]]]
        if op.type in ("FCTransposed",) and len(op.input) > 1 and op.input[1] in weights:
            return [[1, weights[op.input[1]].shape[0]]]
        if op.type == "SpatialBN" and len(op.input) > 1 and op.input[1] in weights:
            c = weights[op.input[1]].size
            return [[1, c, s, s] if order == "NCHW" else [1, s, s, c]
                    for s in _SPATIAL_CANDIDATES]
        break
    return []


def build_graph(predict: NetDef, weights: dict[str, np.ndarray], shapes: list[list[int]],
                inputs: list[str], name: str) -> tuple[ir.Model, list[str], int]:
    builder = GraphBuilder(name=name or "caffe2")
    ctx = BuildContext(builder)
    blobs: dict[str, ir.Value] = {}
    for blob, shape in zip(inputs, shapes, strict=True):
        # an input's placeholder fill has the input's type (our writer's int64 inputs)
        placeholder = weights.get(blob)
        dtype = ir.DataType.from_numpy(placeholder.dtype) if placeholder is not None \
            and placeholder.dtype.kind in "iub" else ir.DataType.FLOAT
        blobs[blob] = builder.add_input(blob, shape, dtype)
    constants: dict[str, ir.Value] = {}

    def value_of(blob: str, index: int) -> ir.Value:
        if blob in blobs:
            return blobs[blob]
        if blob in weights:
            if blob not in constants:
                constants[blob] = builder.constant(weights[blob], blob)
            return constants[blob]
        raise CorruptFileError(f"op {index} reads blob '{blob}', which no earlier op writes and "
                               "no fill or input provides")

    converted = 0
    for index, op in enumerate(predict.op):
        path, cls = layer_key(index, op)
        builder.set_origin(path, cls)
        where = f"op {index} ({op.type} -> {', '.join(op.output)})"
        try:
            values = [value_of(b, index) for b in op.input]
            if op.type in PASS_THROUGH or (op.type == "Dropout" and Args(op).int("is_test", 1)):
                outs = [ctx.op("Identity", values[:1], hint=op.output[0] if op.output else None)]
            else:
                ctx.args = Args(op)
                outs = lookup(op.type)(ctx, op, values)
        except MigrateError as exc:
            exc.where = exc.where or where
            raise
        except MemoryError:
            raise
        except Exception as exc:  # arguments that do not fit the op (a damaged file)
            raise ConversionError(f"cannot convert it: {type(exc).__name__}: {exc}"[:300],
                                  where=where) from None
        for blob, value in zip(op.output, outs, strict=False):
            blobs[blob] = value
        converted += 1
    outputs = []
    for blob in predict.external_output:
        if blob not in blobs and blob not in weights:
            raise CorruptFileError(f"external_output '{blob}' is never produced")
        outputs.append(value_of(blob, len(predict.op)))
    builder.set_outputs(outputs)
    model = builder.model()
    fold_constants(model)  # e.g. a Reshape of a weight: a constant for every target
    return model, ctx.notes, converted


def _guess_and_build(predict: NetDef, weights: dict[str, np.ndarray], inputs: list[str],
                     name: str) -> tuple[ir.Model, list[str], int, list[list[int]]]:
    candidates: list[list[list[int]]] = []
    for blob in inputs:
        declared = weights.get(blob)
        if declared is not None and not _is_placeholder(declared):
            candidates.append([list(declared.shape)])
            continue
        found = _first_consumer_shapes(predict, blob, weights)
        if not found:
            raise UsageError(f"cannot infer the shape of input '{blob}' from the net: pass "
                             "--input-shape, e.g. 1x3x224x224")
        candidates.append(found)
    first_error: MigrateError | None = None
    for k in range(max(len(c) for c in candidates) if candidates else 1):
        shapes = [c[min(k, len(c) - 1)] for c in candidates]
        try:
            model, notes, converted = build_graph(predict, weights, shapes, inputs, name)
            return model, notes, converted, shapes
        except (ConversionError, UsageError) as exc:
            first_error = first_error or exc
    assert first_error is not None
    first_error.message += " (input shape was guessed: pass --input-shape)"
    raise first_error


def read(paths: Sequence[str], options: ReadOptions) -> SourceModel:
    init_path, predict_path = paths
    init = load_net(init_path, options.max_bytes)
    predict = load_net(predict_path, options.max_bytes).net
    if not predict.op:
        raise CorruptFileError("the predict_net has no operators", file=predict_path)
    try:
        weights, notes = load_weights(init, options)
    except MigrateError as exc:
        raise exc.with_file(init_path) from None
    try:
        _unsupported(predict)
        inputs = find_inputs(predict, weights)
        if not inputs:
            raise UsageError("the predict_net has no external input left for data (every one "
                             "is filled by the init_net)")
        name = predict.name or os.path.splitext(os.path.basename(predict_path))[0]
        if options.input_shapes is not None:
            shapes = [list(s) for s in options.input_shapes]
            if len(shapes) != len(inputs):
                raise UsageError(f"--input-shape gives {len(shapes)} shape(s); the net has "
                                 f"{len(inputs)} input(s): {', '.join(inputs)}")
            model, build_notes, converted = build_graph(predict, weights, shapes, inputs, name)
        else:
            model, build_notes, converted, shapes = _guess_and_build(predict, weights, inputs,
                                                                     name)
            notes.append("input shape " + ", ".join("x".join(map(str, s)) for s in shapes)
                         + " inferred from the first layer (--input-shape to set)")
    except MigrateError as exc:
        raise exc.with_file(predict_path) from None
    orders = {Args(op).str("order", "") for op in predict.op} - {""}
    infos = []
    for value in model.graph.inputs:
        shape = list(static_shape(value))
        layout = ("NHWC" if orders == {"NHWC"} else "NCHW") if len(shape) == 4 else ""
        dtype = np.dtype(value.dtype.numpy()).name
        infos.append(InputInfo(value.name, shape, dtype=dtype, layout=layout,
                               value_range=(0, 1) if dtype != "float32" else None))
    engines = sorted({op.engine for op in predict.op} - {""})
    if engines:
        notes.append(f"engines {', '.join(engines)} ignored (the converted model runs on the "
                     "target's own kernels)")
    return SourceModel(model, "caffe2", [init_path, predict_path],
                       f"Caffe2 net '{predict.name or 'unnamed'}'", converted, layer_word="ops",
                       inputs=infos, notes=notes + build_notes,
                       stem=pair_stem(predict_path, predict.name),
                       runtime_files={"init_net": init_path, "predict_net": predict_path})


_ROLE_SUFFIXES = ("_predict_net", "-predict_net", "predict_net", "_predict", "_net")


def pair_stem(predict_path: str, net_name: str) -> str:
    """x_predict_net.pb -> x; predict_net.pb -> the net's name."""
    stem = os.path.basename(predict_path).split(".", 1)[0]
    for suffix in _ROLE_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem or net_name or "model"


def inspect(paths: Sequence[str], options: ReadOptions) -> str:
    init_path, predict_path = paths
    init = load_net(init_path, options.max_bytes)
    predict = load_net(predict_path, options.max_bytes).net
    params = sum(int(np.prod(Args(op).ints("shape", [0]))) for op in init.net.op)
    lines = [f"{predict_path}: Caffe2 net '{predict.name}', {len(predict.op)} ops, "
             f"{params:,} parameter values in {len(init.net.op)} fills"]
    for i, op in enumerate(predict.op):
        ok = op.type in PASS_THROUGH or op.type == "Dropout" or lookup(op.type) is not None
        mark = "ok " if ok else "NO "
        extra = f" [{op.engine}]" if op.engine else ""
        lines.append(f"{mark} op[{i}] {op.type}{extra}: {', '.join(op.input)} -> "
                     f"{', '.join(op.output)}")
    return "\n".join(lines)
