"""Genuine BVLC Caffe (pycaffe from Debian 11 on CPython 3.9), run as a side process."""

from migrate.core.registry import RuntimeSpec, register_runtime

SPEC = register_runtime(RuntimeSpec(
    name="caffe",
    label="Caffe",
    title="BVLC Caffe 1.0.0 (Debian 11 build, CPU, on CPython 3.9; a side runtime)",
    module="migrate.runtimes.caffe.api",
    formats=("caffe",),
    install_hint="migrate runtimes install caffe (about 400 MB: Debian 11's Caffe, its "
                 "libraries and CPython 3.9, in ~/.cache/torch7-migrate)",
    side=True,
))
