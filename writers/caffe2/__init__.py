"""Caffe2: a mobile-ready `init_net.pb` + `predict_net.pb` pair (and a readable pbtxt)."""

from migrate.core.registry import WriterSpec, register_writer

SPEC = register_writer(WriterSpec(
    name="caffe2",
    title="Caffe2 NetDef pair, mobile-ready",
    module="migrate.writers.caffe2.writer",
    runtime="caffe2",
    outputs="STEM_init_net.pb, STEM_predict_net.pb, STEM_predict_net.pbtxt",
))
