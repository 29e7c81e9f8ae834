"""The genuine Caffe2 runtime (torch 1.10.2 on CPython 3.9), run as a side process."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="caffe2",
    label="Caffe2",
    title="Caffe2 (torch 1.10.2 on CPython 3.9, a side runtime)",
    module="migrate.runtimes.caffe2.api",
    formats=("caffe2",),
    install_hint="migrate runtimes install caffe2 (about 2 GB: CPython 3.9 from Debian 11 "
                 "packages and the torch 1.10.2 wheel, in ~/.cache/torch7-migrate)",
    side=True,
))
