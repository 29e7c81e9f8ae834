"""Caffe2 NetDef pairs: an init_net (the weights, as fills) and a predict_net (the ops),
binary or text, in either order."""

from __future__ import annotations

from migrate.core.registry import Claim, FileHead, ReaderSpec, register_reader
from migrate.core.sniff import is_init_net, netdef_op_types, protobuf_kind, text_protobuf_kind


def sniff(head: FileHead) -> Claim | None:
    if protobuf_kind(head.head) == "netdef":
        types = netdef_op_types(head.path)
    elif text_protobuf_kind(head.head) == "netdef":
        from migrate.core.formats.caffe2 import load_netdef

        try:
            types = [op.type for op in load_netdef(head.path).op]
        except Exception:  # a damaged text NetDef: the reader reports it
            types = []
    else:
        return None
    if is_init_net(types):
        return Claim("caffe2", "init_net", "a Caffe2 init_net (the weights)")
    return Claim("caffe2", "predict_net", "a Caffe2 predict_net (the operators)")


SPEC = register_reader(ReaderSpec(
    name="caffe2",
    title="Caffe2 (init_net + predict_net, binary or text NetDef)",
    module="migrate.readers.caffe2.reader",
    sniff=sniff,
    role_sets=(frozenset({"init_net", "predict_net"}),),
    role_order=("init_net", "predict_net"),
    # no suffixes: ".pb" names many kinds of protobuf (a batch must not report every
    # TensorProto beside a model as a broken model)
    runtime="caffe2",
))
