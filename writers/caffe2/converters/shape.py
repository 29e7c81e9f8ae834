"""Shape-only ops."""

from writers.caffe2.registry import op_converter


@op_converter("Reshape")
def reshape(w, node):
    x, shape = node.inputs
    name = w.prefix("reshape")
    target = [int(v) for v in w.const(shape)]
    if 0 in target:  # ONNX 0 = copy the input dim; Caffe2 means the same
        pass
    w.emit("Reshape", [w.blob(x)], [name, f"{name}_old_shape"], shape=target)
    w.bind(node.outputs[0], name)


def _axes(w, node):
    rank = len(w.shape(node.inputs[0]))
    axes = [int(a) for a in w.const(node.inputs[1])]
    return rank, axes


@op_converter("Unsqueeze")
def unsqueeze(w, node):
    rank, axes = _axes(w, node)
    dims = sorted(a % (rank + len(axes)) for a in axes)
    w.simple("ExpandDims", "expand", node, inputs=[w.blob(node.inputs[0])], dims=dims)


@op_converter("Squeeze")
def squeeze(w, node):
    rank, axes = _axes(w, node)
    dims = sorted(a % rank for a in axes)
    w.simple("Squeeze", "squeeze", node, inputs=[w.blob(node.inputs[0])], dims=dims)


@op_converter("Identity")
def identity(w, node):
    w.simple("Copy", "copy", node)
