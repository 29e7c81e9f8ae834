"""Ops that copy elements to new places: Expand (broadcast to a shape), DepthToSpace."""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("Expand")
def expand(w, node):
    # Caffe2's Expand broadcasts like ONNX's: the output shape when it is known, else
    # the shape the graph computes (an int64 tensor, as Caffe2's Expand takes it)
    x, target = node.inputs
    name = w.prefix("expand")
    out_shape = node.outputs[0].shape
    if out_shape is not None and all(isinstance(d, int) for d in out_shape):
        shape = w.param(np.asarray(list(out_shape), np.int64), f"{name}_shape")
    else:
        shape = w.blob(target)
    w.emit("Expand", [w.blob(x), shape], [name])
    w.bind(node.outputs[0], name)


@op_converter("DepthToSpace")
def depth_to_space(w, node):
    """Reshape to 6-D, Transpose, Reshape back (Caffe2 has no DepthToSpace)."""
    x = node.inputs[0]
    n, c, h, width = w.shape(x)
    r = node.attributes.get_int("blocksize")
    mode = node.attributes.get_string("mode", "DCR")
    if c % (r * r):
        raise ConversionError(f"DepthToSpace: {c} channels do not divide by {r * r}")
    depth = c // (r * r)
    if mode == "CRD":
        split, perm = [n, depth, r, r, h, width], [0, 1, 4, 2, 5, 3]
    elif mode == "DCR":
        split, perm = [n, r, r, depth, h, width], [0, 3, 4, 1, 5, 2]
    else:
        raise ConversionError(f"DepthToSpace mode {mode} is not an ONNX mode")
    w.note("DepthToSpace -> Reshape + Transpose + Reshape (Caffe2 has no DepthToSpace)")
    name = w.prefix("depth_to_space")
    w.emit("Reshape", [w.blob(x)], [f"{name}_split", f"{name}_old_shape"], shape=split)
    w.emit("Transpose", [f"{name}_split"], [f"{name}_moved"], axes=perm)
    w.emit("Reshape", [f"{name}_moved"], [name, f"{name}_moved_shape"],
           shape=[n, depth, h * r, width * r])
    w.bind(node.outputs[0], name)
