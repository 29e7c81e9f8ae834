"""What flows between the stages: reader -> SourceModel -> passes -> writer -> runtime."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx_ir as ir

DEFAULT_MAX_BYTES = 64 * 1024**3  # total tensor bytes a source file may declare


@dataclass
class ReadOptions:
    """What a reader may need beyond the files; every reader ignores what it does not use."""

    input_shapes: Sequence[Sequence[int]] | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    # Caffe2: init nets with random fills (XavierFill, ...) hold no weights
    allow_random_init: bool = False
    # PyTorch checkpoints: the model's code, "path/to/models.py:ClassName"
    model_class: str | None = None
    # PyTorch live modules: example inputs for torch.export
    example_inputs: Sequence[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class InputInfo:
    """What the source knows of one model input."""

    name: str
    shape: list[int]
    dtype: str = "float32"
    layout: str = ""  # e.g. "NCHW"; empty when it is not an image
    # what the model expects of its values, e.g. "BGR, 0-255, mean (104, 117, 123) subtracted"
    expects: str = ""
    # for integer inputs (word indices): the values a random test input may take
    value_range: tuple[int, int] | None = None


@dataclass
class SourceModel:
    """A source model read into the common graph."""

    model: ir.Model
    format: str  # reader name
    paths: list[str]  # the files it came from, in the reader's role order
    description: str  # e.g. "nn.Sequential", "Caffe net 'LeNet'"
    layer_count: int
    layer_word: str = "layers"  # "modules" for Torch7, "nodes" for ONNX, "ops" for Caffe2
    inputs: list[InputInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # changes made to the model on the way (e.g. preprocessing folded into a layer)
    fixups: list[str] = field(default_factory=list)
    # the output files' name, when the first file's name is not it (e.g. x_init_net.pb)
    stem: str = ""
    # how the source's own real runtime runs it ({role: path}); None: no runtime exists
    # (Torch7), the common graph run in onnxruntime is the reference
    runtime_files: dict[str, str] | None = None

    def parameter_count(self) -> int:
        """Values in the floating-point initializers (the weights), for summaries."""
        return sum(v.const_value.size for v in self.model.graph.initializers.values()
                   if v.const_value is not None and v.const_value.dtype.is_floating_point())

    def op_counts(self) -> dict[str, int]:
        """Common-graph operator type -> how many nodes use it, sorted by type."""
        counts: dict[str, int] = {}
        for node in self.model.graph:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        return dict(sorted(counts.items()))


@dataclass
class WriteOptions:
    optimize: bool = True
    # target-specific switches (e.g. keep_layout for TensorFlow, export_program for PyTorch)
    extra: dict[str, Any] = field(default_factory=dict)
    source: SourceModel | None = None  # what was read (names, inputs, files) for side files


@dataclass
class WriteResult:
    files: dict[str, str]  # role -> path, in the order they are listed to the user
    notes: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """What a runtime computed: outputs in order, and per source layer its output."""

    outputs: list[np.ndarray]
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    # the tensor (blob) name in the run files that holds each layer's output, for reports
    tensor_names: dict[str, str] = field(default_factory=dict)


@dataclass
class RuntimeStatus:
    installed: bool
    detail: str  # version and where, or why not
    install_hint: str = ""
