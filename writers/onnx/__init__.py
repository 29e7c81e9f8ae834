"""ONNX: the common graph saved as a checked `.onnx` file."""

from migrate.core.registry import WriterSpec, register_writer

SPEC = register_writer(WriterSpec(
    name="onnx",
    title="ONNX (opset 17)",
    module="migrate.writers.onnx.writer",
    runtime="onnxruntime",
    outputs="STEM.onnx",
))
