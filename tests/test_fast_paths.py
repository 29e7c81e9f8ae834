"""Correctness of the fast paths (speed itself is measured by bench/bench_convert.py):
packed, streamed GivenTensorFill encoding; memory-mapped tensors; file-to-file weight
copies; and the benchmark's Torch7 writer."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torchfile
from fixtures_t7 import PROJECT_FIXTURES, T7_DIR

from bench import models, t7write
from migrate.core import outputs
from migrate.core.formats.caffe2_pb2 import NetDef
from migrate.core.mapped import FileRegion, file_region
from migrate.readers.torch7 import t7file
from migrate.readers.torch7.module import T7Module
from migrate.readers.torch7.reader import read_torch7
from migrate.writers.caffe2.packed import init_net_chunks
from migrate.writers.caffe2.writer import build_nets, make_arg, write_caffe2

LENET = os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7")


def _classic_init_net(nets) -> NetDef:
    """The same init net built the ordinary way: values through protobuf fields."""
    net = NetDef()
    net.CopyFrom(nets.init_net)
    for op in net.op:
        values = nets.param_values.get(op.output[0])
        if values is not None:
            op.arg.append(make_arg("values", np.asarray(values, np.float32).reshape(-1)))
    return net


def test_streamed_init_net_parses_to_the_classic_encoding(tmp_path):
    nets = build_nets(read_torch7(LENET, [[1, 1, 28, 28]]).model, "lenet")
    paths = write_caffe2(nets, str(tmp_path), "lenet")
    written = NetDef.FromString(open(paths["init_net"], "rb").read())
    assert written == _classic_init_net(nets)  # every field and value equal
    chunks = list(init_net_chunks(nets.init_net, nets.param_values))
    # weights straight from the source file, not copied through Python objects
    assert any(isinstance(c, FileRegion) for c in chunks)


def test_memory_mapped_tensors_equal_torchfiles_copies(shared_dir):
    binary = [p for p in sorted(glob.glob(os.path.join(T7_DIR, "*_float.t7")))
              if "ascii" not in p]  # torchfile reads binary files only
    for path in binary[:40]:
        ours = T7Module(t7file.load(path), "model")
        theirs = torchfile.load(path, use_list_heuristic=False)
        for mine, other in zip(ours.children(), theirs._obj[b"modules"].values(), strict=False):
            for name in ("weight", "bias", "running_mean", "running_var"):
                a, b = mine.fields.get(name), other._obj.get(name.encode())
                if isinstance(b, np.ndarray) and b.size:
                    assert isinstance(a, np.ndarray) and not a.flags.writeable
                    np.testing.assert_array_equal(a, b)


def test_weights_map_back_to_their_bytes_in_the_file():
    conv = T7Module(t7file.load(LENET), "model").children()[0]
    weight = conv.fields["weight"]
    region = file_region(np.ascontiguousarray(weight))
    assert region is not None and region.length == weight.nbytes
    with open(LENET, "rb") as fh:
        fh.seek(region.offset)
        assert fh.read(region.length) == weight.tobytes()
    assert file_region(weight * 2) is None  # a computed array is not in the file


def test_large_outputs_are_written_back_in_steps_and_byte_exact(tmp_path, monkeypatch):
    source = tmp_path / "weights.bin"
    payload = np.random.default_rng(0).integers(0, 256, 40 << 20, dtype=np.uint8)
    source.write_bytes(payload.tobytes())
    computed = np.arange(3 << 20, dtype=np.float32)  # 12 MB that are not in any file
    started: list[tuple[int, int]] = []
    real = outputs._sync_file_range

    def recording(fd, offset, length, flags):
        started.append((offset, length))
        return real(fd, offset, length, flags) if real else 0

    monkeypatch.setattr(outputs, "_sync_file_range", recording)
    target = tmp_path / "out.pb"
    region = FileRegion(str(source), 3, (35 << 20) + 1)  # several copy pieces, odd length
    outputs.write_atomically({str(target): [b"head", region, memoryview(computed), b"tail"]})

    expected = (b"head" + payload[3:3 + region.length].tobytes() + computed.tobytes()
                + b"tail")
    assert target.read_bytes() == expected
    # writeback was started on consecutive ranges, each of at least one step
    assert len(started) >= 3  # 16 + 16 + 15 MB; the last 4 bytes are left to the fsync
    assert [o for o, _ in started] == [0] + [o + n for o, n in started[:-1]]
    assert all(n >= outputs._WRITEBACK_STEP for _, n in started)


def _plain(value):
    """torchfile's decoding with tensors as lists, for comparing two files' content."""
    if isinstance(value, torchfile.TorchObject):
        return (value._typename, _plain(value._obj))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tolist())
    return value


def _rewrite(value):
    """A decoded real Torch7 object, in bench/t7write's terms."""
    if isinstance(value, torchfile.TorchObject):
        cls = value._typename.decode()
        if cls == "torch.LongStorage":
            return t7write.LongStorage(int(v) for v in value._obj)
        return t7write.TorchObject(cls, _rewrite(value._obj))
    if isinstance(value, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _rewrite(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode()
    return value


def test_benchmark_writer_writes_what_real_torch7_writes(tmp_path):
    """A real Torch7 model re-written by bench/t7write decodes, with torchfile as an
    independent reader, to exactly the same content as the original file."""
    original = torchfile.load(LENET, use_list_heuristic=False)
    copy = tmp_path / "lenet_rewritten.t7"
    t7write.save(str(copy), _rewrite(original))
    assert _plain(torchfile.load(str(copy), use_list_heuristic=False)) == _plain(original)


@pytest.mark.parametrize("make, shape", [
    (lambda: models.vgg16(width=1 / 16, image=32, hidden=32, classes=10), [1, 3, 32, 32]),
    (lambda: models.vgg16(width=1 / 16, image=32, hidden=32, classes=10, batch_norm=True),
     [1, 3, 32, 32]),
    (lambda: models.resnet(width=8, blocks=2), [1, 3, 16, 16]),
])
def test_benchmark_models_are_readable_networks(make, shape, tmp_path):
    path = tmp_path / "model.t7"
    t7write.save(str(path), make())
    result = read_torch7(str(path), [shape])
    assert result.model.graph.outputs[0].shape is not None


def test_small_vgg_instance_decodes_the_same_with_both_readers(tmp_path):
    """The benchmark's VGG-16 writer at a small size: our memory-mapped reader and
    torchfile (reading with copies) decode the same objects and numbers."""
    path = tmp_path / "vgg_small.t7"
    t7write.save(str(path), models.vgg16(width=1 / 16, image=32, hidden=32, classes=10))
    ours = t7file.load(str(path))
    theirs = torchfile.load(str(path), use_list_heuristic=False)
    assert _plain(ours) == _plain(theirs)
    convs = [m for m in T7Module(ours, "model").children() if m.cls == "nn.SpatialConvolution"]
    assert len(convs) == 13 and convs[0].fields["weight"].dtype == np.float32


def _onnx_with_big_weight(folder, external: bool) -> tuple[str, np.ndarray]:
    import onnx
    from onnx import helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((64, 32, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 32, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64, 8, 8])],
        initializer=[numpy_helper.from_array(weight, "w")])
    path = os.path.join(folder, "big.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path,
              save_as_external_data=external, location="big.weights" if external else None)
    return path, weight


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
def test_onnx_weights_are_views_of_the_mapped_file(external, tmp_path):
    """ONNX initializers are not copied by protobuf: views of the memory-mapped file (the
    model itself, or its external data file), which writers copy file to file."""
    from migrate.core.mapped import file_region
    from migrate.pipeline import ConvertOptions, read_source

    path, weight = _onnx_with_big_weight(str(tmp_path), external)
    model = read_source(path, ConvertOptions()).model
    array = model.graph.initializers["w"].const_value.numpy()
    np.testing.assert_array_equal(array, weight)
    region = file_region(array)
    assert region is not None
    expected_file = str(tmp_path / ("big.weights" if external else "big.onnx"))
    assert region.path == expected_file
    with open(expected_file, "rb") as fh:
        fh.seek(region.offset)
        assert fh.read(region.length) == weight.tobytes()
