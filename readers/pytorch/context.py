"""What a PyTorch op converter works with: constants known at conversion time and
graph-building helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.core.graph import GraphBuilder, static_shape


@dataclass
class Const:
    """A tensor known without running the model: a weight, a buffer, or what an op
    computed from such tensors alone (folded by PyTorch itself). It stays a torch
    tensor (often a view of the file's memory) and becomes a graph constant only
    where an op takes it."""

    tensor: Any  # torch.Tensor
    name: str

    @property
    def array(self) -> np.ndarray:
        """The tensor's memory as numpy (no copy; strides kept)."""
        return tensor_array(self.tensor)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor.shape)


def tensor_array(tensor: Any) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: exact in float32
        tensor = tensor.float()
    if tensor.is_conj() or tensor.is_neg():
        tensor = tensor.resolve_conj().resolve_neg()
    array = tensor.numpy().view()
    # the memory may be a live module's weights: nothing downstream may write it
    array.flags.writeable = False
    return array


_TORCH_DTYPES = {
    "torch.float32": ir.DataType.FLOAT, "torch.float64": ir.DataType.DOUBLE,
    "torch.float16": ir.DataType.FLOAT16, "torch.bfloat16": ir.DataType.FLOAT,
    "torch.int64": ir.DataType.INT64, "torch.int32": ir.DataType.INT32,
    "torch.int16": ir.DataType.INT16, "torch.int8": ir.DataType.INT8,
    "torch.uint8": ir.DataType.UINT8, "torch.bool": ir.DataType.BOOL,
}


def ir_dtype(torch_dtype: Any) -> ir.DataType:
    found = _TORCH_DTYPES.get(str(torch_dtype))
    if found is None:
        raise ConversionError(f"tensors of {torch_dtype} cannot be converted")
    return found


@dataclass
class Unavailable:
    """An output of a multi-output op that the conversion does not compute (e.g. the
    indices of max pooling): using it is an error saying so."""

    reason: str


class ExportContext:
    """Graph-building helpers for converters; `node` is the FX node being converted."""

    def __init__(self, builder: GraphBuilder) -> None:
        self.builder = builder
        self.node: Any = None
        self.notes: list[str] = []

    # -- values ------------------------------------------------------------------
    def value(self, x: Any, like: ir.Value | None = None) -> ir.Value:
        """A graph value for a tensor argument (a Const becomes a graph constant; a
        Python number a scalar constant of `like`'s type)."""
        if isinstance(x, ir.Value):
            return x
        if isinstance(x, Const):
            return self.builder.constant(x.array, x.name)
        if isinstance(x, Unavailable):
            raise ConversionError(x.reason)
        if isinstance(x, bool | int | float):
            dtype = like.dtype.numpy() if like is not None and like.dtype is not None \
                else np.float32
            return self.builder.constant(np.asarray(x, dtype=dtype), "scalar")
        raise ConversionError(f"expected a tensor, got {type(x).__name__}")

    def shape(self, x: Any) -> tuple[int, ...]:
        if isinstance(x, Const):
            return x.shape
        return static_shape(x)

    def rank(self, x: Any) -> int:
        return len(self.shape(x))

    def dtype(self, x: Any) -> ir.DataType:
        if isinstance(x, Const):
            return ir_dtype(x.tensor.dtype)
        if x.dtype is None:
            raise ConversionError(f"type of {x.name} is unknown")
        return x.dtype

    # -- nodes -------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[Any], hint: str | None = None,
           num_outputs: int = 1, **attributes: Any) -> ir.Value:
        like = next((v for v in inputs if isinstance(v, ir.Value)), None)
        values = [None if v is None else self.value(v, like) for v in inputs]
        attrs = {k: v for k, v in attributes.items() if v is not None}
        return self.builder.op(op_type, values, attrs, hint=hint, num_outputs=num_outputs)

    def outputs(self, op_type: str, inputs: Sequence[Any], count: int, hint: str | None = None,
                **attributes: Any) -> list[ir.Value]:
        """All outputs of a node with several."""
        first = self.op(op_type, inputs, hint=hint, num_outputs=count, **attributes)
        producer = first.producer()
        assert producer is not None
        return list(producer.outputs)

    def int64s(self, values: Sequence[int], hint: str = "shape") -> ir.Value:
        return self.builder.int64s([int(v) for v in values], hint)

    def scalar(self, value: float, like: ir.Value, hint: str = "scalar") -> ir.Value:
        dtype = like.dtype.numpy() if like.dtype is not None else np.float32
        return self.builder.constant(np.asarray(value, dtype=dtype), hint)

    # -- what PyTorch says the node computes ----------------------------------------
    def expected_shape(self) -> tuple[int, ...] | None:
        """The node's output shape as PyTorch traced it, when it is static."""
        val = self.node.meta.get("val") if self.node is not None else None
        shape = getattr(val, "shape", None)
        if shape is None or not all(type(d) is int for d in shape):
            return None
        return tuple(shape)

    def expected_dtype(self) -> ir.DataType | None:
        val = self.node.meta.get("val") if self.node is not None else None
        dtype = getattr(val, "dtype", None)
        return ir_dtype(dtype) if dtype is not None else None

    def cast(self, x: Any, dtype: ir.DataType | None) -> Any:
        """`x` as `dtype` (a Cast node only where the types differ)."""
        if dtype is None or isinstance(x, bool | int | float) or self.dtype(x) == dtype:
            return x
        return self.op("Cast", [x], to=int(dtype))


def axis(dim: int, rank: int) -> int:
    """A PyTorch dim (maybe negative) as a non-negative axis."""
    if not -max(rank, 1) <= dim < max(rank, 1):
        raise ConversionError(f"dim {dim} is out of range for a {rank}-D tensor")
    return dim % max(rank, 1)
