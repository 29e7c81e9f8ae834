"""Trigonometric functions (e.g. the rotation of a spatial transformer's matrix)."""

from migrate.writers.caffe2.registry import op_converter


def _unary(caffe2_type, kind):
    def convert(w, node):
        w.simple(caffe2_type, kind, node, inputs=[w.blob(node.inputs[0])])

    return convert


for _onnx, _caffe2, _kind in (("Sin", "Sin", "sin"), ("Cos", "Cos", "cos")):
    op_converter(_onnx)(_unary(_caffe2, _kind))
