"""Caffe: a BVLC Caffe `STEM.prototxt` (readable, provenance comments) + `STEM.caffemodel`."""

from migrate.core.registry import WriterSpec, register_writer

SPEC = register_writer(WriterSpec(
    name="caffe",
    title="Caffe prototxt + caffemodel (BVLC Caffe 1.0 layers)",
    module="migrate.writers.caffe.writer",
    runtime="caffe",
    outputs="STEM.prototxt, STEM.caffemodel",
))
