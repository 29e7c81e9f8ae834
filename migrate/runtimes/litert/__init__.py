"""LiteRT (formerly TensorFlow Lite): the `ai-edge-litert` interpreter runs .tflite files."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="litert",
    label="LiteRT",
    title="LiteRT interpreter (ai-edge-litert, CPU)",
    module="migrate.runtimes.litert.api",
    formats=("tflite",),
    install_hint="pip install ai-edge-litert==2.3.0",
))
