"""The Caffe2 nets' structure: brew naming, one op per layer where Caffe2 has one,
mobile_exporter layout, and a wire format that Caffe2's own schema parses."""

from __future__ import annotations

import os

import numpy as np
from fixtures_t7 import PROJECT_FIXTURES, T7_DIR

from migrate.core.formats.caffe2_pb2 import NetDef
from migrate.readers.torch7.reader import read_torch7
from migrate.writers.caffe2.writer import build_nets

LENET = os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7")


def _nets(path, shapes):
    return build_nets(read_torch7(path, shapes).model, "net")


def test_lenet_is_one_caffe2_op_per_layer():
    nets = _nets(LENET, [[2, 1, 28, 28]])
    assert [op.type for op in nets.predict_net.op] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Reshape",
        "FC", "Relu", "FC", "Relu", "FC", "Softmax", "Log"]  # LogSoftmax = Softmax + Log
    outputs = [op.output[0] for op in nets.predict_net.op]
    assert outputs[:3] == ["conv1", "relu1", "pool1"] and outputs[7] == "fc1"
    assert nets.predict_net.op[0].debug_info == "model.modules[1] (nn.SpatialConvolution)"
    args = {a.name: a for a in nets.predict_net.op[0].arg}
    assert args["order"].s == b"NCHW" and args["kernel_h"].i == 5
    assert all(not op.engine for op in nets.predict_net.op)


def test_mobile_exporter_layout():
    nets = _nets(LENET, [[1, 1, 28, 28]])
    params = [op.output[0] for op in nets.init_net.op if op.output[0] != "data"]
    assert list(nets.predict_net.external_input) == ["data", *params]
    assert list(nets.predict_net.external_output) == ["log1"]
    for op in nets.full_init_net().op:
        assert op.type == "GivenTensorFill"
        args = {a.name: a for a in op.arg}
        assert len(args["values"].floats) == int(np.prod(args["shape"].ints))


def test_weights_are_stored_exactly_and_packed():
    nets = _nets(LENET, [[1, 1, 28, 28]])
    fill = next(op for op in nets.full_init_net().op if op.output[0] == "conv1_w")
    args = {a.name: a for a in fill.arg}
    values = np.asarray(args["values"].floats, np.float32).reshape(list(args["shape"].ints))
    from migrate.readers.torch7 import t7file
    from migrate.readers.torch7.module import T7Module

    conv = T7Module(t7file.load(LENET), "model").children()[0]
    np.testing.assert_array_equal(values, conv.tensor("weight"))
    wire = fill.SerializeToString()
    # packed repeated float: one length-delimited field (tag 5, wire type 2) = 0x2a
    assert b"\x2a" in wire and len(wire) < values.size * 4 + 100


def test_table_io_model_gets_named_inputs_and_outputs(shared_dir):
    path = os.path.join(T7_DIR, "c_table_io_float.t7")
    nets = _nets(path, [[1, 3, 6, 6], [1, 2, 6, 6]])
    assert list(nets.predict_net.external_input[:2]) == ["data1", "data2"]
    assert len(nets.predict_net.external_output) == 2


def test_files_parse_with_a_plain_netdef():
    nets = _nets(LENET, [[1, 1, 28, 28]])
    again = NetDef.FromString(nets.predict_net.SerializeToString())
    assert again == nets.predict_net
