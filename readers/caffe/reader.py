"""Caffe net definition + caffemodel -> common graph.

The definition is read and upgraded as Caffe does (definition.py, upgrade.py), filtered
to what runs in the TEST phase, and walked in file order (Caffe nets are a sequence:
each bottom is a blob an earlier layer made, in-place layers overwrite theirs). Every
layer becomes ONNX nodes tagged with its name (source.path, the key the Caffe runtime
gives its output too) and type (source.class). Weights are views of the mapped
caffemodel (weights.py). Layer types nobody converts are all listed at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

import migrate.readers.caffe.layers  # noqa: F401  (registers every converter)
from migrate.core.errors import (
    ConversionError,
    CorruptFileError,
    MigrateError,
    UnsupportedError,
    UnsupportedModulesError,
    UsageError,
)
from migrate.core.formats import caffe_pb2
from migrate.core.graph import GraphBuilder, static_shape
from migrate.core.model import InputInfo, ReadOptions, SourceModel
from migrate.readers.caffe.context import LayerContext
from migrate.readers.caffe.definition import Definition, read_definition
from migrate.readers.caffe.registry import lookup
from migrate.readers.caffe.upgrade import input_layer, test_phase_layers, upgrade
from migrate.readers.caffe.weights import Weights, load_weights, read_mean_file

DATA_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData",
                        "DummyData", "AnnotatedData", "VideoData"})
# only meaningful in training: dropped (their inputs become outputs, as in a deploy net)
TRAINING_TYPES = frozenset({"Accuracy", "HDF5Output", "Silence"})
# layers of Caffe forks: BVLC Caffe (the reference runtime) cannot run them
FORK_TYPES = frozenset({"Permute", "Normalize", "Upsample", "Interp", "ReLU6",
                        "ShuffleChannel", "ConvolutionDepthwise", "DepthwiseConvolution"})


class UnsupportedLayersError(UnsupportedModulesError):
    """Layer types with no converter, every occurrence listed."""

    def __init__(self, occurrences: list[tuple[str, str]], *, file: str | None = None):
        super().__init__(occurrences, file=file)
        types = sorted({t for _, t in occurrences})
        where = ", ".join(f"'{name}' ({t})" for name, t in occurrences[:40])
        more = f" and {len(occurrences) - 40} more" if len(occurrences) > 40 else ""
        self.message = (f"unsupported Caffe layer type(s) {', '.join(types)} at layer(s) "
                        f"{where}{more} (a plugin can add them: migrate --plugin FILE, "
                        "with migrate.plugins.caffe_layer)")


def _is_data_layer(layer: caffe_pb2.LayerParameter) -> bool:
    return layer.type in DATA_TYPES or (layer.type == "Python" and not layer.bottom)


def _is_training_layer(layer: caffe_pb2.LayerParameter) -> bool:
    return layer.type in TRAINING_TYPES or layer.type.endswith("Loss")


@dataclass
class _Layer:
    proto: caffe_pb2.LayerParameter
    origin: int  # index in the file's layer list, -1 for the Input layer made of `input`


@dataclass
class _Net:
    definition: Definition
    layers: list[_Layer]
    notes: list[str] = field(default_factory=list)


def load_net(path: str, input_shapes: Sequence[Sequence[int]] | None) -> _Net:
    """The definition, upgraded and filtered to the TEST phase."""
    definition = read_definition(path)
    net = definition.net
    notes, origin = upgrade(net)
    layers = [_Layer(layer, origin[i]) for i, layer in enumerate(net.layer)]
    made = input_layer(net, input_shapes)
    if made is not None:
        layers.insert(0, _Layer(made, -1))
        if net.input_dim:
            notes.append("input fields (input_dim) upgraded to an Input layer")
    kept = test_phase_layers(_as_net(net, [x.proto for x in layers]))
    dropped = len(layers) - len(kept)
    layers = [layers[i] for i in kept]
    if dropped:
        notes.append(f"{dropped} layer(s) outside the TEST phase dropped")
    return _Net(definition, layers, notes)


def _as_net(net: caffe_pb2.NetParameter, layers: list[caffe_pb2.LayerParameter]
            ) -> caffe_pb2.NetParameter:
    view = caffe_pb2.NetParameter()
    view.state.CopyFrom(net.state)
    view.layer.extend(layers)
    return view


def _check_convertible(net: _Net) -> None:
    """Every layer type has a converter and no converted layer relies on a field our
    schema lacks (a fork's extension): all problems at once."""
    missing, unknown = [], []
    for item in net.layers:
        layer = item.proto
        if layer.type in ("Input",) or _is_data_layer(layer) or _is_training_layer(layer):
            continue
        converter = lookup(layer.type)
        if converter is None:
            missing.append((layer.name, layer.type or "(no type)"))
        elif item.origin in net.definition.unknown and converter.__module__.startswith(
                "migrate.readers.caffe."):  # a plugin reads its own fields from ctx.text
            fields = ", ".join(net.definition.unknown[item.origin])
            unknown.append(f"'{layer.name}' ({layer.type}): {fields}")
    if missing:
        raise UnsupportedLayersError(missing)
    if unknown:
        raise UnsupportedError("layers use fields BVLC Caffe's schema lacks (a fork's "
                               "extensions), which would be ignored: " + "; ".join(unknown))


# -- building -----------------------------------------------------------------------------

@dataclass
class Built:
    model: ir.Model
    inputs: list[InputInfo]
    converted: int
    notes: list[str]
    has_data_layers: bool
    has_training_layers: bool
    fork_types: list[str]


class _Builder:
    def __init__(self, net: _Net, weights: Weights, name: str,
                 input_shapes: Sequence[Sequence[int]] | None, base_dir: str) -> None:
        self.net = net
        self.weights = weights
        self.graph = GraphBuilder(name=name)
        self.shapes = [list(s) for s in input_shapes] if input_shapes is not None else None
        self.base_dir = base_dir
        self.blobs: dict[str, ir.Value] = {}
        self.missing: dict[str, str] = {}  # blob -> why no layer of ours makes it
        self.available: set[str] = set()  # Caffe's output rule: made and not consumed
        self.named: dict[str, ir.Value] = {}
        self.inputs: list[InputInfo] = []
        self.input_count = 0
        self.converted = 0
        self.notes: list[str] = []
        self.data_layers: list[str] = []
        self.training_layers: list[str] = []

    # -- inputs ------------------------------------------------------------------------------
    def _next_shape(self, declared: list[int] | None, blob: str, layer: str) -> list[int]:
        k = self.input_count
        self.input_count += 1
        if self.shapes is not None:
            if k >= len(self.shapes):
                raise UsageError(f"--input-shape gives {len(self.shapes)} shape(s); the net "
                                 f"has more inputs (blob '{blob}' of layer '{layer}')")
            return self.shapes[k]
        if declared is None:
            raise UsageError(f"layer '{layer}' reads its data from files, so the definition "
                             f"does not give the shape of '{blob}': pass --input-shape "
                             "(e.g. 1x3x224x224)")
        return declared

    def _add_input(self, blob: str, shape: list[int], expects: str) -> None:
        if any(d < 1 for d in shape):
            raise CorruptFileError(f"input '{blob}' has the shape {shape}")
        value = self.graph.add_input(blob, shape)
        self.blobs[blob] = value
        self.available.add(blob)
        self.inputs.append(InputInfo(value.name, list(shape),
                                     layout="NCHW" if len(shape) == 4 else "",
                                     expects=expects))

    def input_layer(self, layer: caffe_pb2.LayerParameter) -> None:
        shapes = list(layer.input_param.shape)
        if shapes and len(shapes) not in (1, len(layer.top)):
            raise CorruptFileError(f"Input layer '{layer.name}' has {len(shapes)} shapes for "
                                   f"{len(layer.top)} tops")
        for k, top in enumerate(layer.top):
            declared = list(shapes[0 if len(shapes) == 1 else k].dim) if shapes else None
            shape = self._next_shape(declared, top, layer.name)
            self._add_input(top, shape, describe_expected(shape, None, self.base_dir))

    def data_layer(self, layer: caffe_pb2.LayerParameter) -> None:
        self.data_layers.append(layer.name)
        if not layer.top:
            return
        declared = _data_shape(layer)
        shape = self._next_shape(declared, layer.top[0], layer.name)
        transform = layer.transform_param if layer.HasField("transform_param") else None
        self._add_input(layer.top[0], shape, describe_expected(shape, transform, self.base_dir))
        for top in layer.top[1:]:
            self.missing[top] = f"the labels of data layer '{layer.name}' (training data)"

    # -- layers ------------------------------------------------------------------------------
    def bottoms(self, layer: caffe_pb2.LayerParameter) -> list[ir.Value]:
        values = []
        for blob in layer.bottom:
            if blob in self.blobs:
                values.append(self.blobs[blob])
            elif blob in self.missing:
                raise ConversionError(f"takes '{blob}', {self.missing[blob]}: it cannot run "
                                      "at inference")
            else:
                raise CorruptFileError(f"takes blob '{blob}', which no earlier layer makes "
                                       "(Caffe runs layers in file order: 'Unknown bottom "
                                       "blob')")
        return values

    def convert(self, item: _Layer) -> None:
        layer = item.proto
        bottoms = self.bottoms(layer)
        fn = lookup(layer.type)
        assert fn is not None
        self.graph.set_origin(layer.name, layer.type)
        stored = self.weights.layers.get(layer.name)
        text = self.net.definition.texts.get(item.origin, "")
        ctx = LayerContext(self.graph, layer, stored.blobs if stored else None, text)
        where = f"layer '{layer.name}' ({layer.type})"
        try:
            out = fn(ctx, layer, bottoms)
        except MigrateError as exc:
            if exc.where is None:
                exc.where = where
            raise
        except MemoryError:
            raise
        except Exception as exc:  # a converter met values it cannot make sense of
            raise ConversionError(f"cannot convert this layer: {type(exc).__name__}: {exc}"[:500],
                                  where=where) from exc
        outs = [out] if isinstance(out, ir.Value) else list(out or [])
        if len(outs) != len(layer.top):
            raise ConversionError(f"makes {len(outs)} output(s) for {len(layer.top)} top(s)",
                                  where=where)
        self.notes += ctx.notes
        for blob in layer.bottom:
            self.available.discard(blob)
        for top, value in zip(layer.top, outs, strict=True):
            self._name(value, top)
            self.blobs[top] = value
            self.missing.pop(top, None)
            self.available.add(top)
        self.converted += 1

    def _name(self, value: ir.Value, blob: str) -> None:
        """A value a layer made is named after its top blob (the first of that name
        keeps the exact name; in-place successors get suffixes)."""
        if value.producer() is None or any(v is value for v in self.named.values()):
            return
        if value.name != blob and not re.fullmatch(re.escape(self._hint(blob)) + r"(_\d+)?",
                                                   value.name):
            value.name = self.graph.unique_name(blob)
        self.named[value.name] = value

    @staticmethod
    def _hint(blob: str) -> str:
        return "".join(c if c.isalnum() or c in "_." else "_" for c in blob) or "v"

    def drop(self, layer: caffe_pb2.LayerParameter) -> None:
        if layer.type != "Silence":
            self.training_layers.append(f"{layer.name} ({layer.type})")
        for top in layer.top:
            self.missing[top] = f"the output of training-only layer '{layer.name}'"
            self.blobs.pop(top, None)
            self.available.discard(top)

    # -- the whole net ---------------------------------------------------------------------
    def build(self) -> Built:
        for item in self.net.layers:
            layer = item.proto
            if layer.type == "Input":
                self.input_layer(layer)
            elif _is_data_layer(layer):
                self.data_layer(layer)
            elif _is_training_layer(layer):
                self.drop(layer)
            else:
                self.convert(item)
        if self.shapes is not None and len(self.shapes) != self.input_count:
            raise UsageError(f"--input-shape gives {len(self.shapes)} shape(s); the net has "
                             f"{self.input_count} input(s)")
        if not self.inputs:
            raise UsageError("the net has no input (no input fields, Input or data layer)")
        outputs = sorted(b for b in self.available if b in self.blobs)  # Caffe's order
        if not outputs:
            raise ConversionError("the net computes nothing (no layer output is left unused)")
        self.graph.set_outputs([self.blobs[b] for b in outputs])
        for blob, value in zip(outputs, self.graph.graph.outputs, strict=True):
            self._name_output(value, blob)
        forks = sorted({x.proto.type for x in self.net.layers if x.proto.type in FORK_TYPES
                        or (lookup(x.proto.type) is not None and x.proto.type not in BVLC)})
        notes = list(self.notes)
        if self.data_layers:
            notes.append(f"data layer(s) {', '.join(self.data_layers)} dropped: their data "
                         "is the net's input")
        if self.training_layers:
            notes.append(f"training-only layer(s) dropped: {', '.join(self.training_layers)}")
        return Built(self.graph.model(), self.inputs, self.converted, notes,
                     bool(self.data_layers), bool(self.training_layers), forks)

    def _name_output(self, value: ir.Value, blob: str) -> None:
        """Graph outputs carry the blob names Caffe gives its outputs."""
        if value.name == blob or value.is_graph_input():
            return
        graph = self.graph.graph
        for node in graph:
            for other in node.outputs:
                if other.name == blob and other is not value:
                    other.name = self.graph.unique_name(f"{self._hint(blob)}_inner")
        if blob in graph.initializers or any(v.name == blob for v in graph.inputs):
            return  # the name belongs to a weight or an input: keep the value's own
        value.name = blob


# BVLC Caffe's inference layer types (what the reference runtime can run)
BVLC = frozenset({
    "AbsVal", "ArgMax", "BatchNorm", "Bias", "BNLL", "Clip", "Concat", "Convolution",
    "Crop", "Deconvolution", "Dropout", "Eltwise", "ELU", "Embed", "Exp", "Flatten",
    "InnerProduct", "Input", "Log", "LRN", "MVN", "Parameter", "Pooling", "Power", "PReLU",
    "Reduction", "ReLU", "Reshape", "Scale", "Sigmoid", "Slice", "Softmax", "Split",
    "Swish", "TanH", "Threshold", "Tile",
})


def _data_shape(layer: caffe_pb2.LayerParameter) -> list[int] | None:
    """The shape of a data layer's first top, where its parameters say it (batch 1)."""
    if layer.type == "MemoryData":
        p = layer.memory_data_param
        if p.channels and p.height and p.width:
            return [1, p.channels, p.height, p.width]
    if layer.type == "DummyData":
        p = layer.dummy_data_param
        if p.shape:
            return [1, *list(p.shape[0].dim)[1:]]
        if p.channels and p.height and p.width:
            return [1, p.channels[0], p.height[0], p.width[0]]
    if layer.type == "ImageData":
        p = layer.image_data_param
        crop = layer.transform_param.crop_size
        channels = 3 if p.is_color else 1
        if crop:
            return [1, channels, crop, crop]
        if p.new_height and p.new_width:
            return [1, channels, p.new_height, p.new_width]
    return None


def describe_expected(shape: list[int], transform: caffe_pb2.TransformationParameter | None,
                      base_dir: str) -> str:
    """What the input's values should be, for the summary: what the definition records
    (transform_param of a data layer, a mean file), else Caffe's usual convention."""
    image = len(shape) == 4 and shape[1] in (1, 3)
    if transform is None:
        if image and shape[1] == 3:
            return ("not recorded in the files (Caffe's usual convention: BGR, 0-255, "
                    "mean-subtracted)")
        return ""
    parts = ["BGR" if shape[1:2] == [3] else "grayscale" if shape[1:2] == [1] else "", "0-255"]
    if transform.mean_value:
        values = ", ".join(f"{v:g}" for v in transform.mean_value)
        parts.append(f"mean ({values}) subtracted")
    elif transform.mean_file:
        parts.append(_mean_file_words(transform.mean_file, base_dir))
    if transform.scale != 1:
        parts.append(f"then times {transform.scale:g}")
    if transform.crop_size:
        parts.append(f"{transform.crop_size}x{transform.crop_size} centre crop")
    return ", ".join(p for p in parts if p)


def _mean_file_words(name: str, base_dir: str) -> str:
    path = name if os.path.isabs(name) else os.path.join(base_dir, name)
    if not os.path.isfile(path):
        path = os.path.join(base_dir, os.path.basename(name))
    if os.path.isfile(path):
        try:
            mean = read_mean_file(path)
        except MigrateError:
            return f"mean image {name} subtracted (unreadable)"
        if mean.ndim >= 3 and mean.size:
            per_channel = mean.reshape(mean.shape[-3], -1).mean(axis=1)
            values = ", ".join(f"{v:.1f}" for v in per_channel)
            return f"mean image {os.path.basename(name)} subtracted (channel means {values})"
    return f"mean image {name} subtracted"


# -- the reader's entry points ------------------------------------------------------------

def read(paths: Sequence[str], options: ReadOptions) -> SourceModel:
    net_path, weights_path = paths
    try:
        net = load_net(net_path, options.input_shapes)
        _check_convertible(net)
    except MigrateError as exc:
        raise exc.with_file(net_path) from None
    weights = load_weights(weights_path, options.max_bytes)
    name = net.definition.net.name or os.path.splitext(os.path.basename(net_path))[0]
    builder = _Builder(net, weights, name or "net", options.input_shapes,
                       os.path.dirname(os.path.abspath(net_path)))
    try:
        built = builder.build()
    except MigrateError as exc:
        raise exc.with_file(net_path) from None
    notes = net.notes + weights.notes + built.notes
    _check_weights_used(net, weights, notes)
    runtime_files: dict[str, str] | None = {"net": net_path, "weights": weights_path}
    if built.fork_types:
        runtime_files = None
        notes.append(f"BVLC Caffe cannot run the fork layer(s) {', '.join(built.fork_types)}: "
                     "the reference is the source graph in onnxruntime")
    elif built.has_data_layers or built.has_training_layers:
        runtime_files = None
        notes.append("the definition is a training net (data/loss layers): the reference is "
                     "the source graph in onnxruntime")
    description = f"Caffe net '{name}'" + (" (binary definition)" if net.definition.binary
                                           else "")
    return SourceModel(built.model, "caffe", [net_path, weights_path], description,
                       built.converted, layer_word="layers", inputs=built.inputs, notes=notes,
                       runtime_files=runtime_files)


def _check_weights_used(net: _Net, weights: Weights, notes: list[str]) -> None:
    names = {x.proto.name for x in net.layers}
    weighted = [n for n, layer in weights.layers.items() if layer.blobs and n not in names]
    if weighted and len(weighted) == len([x for x in weights.layers.values() if x.blobs]):
        raise UsageError("none of the caffemodel's weighted layers "
                         f"({', '.join(weighted[:5])}...) is in the definition: they are not "
                         "files of the same model")


def inspect(paths: Sequence[str], options: ReadOptions) -> str:
    source = read(paths, options)
    counts: dict[str, int] = {}
    for node in source.model.graph:
        cls = node.metadata_props.get("source.class", "")
        path = node.metadata_props.get("source.path", "")
        counts.setdefault(cls, set()).add(path)  # type: ignore[arg-type]
    params = source.parameter_count()
    shapes = ", ".join(f"{i.name} {'x'.join(map(str, i.shape))}" for i in source.inputs)
    outputs = ", ".join(f"{v.name} {'x'.join(map(str, static_shape(v)))}"
                        for v in source.model.graph.outputs)
    lines = [f"{os.path.basename(paths[0])} + {os.path.basename(paths[1])}: "
             f"{source.description}, {source.layer_count} layers, {params:,} parameters",
             f"  inputs   {shapes}", f"  outputs  {outputs}"]
    lines += [f"  {cls:<24} {len(names)}" for cls, names in sorted(counts.items())]  # type: ignore
    lines += [f"  input    {i.name}: {i.expects}" for i in source.inputs if i.expects]
    lines += [f"  note: {n}" for n in source.notes]
    return "\n".join(lines)


def supported_layer_line() -> str:
    from migrate.readers.caffe.registry import supported_types

    return ", ".join(f"`{name}`" for name in supported_types())


__all__ = ["read", "inspect", "load_net", "UnsupportedLayersError", "np"]
