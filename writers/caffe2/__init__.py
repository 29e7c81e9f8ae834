"""Caffe2 writer: the common graph as an `init_net` / `predict_net` pair."""

from writers.caffe2.writer import Caffe2Nets, build_nets, write_caffe2

__all__ = ["Caffe2Nets", "build_nets", "write_caffe2"]
