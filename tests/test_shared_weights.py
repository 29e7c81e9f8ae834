"""A tensor shared by several modules is converted once and referenced twice."""

from __future__ import annotations

import os

import numpy as np
import torchfile
from fixtures_t7 import T7_DIR

from migrate.readers.torch7 import t7file
from migrate.readers.torch7.module import T7Module
from migrate.readers.torch7.reader import build_graph
from migrate.runtimes.ort.api import run_onnx
from migrate.writers.caffe2.writer import build_nets


def test_module_used_twice_gives_one_set_of_weights(shared_dir):
    # the real BatchNormalization layer, applied twice (as a net that reuses a module does)
    seq = t7file.load(os.path.join(T7_DIR, "layer_SpatialBatchNormalization_float.t7"))
    bn = seq._obj[b"modules"][1]
    shared = torchfile.TorchObject(b"nn.Sequential", {b"modules": {1: bn, 2: bn}})
    model = build_graph(T7Module(shared, "model"), "shared", [[1, 4, 9, 11]]).model
    params = [v for v in model.graph.initializers.values() if v.const_value.size > 1]
    assert len(params) == 4  # scale, bias, mean, var: once
    nodes = [n for n in model.graph if n.op_type == "BatchNormalization"]
    assert len(nodes) == 2 and list(nodes[0].inputs[1:]) == list(nodes[1].inputs[1:])

    nets = build_nets(model, "shared")
    fills = [op.output[0] for op in nets.init_net.op if op.output[0] != "data"]
    assert sorted(fills) == ["spatbn1_b", "spatbn1_riv", "spatbn1_rm", "spatbn1_s"]
    second = nets.predict_net.op[1]
    assert list(second.input[1:]) == ["spatbn1_s", "spatbn1_b", "spatbn1_rm", "spatbn1_riv"]
    # and it still computes: two identical BN steps in a row are not the identity
    x = np.random.default_rng(0).standard_normal((1, 4, 9, 11)).astype(np.float32)
    (y,) = run_onnx(model, [x])
    assert y.shape == x.shape and not np.allclose(y, x)
