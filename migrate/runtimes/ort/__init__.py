"""ONNX Runtime: runs .onnx files, and the common graph itself as the reference for
sources no maintained framework runs (Torch7)."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="onnxruntime",
    label="onnxruntime",
    title="ONNX Runtime (CPU)",
    module="migrate.runtimes.ort.api",
    formats=("onnx",),
    install_hint="pip install onnxruntime (a dependency of torch7-migrate)",
))
