"""ExecuTorch's own Python runtime (executorch.runtime): runs .pte programs on CPU, with
the XNNPACK delegate they were lowered to."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="executorch",
    label="ExecuTorch",
    title="ExecuTorch runtime (CPU, XNNPACK)",
    module="migrate.runtimes.executorch.api",
    formats=("executorch",),
    install_hint="pip install 'torch7-migrate[executorch]'",
))
