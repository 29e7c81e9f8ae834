"""Write Torch7 binary files (torch.save's format: 4-byte ints, 8-byte longs,
objects referenced by index) so that benchmark models exist on any machine.

Module fields follow what nn writes after :clearState() (the same names and types as
the real fixtures; gradient buffers empty, as in released model files);
tests/test_t7write.py checks that a real Torch7 model re-written here decodes, with
torchfile as an independent reader, exactly like the original.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5

_TENSOR_TYPES = {
    np.dtype(np.float32): (b"torch.FloatTensor", b"torch.FloatStorage"),
    np.dtype(np.float64): (b"torch.DoubleTensor", b"torch.DoubleStorage"),
    np.dtype(np.int64): (b"torch.LongTensor", b"torch.LongStorage"),
}


@dataclass
class TorchObject:
    """A Torch class instance: class name and its fields (a Lua table)."""

    cls: str
    fields: dict[str, Any] = field(default_factory=dict)


class LongStorage(list):
    """A torch.LongStorage (e.g. nn.View's size)."""


class T7Writer:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.next_index = 1
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # memoized objects stay alive so ids stay unique

    def _int(self, v: int) -> None:
        self.fh.write(struct.pack("<i", v))

    def _long(self, v: int) -> None:
        self.fh.write(struct.pack("<q", v))

    def _string(self, s: bytes) -> None:
        self._int(len(s))
        self.fh.write(s)

    def _reference(self, obj: Any, tag: int) -> bool:
        """Write the tag and index; True when the object was written before."""
        self._int(tag)
        known = self.memo.get(id(obj))
        if known is not None:
            self._int(known)
            return True
        self.memo[id(obj)] = self.next_index
        self.keep.append(obj)
        self._int(self.next_index)
        self.next_index += 1
        return False

    def write(self, value: Any) -> None:
        if value is None:
            self._int(TYPE_NIL)
        elif isinstance(value, bool):
            self._int(TYPE_BOOLEAN)
            self._int(int(value))
        elif isinstance(value, int | float):
            self._int(TYPE_NUMBER)
            self.fh.write(struct.pack("<d", float(value)))
        elif isinstance(value, str | bytes):
            self._int(TYPE_STRING)
            self._string(value.encode() if isinstance(value, str) else value)
        elif isinstance(value, LongStorage):
            if not self._reference(value, TYPE_TORCH):
                self._string(b"V 1")
                self._string(b"torch.LongStorage")
                self._long(len(value))
                self.fh.write(np.asarray(value, dtype="<i8").tobytes())
        elif isinstance(value, np.ndarray):
            self._tensor(value)
        elif isinstance(value, TorchObject):
            if not self._reference(value, TYPE_TORCH):
                self._string(b"V 1")
                self._string(value.cls.encode())
                self.write(value.fields)
        elif isinstance(value, dict | list):
            if not self._reference(value, TYPE_TABLE):
                items = list(value.items()) if isinstance(value, dict) else [
                    (i, v) for i, v in enumerate(value, start=1)]
                self._int(len(items))
                for k, v in items:
                    self.write(k)
                    self.write(v)
        else:
            raise TypeError(f"cannot write {type(value).__name__}")

    def _tensor(self, array: np.ndarray) -> None:
        tensor_cls, storage_cls = _TENSOR_TYPES[array.dtype]
        if self._reference(array, TYPE_TORCH):
            return
        self._string(b"V 1")
        self._string(tensor_cls)
        if array.size == 0:  # an empty tensor: no dimensions, no storage
            self._int(0)
            self._long(1)
            self._int(TYPE_NIL)
            return
        data = np.ascontiguousarray(array)
        self._int(data.ndim)
        for s in data.shape:
            self._long(s)
        for s in data.strides:
            self._long(s // data.itemsize)
        self._long(1)  # storage offset, 1-based
        # the storage: a fresh object of its own
        self._int(TYPE_TORCH)
        self._int(self.next_index)
        self.next_index += 1
        self._string(b"V 1")
        self._string(storage_cls)
        self._long(data.size)
        self.fh.write(memoryview(data.astype(data.dtype.newbyteorder("<"), copy=False)).cast("B"))


def save(path: str, obj: Any) -> None:
    with open(path, "wb") as fh:
        T7Writer(fh).write(obj)


# -- nn modules as nn writes them after :clearState() -------------------------------

def _empty() -> np.ndarray:
    return np.empty(0, np.float32)


def _module(cls: str, **fields: Any) -> TorchObject:
    base = {"output": _empty(), "gradInput": _empty(), "_type": "torch.FloatTensor",
            "train": False}
    base.update(fields)
    return TorchObject(cls, base)


def conv(weight: np.ndarray, bias: np.ndarray, stride: int = 1, pad: int = 0) -> TorchObject:
    n_out, n_in, kh, kw = weight.shape
    return _module("nn.SpatialConvolution", nInputPlane=n_in, nOutputPlane=n_out, kW=kw, kH=kh,
                   dW=stride, dH=stride, padW=pad, padH=pad, weight=weight, bias=bias,
                   gradWeight=_empty(), gradBias=_empty())


def relu() -> TorchObject:
    return _module("nn.ReLU", threshold=0, val=0, inplace=False)


def max_pool(k: int, stride: int) -> TorchObject:
    return _module("nn.SpatialMaxPooling", kW=k, kH=k, dW=stride, dH=stride, padW=0, padH=0,
                   ceil_mode=False, indices=_empty())


def batch_norm(mean, var, weight, bias, spatial=True, eps=1e-5) -> TorchObject:
    cls = "nn.SpatialBatchNormalization" if spatial else "nn.BatchNormalization"
    return _module(cls, running_mean=mean, running_var=var, weight=weight, bias=bias,
                   gradWeight=_empty(), gradBias=_empty(), eps=eps, momentum=0.1, affine=True)


def view(*size: int) -> TorchObject:
    n = 1
    for s in size:
        if s > 0:
            n *= s
    return _module("nn.View", size=LongStorage(size), numElements=n)


def linear(weight: np.ndarray, bias: np.ndarray) -> TorchObject:
    return _module("nn.Linear", weight=weight, bias=bias, gradWeight=_empty(),
                   gradBias=_empty())


def dropout(p: float) -> TorchObject:
    return _module("nn.Dropout", p=p, v2=True, inplace=False, noise=_empty(),
                   stochastic_inference=False)


def softmax() -> TorchObject:
    return _module("nn.SoftMax")


def sequential(*modules: TorchObject) -> TorchObject:
    return _module("nn.Sequential", modules=list(modules))


def concat_table(*modules: TorchObject) -> TorchObject:
    return _module("nn.ConcatTable", modules=list(modules))


def identity() -> TorchObject:
    return _module("nn.Identity")


def cadd_table() -> TorchObject:
    return _module("nn.CAddTable", inplace=False)


def ensure(path: str, make) -> str:
    """Write `make()`'s module tree to `path` once (atomically); later runs reuse it."""
    if not os.path.exists(path):
        print(f"writing {path} ...", flush=True)
        save(path + ".partial", make())
        os.replace(path + ".partial", path)
    return path
