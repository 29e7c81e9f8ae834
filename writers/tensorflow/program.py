"""The lowered program both TensorFlow targets are written from.

The common graph (ONNX semantics, NCHW) is lowered once into a list of ops on
*stored* tensors: tensors in the layout the target holds them in (NHWC inside by
default). Op kinds are LiteRT builtin operators (CONV_2D, PAD, ...) with their
options as attributes, plus BATCH_NORM, which SavedModels keep as one op with Keras's
four variables and LiteRT gets as a multiply-add. The SavedModel builder maps each
kind to TensorFlow calls, the .tflite builder to a builtin operator, so both targets
compute the same ops on the same layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class Tensor:
    """A stored tensor: an op's output, a graph input, or a constant (`data`)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # numpy dtype name
    data: np.ndarray | None = None
    # for weights: the Keras role (kernel, bias, gamma, ...) and owning source layer, so
    # SavedModel variables are named `<layer>/<role>`
    role: str | None = None
    layer: str | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass(eq=False)
class Op:
    kind: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    attrs: dict[str, Any]
    layer: str = ""  # the source layer's path (node metadata source.path)
    cls: str = ""  # the source layer's class


@dataclass
class StoredView:
    """How a stored tensor holds a source value (see layout.Layout):

        source = reshape(transpose(reshape(stored, [atoms[o] for o in order]),
                                   argsort(order)), shape)
    """

    tensor: str  # tensor name in the written model
    shape: list[int]  # the source value's shape
    atoms: list[int]
    order: list[int]
    stored_shape: list[int]

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "shape": self.shape, "atoms": self.atoms,
                "order": self.order, "stored_shape": self.stored_shape}


@dataclass
class Boundary:
    """A graph input or output: its source name and shape, and how it is stored."""

    name: str  # the source's name (signature key)
    view: StoredView
    layout: str  # "NHWC", "NCHW" or "" (not an image)
    dtype: str = "float32"


@dataclass
class Program:
    ops: list[Op] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    input_boundaries: list[Boundary] = field(default_factory=list)
    output_boundaries: list[Boundary] = field(default_factory=list)
    # source layer path -> where its output is stored (layer-by-layer reports)
    layers: dict[str, StoredView] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for op in self.ops if op.kind == kind)

    def reorders(self) -> list[str]:
        """Channel reorders (e.g. channel shuffles) done as one Gather of the last axis."""
        return [op.attrs["reason"] for op in self.ops
                if op.kind == "GATHER" and "reason" in op.attrs]

    def transposes(self) -> list[str]:
        """One line per Transpose op left: which layer needs it and why."""
        return [op.attrs.get("reason", "layout change") for op in self.ops
                if op.kind == "TRANSPOSE"]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
