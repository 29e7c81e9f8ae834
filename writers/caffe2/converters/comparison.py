"""Comparisons and logic (boolean results; Caffe2 broadcasts NumPy-style)."""

from migrate.writers.caffe2.registry import op_converter


def _binary(caffe2_type, kind):
    def convert(w, node):
        w.simple(caffe2_type, kind, node)

    return convert


for _onnx, _caffe2, _kind in (
    ("Less", "LT", "lt"), ("LessOrEqual", "LE", "le"), ("GreaterOrEqual", "GE", "ge"),
    ("Equal", "EQ", "eq"), ("And", "And", "and"), ("Or", "Or", "or"),
):
    op_converter(_onnx)(_binary(_caffe2, _kind))


@op_converter("Not")
def logical_not(w, node):
    w.simple("Not", "not", node)
