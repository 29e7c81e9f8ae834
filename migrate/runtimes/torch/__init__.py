"""PyTorch itself (CPU): runs PyTorch files for verification."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="torch",
    label="PyTorch",
    title="PyTorch (CPU, torch 2.13)",
    module="migrate.runtimes.torch.api",
    formats=("pytorch",),
    install_hint="pip install 'torch7-migrate[torch]'",
))
