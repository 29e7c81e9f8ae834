"""Real frameworks that run a format, for verification. Importing this package
registers every built-in runtime (each module is imported only when used)."""

from migrate.core.registry import RuntimeSpec, register_runtime

register_runtime(RuntimeSpec(
    name="onnxruntime",
    label="onnxruntime",
    title="ONNX Runtime (CPU)",
    module="migrate.runtimes.onnxrt",
    formats=("onnx",),
    install_hint="pip install onnxruntime (a dependency of torch7-migrate)",
))
register_runtime(RuntimeSpec(
    name="caffe2",
    label="Caffe2",
    title="Caffe2 (torch 1.10.2 on CPython 3.9, a side runtime)",
    module="migrate.runtimes.caffe2",
    formats=("caffe2",),
    install_hint="migrate runtimes install caffe2 (about 2 GB: CPython 3.9 from Debian 11 "
                 "packages and the torch 1.10.2 wheel, in ~/.cache/torch7-migrate)",
    side=True,
))
