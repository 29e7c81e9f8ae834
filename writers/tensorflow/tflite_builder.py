"""Lowered program -> LiteRT flatbuffer (.tflite), written directly with LiteRT's own
schema classes (`ai_edge_litert.schema_py_generated`) and `flatbuffers`: no TensorFlow
import, no converter pass that could change the ops chosen here.

Every op is a builtin operator of the LiteRT interpreter; anything else is a
ConversionError naming the source layer. Weights are stored 16-byte aligned inside the
flatbuffer (one buffer per constant, shared when the same array is used twice), as
standard inline buffers; their bytes are never copied into the builder: the builder
reserves their place and the file is written from the arrays themselves.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S

from migrate.core.errors import ConversionError, TooLargeError
from migrate.writers.tensorflow.program import Op, Program, Tensor

MAX_FLATBUFFER = (1 << 31) - (64 << 20)  # flatbuffers' 2 GiB offsets, with room to spare
_TYPES = {"float32": S.TensorType.FLOAT32, "int32": S.TensorType.INT32,
          "int64": S.TensorType.INT64, "bool": S.TensorType.BOOL, "uint8": S.TensorType.UINT8,
          "int8": S.TensorType.INT8}
_ACTIVATION = {"NONE": S.ActivationFunctionType.NONE, "RELU": S.ActivationFunctionType.RELU,
               "RELU6": S.ActivationFunctionType.RELU6,
               "RELU_N1_TO_1": S.ActivationFunctionType.RELU_N1_TO_1}
_PADDING = {"SAME": S.Padding.SAME, "VALID": S.Padding.VALID}


def _opts(cls: type, **fields: Any):
    obj = cls()
    for key, value in fields.items():
        setattr(obj, key, value)
    return obj


def _act(a: dict) -> int:
    return _ACTIVATION[a.get("activation", "NONE")]


# kind -> (BuiltinOptions type, builder of the options object from the op's attributes)
_OPTIONS: dict[str, tuple[int, Callable[[dict], Any]]] = {
    "CONV_2D": (S.BuiltinOptions.Conv2DOptions, lambda a: _opts(
        S.Conv2DOptionsT, padding=_PADDING[a["padding"]], strideH=a["stride"][0],
        strideW=a["stride"][1], dilationHFactor=a["dilation"][0],
        dilationWFactor=a["dilation"][1], fusedActivationFunction=_act(a))),
    "DEPTHWISE_CONV_2D": (S.BuiltinOptions.DepthwiseConv2DOptions, lambda a: _opts(
        S.DepthwiseConv2DOptionsT, padding=_PADDING[a["padding"]], strideH=a["stride"][0],
        strideW=a["stride"][1], dilationHFactor=a["dilation"][0],
        dilationWFactor=a["dilation"][1], depthMultiplier=a["multiplier"],
        fusedActivationFunction=_act(a))),
    "TRANSPOSE_CONV": (S.BuiltinOptions.TransposeConvOptions, lambda a: _opts(
        S.TransposeConvOptionsT, padding=_PADDING[a["padding"]], strideH=a["stride"][0],
        strideW=a["stride"][1], fusedActivationFunction=_act(a))),
    "MAX_POOL_2D": (S.BuiltinOptions.Pool2DOptions, lambda a: _opts(
        S.Pool2DOptionsT, padding=_PADDING[a["padding"]], strideH=a["stride"][0],
        strideW=a["stride"][1], filterHeight=a["filter"][0], filterWidth=a["filter"][1],
        fusedActivationFunction=_act(a))),
    "RESHAPE": (S.BuiltinOptions.ReshapeOptions, lambda a: _opts(
        S.ReshapeOptionsT, newShape=list(a["new_shape"]))),
    "TRANSPOSE": (S.BuiltinOptions.TransposeOptions, lambda a: S.TransposeOptionsT()),
    "CONCATENATION": (S.BuiltinOptions.ConcatenationOptions, lambda a: _opts(
        S.ConcatenationOptionsT, axis=a["axis"], fusedActivationFunction=_act(a))),
    "SPLIT_V": (S.BuiltinOptions.SplitVOptions, lambda a: _opts(
        S.SplitVOptionsT, numSplits=a["num_splits"])),
    "STRIDED_SLICE": (S.BuiltinOptions.StridedSliceOptions, lambda a: _opts(
        S.StridedSliceOptionsT, beginMask=a.get("begin_mask", 0),
        endMask=a.get("end_mask", 0))),
    "SOFTMAX": (S.BuiltinOptions.SoftmaxOptions, lambda a: _opts(
        S.SoftmaxOptionsT, beta=a.get("beta", 1.0))),
    "LOG_SOFTMAX": (S.BuiltinOptions.LogSoftmaxOptions, lambda a: S.LogSoftmaxOptionsT()),
    "FULLY_CONNECTED": (S.BuiltinOptions.FullyConnectedOptions, lambda a: _opts(
        S.FullyConnectedOptionsT, fusedActivationFunction=_act(a),
        keepNumDims=bool(a.get("keep_num_dims", False)))),
    "BATCH_MATMUL": (S.BuiltinOptions.BatchMatMulOptions, lambda a: _opts(
        S.BatchMatMulOptionsT, adjX=a.get("adj_x", False), adjY=a.get("adj_y", False))),
    "ADD": (S.BuiltinOptions.AddOptions, lambda a: _opts(
        S.AddOptionsT, fusedActivationFunction=_act(a))),
    "SUB": (S.BuiltinOptions.SubOptions, lambda a: _opts(
        S.SubOptionsT, fusedActivationFunction=_act(a))),
    "MUL": (S.BuiltinOptions.MulOptions, lambda a: _opts(
        S.MulOptionsT, fusedActivationFunction=_act(a))),
    "DIV": (S.BuiltinOptions.DivOptions, lambda a: _opts(
        S.DivOptionsT, fusedActivationFunction=_act(a))),
    "LEAKY_RELU": (S.BuiltinOptions.LeakyReluOptions, lambda a: _opts(
        S.LeakyReluOptionsT, alpha=a["alpha"])),
    "LOCAL_RESPONSE_NORMALIZATION": (S.BuiltinOptions.LocalResponseNormalizationOptions,
                                     lambda a: _opts(
        S.LocalResponseNormalizationOptionsT, radius=a["radius"], bias=a["bias"],
        alpha=a["alpha"], beta=a["beta"])),
    "RESIZE_BILINEAR": (S.BuiltinOptions.ResizeBilinearOptions, lambda a: _opts(
        S.ResizeBilinearOptionsT, alignCorners=a["align_corners"],
        halfPixelCenters=a["half_pixel_centers"])),
    "RESIZE_NEAREST_NEIGHBOR": (S.BuiltinOptions.ResizeNearestNeighborOptions, lambda a: _opts(
        S.ResizeNearestNeighborOptionsT, alignCorners=a["align_corners"],
        halfPixelCenters=a["half_pixel_centers"])),
    "MIRROR_PAD": (S.BuiltinOptions.MirrorPadOptions, lambda a: _opts(
        S.MirrorPadOptionsT, mode=getattr(S.MirrorPadMode, a["mode"]))),
    "CAST": (S.BuiltinOptions.CastOptions, lambda a: _opts(
        S.CastOptionsT, inDataType=_TYPES[a["in_dtype"]], outDataType=_TYPES[a["out_dtype"]])),
    "GATHER": (S.BuiltinOptions.GatherOptions, lambda a: _opts(
        S.GatherOptionsT, axis=a["axis"], batchDims=0)),
    "ARG_MAX": (S.BuiltinOptions.ArgMaxOptions, lambda a: _opts(
        S.ArgMaxOptionsT, outputType=S.TensorType.INT64)),
    "ARG_MIN": (S.BuiltinOptions.ArgMinOptions, lambda a: _opts(
        S.ArgMinOptionsT, outputType=S.TensorType.INT64)),
}
_OPTIONS["ONE_HOT"] = (S.BuiltinOptions.OneHotOptions,
                       lambda a: _opts(S.OneHotOptionsT, axis=a["axis"]))
_OPTIONS["DEPTH_TO_SPACE"] = (S.BuiltinOptions.DepthToSpaceOptions,
                              lambda a: _opts(S.DepthToSpaceOptionsT, blockSize=a["block"]))
_OPTIONS["SPACE_TO_DEPTH"] = (S.BuiltinOptions.SpaceToDepthOptions,
                              lambda a: _opts(S.SpaceToDepthOptionsT, blockSize=a["block"]))
_OPTIONS["CONV_3D"] = (S.BuiltinOptions.Conv3DOptions, lambda a: _opts(
    S.Conv3DOptionsT, padding=_PADDING[a["padding"]], strideD=a["stride"][0],
    strideH=a["stride"][1], strideW=a["stride"][2], dilationDFactor=a["dilation"][0],
    dilationHFactor=a["dilation"][1], dilationWFactor=a["dilation"][2],
    fusedActivationFunction=_act(a)))
_OPTIONS["CONV_3D_TRANSPOSE"] = _OPTIONS["CONV_3D"]
_OPTIONS["GELU"] = (S.BuiltinOptions.GeluOptions,
                    lambda a: _opts(S.GeluOptionsT, approximate=a.get("approximate", False)))
_OPTIONS["AVERAGE_POOL_2D"] = _OPTIONS["MAX_POOL_2D"]
for _kind in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
    _OPTIONS[_kind] = (S.BuiltinOptions.ReducerOptions,
                       lambda a: _opts(S.ReducerOptionsT, keepDims=bool(a["keep_dims"])))
_NEEDS_BIAS = {"CONV_2D", "DEPTHWISE_CONV_2D"}
# builtins whose inputs are not in the op's own order (the output shape comes first)
_INPUT_ORDER = {"TRANSPOSE_CONV": lambda ins, shape: [shape, ins[1], ins[0], ins[2]],
                "CONV_3D_TRANSPOSE": lambda ins, shape: [shape, ins[1], ins[0], ins[2]]}
# the interpreter registers these builtins from a version above 1 only
_MIN_VERSION = {"BROADCAST_TO": 2}


def supported(kind: str) -> bool:
    return kind == "BATCH_NORM" or hasattr(S.BuiltinOperator, kind)


def expand_composites(program: Program) -> None:
    """BATCH_NORM -> x * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s."""
    ops = []
    for op in program.ops:
        if op.kind != "BATCH_NORM":
            ops.append(op)
            continue
        x, gamma, beta, mean, var = op.inputs
        stats = [t.data.astype(np.float64) for t in (gamma, beta, mean, var)]
        scale = stats[0] / np.sqrt(stats[3] + op.attrs["epsilon"])
        shift = stats[1] - stats[2] * scale
        trailing = len(x.shape) - 1 - op.attrs["axis"]
        shape = (-1,) + (1,) * trailing
        s = Tensor(f"{gamma.name}/scale", (), "float32",
                   np.ascontiguousarray(scale.astype(np.float32).reshape(shape)))
        t = Tensor(f"{beta.name}/shift", (), "float32",
                   np.ascontiguousarray(shift.astype(np.float32).reshape(shape)))
        s.shape, t.shape = s.data.shape, t.data.shape
        scaled = Tensor(f"{op.outputs[0].name}/scaled", x.shape)
        ops.append(Op("MUL", [x, s], [scaled], {"activation": "NONE"}, op.layer, op.cls))
        ops.append(Op("ADD", [scaled, t], op.outputs,
                      {"activation": op.attrs.get("activation", "NONE")}, op.layer, op.cls))
    program.ops = ops


class _Builder(flatbuffers.Builder):
    """flatbuffers' builder over an anonymous memory map instead of a bytearray: its
    pages are zero-filled lazily (a bytearray is zeroed eagerly, seconds for a large
    model), and the finished model is written from a view, not copied out."""

    def __init__(self, size: int) -> None:
        super().__init__(0)
        self.Bytes = mmap.mmap(-1, size)
        self.head = size


class _Buffer(S.BufferT):
    """A buffer whose data vector was placed beforehand (see `_place_data`)."""

    def __init__(self, data_offset: int | None = None) -> None:
        super().__init__()
        self.data_offset = data_offset

    def Pack(self, builder):  # noqa: N802  (the generated classes' name)
        S.BufferStart(builder)
        if self.data_offset is not None:
            S.BufferAddData(builder, self.data_offset)
        return S.BufferEnd(builder)


def _place_data(builder: _Builder, raw: np.ndarray) -> tuple[int, int]:
    """Reserve a 16-byte aligned vector for `raw` without copying it in: returns (vector
    offset, distance of its first byte from the buffer's end). Vectors made first end up
    last in the file, where `_chunks` writes them straight from the arrays."""
    builder.StartVector(1, raw.size, 16)
    builder.head = builder.head - raw.size
    from_end = len(builder.Bytes) - builder.head
    return builder.EndVector(), from_end


def _chunks(builder: _Builder, placed: list[tuple[int, np.ndarray]]) -> list:
    """The finished file: the builder's bytes around the data, the data from the arrays."""
    size = len(builder.Bytes)
    view = memoryview(builder.Bytes)
    out, position = [], builder.Head()
    for start, raw in sorted((size - from_end, raw) for from_end, raw in placed):
        out += [view[position:start], memoryview(raw)]
        position = start + raw.size
    out.append(view[position:])
    return out


def build(program: Program, description: str = "torch7-migrate") -> list[memoryview]:
    """The .tflite flatbuffer of a lowered program, as chunks to write one after the
    other (the builder's memory and, for the weights, the arrays themselves)."""
    for op in program.ops:
        if not supported(op.kind):
            raise ConversionError(f"{op.layer} ({op.cls}): {op.kind.lower()} has no LiteRT "
                                  "builtin operator (it runs in TensorFlow: --to tf)")
    expand_composites(program)
    model = S.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [_Buffer()]  # buffer 0: the empty buffer of non-constant tensors
    arrays: list[np.ndarray] = []
    subgraph = S.SubGraphT()
    subgraph.name = "main"
    subgraph.tensors, subgraph.operators = [], []
    index: dict[int, int] = {}
    buffers: dict[int, int] = {}
    total = 0

    def tensor_index(t: Tensor | None) -> int:
        nonlocal total
        if t is None:
            return -1
        found = index.get(id(t))
        if found is not None:
            return found
        entry = S.TensorT()
        entry.name = t.name
        entry.shape = [max(int(d), 1) for d in t.shape]
        if min(t.shape, default=0) < 0:  # sized when the model runs (WHERE's output)
            entry.shapeSignature = [int(d) for d in t.shape]
        entry.type = _TYPES[t.dtype]
        entry.buffer = 0
        if t.data is not None:
            key = id(t.data)
            if key not in buffers:
                arrays.append(np.asarray(t.data, t.dtype))
                model.buffers.append(_Buffer())
                buffers[key] = len(model.buffers) - 1
                total += t.data.nbytes + 32
            entry.buffer = buffers[key]
        subgraph.tensors.append(entry)
        index[id(t)] = len(subgraph.tensors) - 1
        return index[id(t)]

    codes: dict[str, int] = {}
    model.operatorCodes = []
    for t in program.inputs:
        tensor_index(t)
    for op in program.ops:
        if op.kind in _NEEDS_BIAS and op.inputs[2] is None:
            # LiteRT's convolutions take a bias tensor even when the source has none
            channels = op.inputs[1].shape[0 if op.kind == "CONV_2D" else 3]
            op.inputs[2] = Tensor(f"{op.outputs[0].name}/zero_bias", (channels,), "float32",
                                  np.zeros(channels, np.float32))
        inputs = [tensor_index(t) for t in op.inputs]
        if op.kind in _INPUT_ORDER:
            dims = np.asarray(op.attrs["output_shape"], np.int32)
            shape = Tensor(f"{op.outputs[0].name}/output_shape", dims.shape, "int32", dims)
            inputs = _INPUT_ORDER[op.kind](inputs, tensor_index(shape))
            if inputs[-1] == -1:
                inputs = inputs[:-1]
        entry = S.OperatorT()
        entry.opcodeIndex = _opcode(model, codes, op.kind)
        entry.inputs = inputs
        entry.outputs = [tensor_index(t) for t in op.outputs]
        if op.kind in _OPTIONS:
            entry.builtinOptionsType, factory = _OPTIONS[op.kind]
            try:
                entry.builtinOptions = factory(op.attrs)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConversionError(f"{op.layer} ({op.cls}): {op.kind.lower()} options: "
                                      f"{type(exc).__name__}: {exc}"[:500]) from exc
        subgraph.operators.append(entry)
    subgraph.inputs = [tensor_index(t) for t in program.inputs]
    subgraph.outputs = [tensor_index(t) for t in program.outputs]
    model.subgraphs = [subgraph]
    model.signatureDefs = [_signature(program, subgraph)]
    if total > MAX_FLATBUFFER:
        raise TooLargeError(f"the weights take {total / 2**30:.1f} GiB; a .tflite flatbuffer "
                            "holds at most 2 GiB")
    names = sum(len(t.name) for t in subgraph.tensors)
    builder = _Builder(total + (1 << 20) + 1024 * len(subgraph.operators)
                       + 256 * len(subgraph.tensors) + 4 * names)
    placed = []
    for buffer, array in zip(model.buffers[1:], arrays, strict=True):
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if raw.size:
            buffer.data_offset, from_end = _place_data(builder, raw)
            placed.append((from_end, raw))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return _chunks(builder, placed)


def _opcode(model, codes: dict[str, int], kind: str) -> int:
    if kind not in codes:
        code = S.OperatorCodeT()
        code.builtinCode = getattr(S.BuiltinOperator, kind)
        code.deprecatedBuiltinCode = min(code.builtinCode,
                                         S.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        code.version = _MIN_VERSION.get(kind, 1)
        model.operatorCodes.append(code)
        codes[kind] = len(model.operatorCodes) - 1
    return codes[kind]


def _signature(program: Program, subgraph) -> Any:
    """`serving_default` with the source's input and output names."""
    names = {t.name: i for i, t in enumerate(subgraph.tensors)}
    signature = S.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs, signature.outputs = [], []
    for boundaries, target in ((program.input_boundaries, signature.inputs),
                               (program.output_boundaries, signature.outputs)):
        for b in boundaries:
            entry = S.TensorMapT()
            entry.name = b.name
            entry.tensorIndex = names[b.view.tensor]
            target.append(entry)
    return signature
