"""ExecuTorch: the maintained PyTorch mobile runtime that succeeded Caffe2: `STEM.pte` with
the XNNPACK delegate, made by torch.export of the module the PyTorch writer generates."""

from migrate.core.registry import WriterSpec, register_writer

SPEC = register_writer(WriterSpec(
    name="executorch",
    title="ExecuTorch program (.pte, XNNPACK delegate)",
    module="migrate.writers.executorch.writer",
    runtime="executorch",
    aliases=("pte",),
    outputs="STEM.pte",
    extra="executorch",
))
