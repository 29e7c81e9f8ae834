"""Common graph -> BVLC Caffe `STEM.prototxt` + `STEM.caffemodel`.

The prototxt is the readable net definition: an `Input` layer per graph input, then
one or more layers per graph node, each preceded by a provenance comment
(`# source: model.modules[3] (nn.SpatialConvolution)`) that the Caffe runtime uses to
report each source layer's output. The caffemodel is the same NetParameter with the
parameters (BlobProtos), streamed from the weight arrays (see packed.py).

Caffe lists a net's outputs as the blobs no layer reads, sorted by name; the writer
names the graph's outputs so that this order is the graph's, gives an output that
another layer also reads a Split of its own, and silences every other unread blob.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import onnx_ir as ir
from google.protobuf import text_format

import migrate.writers.caffe.converters  # noqa: F401  (registers every op converter)
from migrate.core.errors import ConversionError, MigrateError
from migrate.core.formats import caffe_pb2
from migrate.core.formats.caffe import provenance_comment
from migrate.core.graph import SOURCE_PATH, node_origin, static_shape
from migrate.core.model import WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.writers.caffe.net import Layer, NetBuilder, caffe_name
from migrate.writers.caffe.packed import caffemodel_bytes, caffemodel_chunks
from migrate.writers.caffe.registry import lookup


@dataclass
class CaffeNet:
    name: str
    layers: list[Layer]
    inputs: list[str]
    outputs: list[str]
    notes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # comment lines atop the prototxt

    def prototxt(self) -> str:
        lines = [f"# {line}" for line in self.header]
        lines.append(f'name: "{self.name}"')
        for layer in self.layers:
            if layer.source is not None:
                path, cls = (" ".join(part.split()) for part in layer.source)
                lines.append(provenance_comment(path, cls))
            body = text_format.MessageToString(layer.proto, indent=2, as_utf8=True)
            lines.append("layer {\n" + body + "}")
        return "\n".join(lines) + "\n"

    def weights(self):
        """The caffemodel, in pieces (weights as views of their arrays)."""
        return caffemodel_chunks(self.name, [(layer.proto, layer.blobs) for layer in self.layers])

    def weights_bytes(self) -> bytes:
        return caffemodel_bytes(self.name, [(layer.proto, layer.blobs) for layer in self.layers])

    def net_parameter(self) -> caffe_pb2.NetParameter:
        """The whole net with its weights as a message (copies them: small nets only)."""
        return caffe_pb2.NetParameter.FromString(self.weights_bytes())


def build_net(model: ir.Model, name: str | None = None) -> CaffeNet:
    """Translate the common graph into Caffe layers (nothing is written)."""
    graph = model.graph
    net = NetBuilder(model, caffe_name(name or graph.name or "net", "net"))
    _inputs(net, graph)
    last_of_source = {node.metadata_props.get(SOURCE_PATH) or id(node): node for node in graph}
    for node in graph:
        convert = lookup(node.op_type)
        where = node_origin(node) or f"{node.name or 'node'} ({node.op_type})"
        if convert is None:
            raise ConversionError(f"Caffe has no layer for ONNX op {node.op_type} (and this "
                                  "writer no exact construction)", where=where)
        key = node.metadata_props.get(SOURCE_PATH) or id(node)
        net.start_node(node, last_of_source[key] is node)
        first = len(net.layers)
        try:
            convert(net, node)
        except MigrateError as exc:
            exc.where = exc.where or where
            raise
        except MemoryError:
            raise
        except Exception as exc:  # a case the converter did not expect
            raise ConversionError(
                f"Caffe writer failed on {node.op_type}: {type(exc).__name__}: {exc}"[:500],
                where=where) from exc
        _output_first(net, node, first)
        _name_after_source(net, node, first)
    outputs = _outputs(net, graph)
    _silence_unread(net, outputs)
    return CaffeNet(net.name, net.layers, list(net.inputs), outputs, net.notes)


def _inputs(net: NetBuilder, graph: ir.Graph) -> None:
    for k, value in enumerate(graph.inputs):
        hint = "data" if len(graph.inputs) == 1 else (value.name or f"data{k + 1}")
        shape = static_shape(value)
        if value.dtype is not None and not value.dtype.is_floating_point():
            raise ConversionError(f"input {value.name} holds {value.dtype.name.lower()} values; "
                                  "Caffe blobs are float32")
        net.start_named(caffe_name(hint, f"data{k + 1}"))
        top = net.layer("Input", [], shape, input_param={"shape": [{"dim": list(shape)}]})
        net.inputs.append(net.bind(value, top))


def _name_after_source(net: NetBuilder, node: ir.Node, first: int) -> None:
    """A node that needed several layers: its output layer gets the plain source name
    (the helpers' layers keep theirs, e.g. `..._pad`)."""
    if not node.outputs or not net.bound(node.outputs[0]):
        return
    blob = net.blob(node.outputs[0])
    base = net.base
    if blob == base or net.taken(base) or not net.final:
        return
    made = net.layers[first:]
    if not any(blob in layer.proto.top and layer.proto.name == blob for layer in made):
        return
    if any(blob in layer.proto.bottom for layer in made):
        return
    net.rename(blob, base, since=first)


def _output_first(net: NetBuilder, node: ir.Node, first: int) -> None:
    """The Caffe runtime reports a source layer's output as the first top of the last
    layer made for it: when that is not the node's output (a crop keeps a Slice's middle
    piece), the output gets a Split of its own."""
    if len(net.layers) == first or not node.outputs or not net.bound(node.outputs[0]):
        return
    blob = net.blob(node.outputs[0])
    if net.layers[-1].proto.top[:1] != [blob]:
        net.bind(node.outputs[0], net.layer("Split", [blob], net.shape(blob), kind="out"))


def _outputs(net: NetBuilder, graph: ir.Graph) -> list[str]:
    """The graph outputs as blobs no layer reads, named so that Caffe's order (by name)
    is the graph's."""
    read = {b for layer in net.layers for b in layer.proto.bottom}
    blobs: list[str] = []
    for value in graph.outputs:
        blob = net.blob(value)
        if blob in read or blob in blobs or blob in net.inputs or blob in net.masks:
            producer = value.producer()
            if producer is not None:
                net.start_node(producer)
            else:
                net.start_named(caffe_name(value.name or "output"))
            blob = net.layer("Split", [blob], net.shape(blob), kind="output")
        blobs.append(blob)
    if any(a >= b for a, b in zip(blobs, blobs[1:], strict=False)):
        width = len(str(len(blobs)))
        renamed = []
        for k, blob in enumerate(blobs):
            new = net.unique(f"out{k + 1:0{width}d}_{blob}")
            net.rename(blob, new)
            renamed.append(new)
        blobs = renamed
        net.note("outputs renamed out1_..., out2_... so that Caffe lists them in the "
                 "source's order (Caffe orders outputs by name)")
    return blobs


def _silence_unread(net: NetBuilder, outputs: list[str]) -> None:
    """Caffe makes every blob no layer reads a net output: silence the unused pieces."""
    read = {b for layer in net.layers for b in layer.proto.bottom}
    unread = [top for layer in net.layers for top in layer.proto.top
              if top not in read and top not in outputs]
    if unread:
        net.start_named("silence")
        net.layer_tops("Silence", unread, [])


def output_paths(out_dir: str, stem: str) -> dict[str, str]:
    return {"net": os.path.join(out_dir, f"{stem}.prototxt"),
            "weights": os.path.join(out_dir, f"{stem}.caffemodel")}


def write_caffe(net: CaffeNet, out_dir: str, stem: str) -> dict[str, str]:
    """Write the pair atomically; returns the paths."""
    paths = output_paths(out_dir, stem)
    write_atomically({paths["net"]: net.prototxt().encode(), paths["weights"]: net.weights()})
    return paths


def _header(net: CaffeNet, options: WriteOptions) -> list[str]:
    source = options.source
    lines = ["Caffe net written by torch7-migrate"
             + (f" from {os.path.basename(source.paths[0])} ({source.description})"
                if source is not None and source.paths else "")]
    lines += [f"input {name}: {'x'.join(map(str, _shape(net, name)))}" for name in net.inputs]
    lines += [f"note: {text}" for text in net.notes]
    return lines


def _shape(net: CaffeNet, blob: str) -> list[int]:
    for layer in net.layers:
        if layer.proto.type == "Input" and blob in layer.proto.top:
            return list(layer.proto.input_param.shape[0].dim)
    return []


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    net = build_net(model, stem)
    net.header = _header(net, options)
    return WriteResult(write_caffe(net, out_dir, stem), net.notes)


def recognize(paths: list[str]) -> dict[str, str] | None:
    """A Caffe net definition (text prototxt) and a caffemodel, in either order."""
    from migrate.core.sniff import protobuf_kind, read_head, text_protobuf_kind

    if len(paths) != 2:
        return None
    roles: dict[str, str] = {}
    for path in paths:
        head = read_head(path).head
        if text_protobuf_kind(head) == "caffe":
            roles.setdefault("net", path)
        elif protobuf_kind(head) == "caffe":
            roles.setdefault("weights", path)
    return roles if set(roles) == {"net", "weights"} else None
