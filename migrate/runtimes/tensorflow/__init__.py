"""TensorFlow: loads a SavedModel written by the tf writer and calls its signature."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="tensorflow",
    label="TensorFlow",
    title="TensorFlow (tensorflow-cpu, SavedModel signatures)",
    module="migrate.runtimes.tensorflow.api",
    formats=("tf",),
    install_hint="pip install tensorflow-cpu==2.21.0",
))
