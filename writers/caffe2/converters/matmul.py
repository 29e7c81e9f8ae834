"""Matrix products between two computed tensors (a product with a weight is a Gemm)."""

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter


@op_converter("MatMul")
def matmul(w, node):
    a, b = node.inputs
    shape_a, shape_b = w.shape(a), w.shape(b)
    if len(shape_a) < 2 or len(shape_b) < 2:
        raise ConversionError("MatMul of a vector has no direct Caffe2 equivalent")
    if len(shape_a) == len(shape_b) == 2:
        w.simple("MatMul", "matmul", node)
        return
    # batches of matrices; batch dimensions broadcast NumPy-style like ONNX's
    same_batch = shape_a[:-2] == shape_b[:-2]
    w.simple("BatchMatMul", "batch_matmul", node, broadcast=None if same_batch else 1)
