"""Caffe as a source, proven against genuine BVLC Caffe (the side runtime) and the
outputs real Caffe recorded in ../shared/fixtures/real/caffe/refs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fixtures_t7 import REAL_DIR

CAFFE_DIR = os.path.join(REAL_DIR, "caffe")

# name -> (definition, weights), relative to CAFFE_DIR; refs/<name>.npz holds real
# Caffe's outputs on the stored `__input__`
REAL_MODELS = {
    "lenet": ("lenet/lenet.prototxt", "lenet/lenet_iter_10000.caffemodel"),
    "cifar10": ("cifar10/cifar10_quick.prototxt", "cifar10/cifar10_quick_iter_5000.caffemodel"),
    "det1": ("mtcnn/det1.prototxt", "mtcnn/det1.caffemodel"),
    "det2": ("mtcnn/det2.prototxt", "mtcnn/det2.caffemodel"),
    "det3": ("mtcnn/det3.prototxt", "mtcnn/det3.caffemodel"),
}


def real_files(name: str) -> dict[str, str]:
    net, weights = REAL_MODELS[name]
    return {"net": os.path.join(CAFFE_DIR, net), "weights": os.path.join(CAFFE_DIR, weights)}


def real_ref(name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with np.load(os.path.join(CAFFE_DIR, "refs", f"{name}.npz")) as npz:
        outputs = {k: npz[k] for k in npz.files if k != "__input__"}
        return npz["__input__"], outputs


# -- the runtime ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_runs(shared_dir, caffe_python):
    """Every real model run once, layer by layer, in real Caffe (one process)."""
    from migrate.runtimes.caffe import api

    jobs = [(real_files(name), [real_ref(name)[0]]) for name in REAL_MODELS]
    return dict(zip(REAL_MODELS, api.run_many(jobs, caffe_python, layers=True), strict=True))


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_runtime_reproduces_the_recorded_outputs(real_runs, name):
    run = real_runs[name]
    assert not isinstance(run, str), run
    _, expected = real_ref(name)
    # Caffe's outputs come in its own order: the output blobs sorted by name
    assert [o.shape for o in run.outputs] == [expected[k].shape for k in sorted(expected)]
    for key, got in zip(sorted(expected), run.outputs, strict=True):
        np.testing.assert_allclose(got, expected[key], atol=1e-5, rtol=0)


def test_runtime_sees_layers_that_in_place_layers_overwrite(real_runs):
    """cifar10's relu1 runs in place on pool1's blob: each layer's own output is kept."""
    run = real_runs["cifar10"]
    pool1, relu1 = run.layers["pool1"], run.layers["relu1"]
    assert run.tensor_names["pool1"] == run.tensor_names["relu1"] == "pool1"
    assert pool1.min() < 0 and np.array_equal(relu1, np.maximum(pool1, 0))


def test_runtime_keys_layers_by_provenance_comments(tmp_path, caffe_python):
    from migrate.core.formats.caffe import provenance_comment
    from migrate.runtimes.caffe import api

    net = tmp_path / "net.prototxt"
    net.write_text(
        'input: "x"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
        f"{provenance_comment('model.modules[1]', 'nn.ReLU')}\n"
        'layer {\n  name: "relu"\n  type: "ReLU"\n  bottom: "x"\n  top: "y"\n}\n'
        'layer { name: "tanh" type: "TanH" bottom: "y" top: "z" }\n')
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    run = api.run({"net": str(net)}, [x], layers=True, python=caffe_python)
    # keys: the commented layer's source path; the others' (and Caffe's Input layer) names
    assert set(run.layers) == {"input", "model.modules[1]", "tanh"}
    np.testing.assert_allclose(run.layers["model.modules[1]"], np.maximum(x, 0), atol=1e-7)
    np.testing.assert_allclose(run.outputs[0], np.tanh(np.maximum(x, 0)), atol=1e-6)


def test_runtime_abort_is_one_clear_error_and_later_nets_still_run(tmp_path, caffe_python):
    from migrate.runtimes.caffe import api

    fork = tmp_path / "fork.prototxt"  # BVLC Caffe cannot parse a fork layer's parameters
    fork.write_text('input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                    'layer { name: "p" type: "Permute" bottom: "x" top: "y" '
                    "permute_param { order: 0 order: 2 order: 1 order: 3 } }\n")
    plain = tmp_path / "plain.prototxt"
    plain.write_text('input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                     'layer { name: "s" type: "Sigmoid" bottom: "x" top: "y" }\n')
    x = np.zeros((1, 2, 3, 3), np.float32)
    results = api.run_many([({"net": str(fork)}, [x]), ({"net": str(plain)}, [x])],
                           caffe_python)
    assert isinstance(results[0], str) and "permute_param" in results[0], results[0]
    assert "\n" not in results[0]
    np.testing.assert_allclose(results[1].outputs[0], np.full((1, 2, 3, 3), 0.5), atol=1e-7)


# -- the real models: to ONNX and Caffe2, against real Caffe's recorded outputs -----------

@pytest.fixture(scope="module")
def real_converted(shared_dir, tmp_path_factory):
    """Each real model read once and written as ONNX and as Caffe2 nets (verification is
    done below, against the stored outputs, in one runtime process per format)."""
    from migrate.pipeline import convert

    out = tmp_path_factory.mktemp("real")
    converted = {}
    for name in REAL_MODELS:
        files = real_files(name)
        paths = [files["net"], files["weights"]]
        shape = list(real_ref(name)[0].shape)  # LeNet declares a batch of 64; refs use 1
        converted[name] = {
            target: convert(paths, to=target, out_dir=str(out / target), verify=False,
                            input_shapes=[shape]).outputs
            for target in ("onnx", "caffe2")}
    return converted


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_model_in_onnxruntime_matches_real_caffe(real_converted, name):
    import onnx

    from migrate.runtimes.ort.api import run_onnx

    x, expected = real_ref(name)
    path = real_converted[name]["onnx"]["onnx"]
    # the outputs are Caffe's: its output blobs, by name, in Caffe's (sorted) order
    assert [o.name for o in onnx.load(path, load_external_data=False).graph.output] == \
        sorted(expected)
    for key, got in zip(sorted(expected), run_onnx(path, [x]), strict=True):
        np.testing.assert_allclose(got, expected[key], atol=1e-4, rtol=1e-4)


def test_real_models_in_real_caffe2_match_real_caffe(real_converted, caffe2_python):
    from migrate.runtimes.caffe2 import api as caffe2

    jobs = [(real_converted[name]["caffe2"], [real_ref(name)[0]]) for name in REAL_MODELS]
    for name, run in zip(REAL_MODELS, caffe2.run_many(jobs, caffe2_python), strict=True):
        assert not isinstance(run, str), f"{name}: {run}"
        _, expected = real_ref(name)
        for key, got in zip(sorted(expected), run.outputs, strict=True):
            np.testing.assert_allclose(got, expected[key], atol=1e-4, rtol=1e-4,
                                       err_msg=f"{name}: {key}")


def test_the_v1_caffemodel_is_read_with_legacy_blob_shapes(shared_dir):
    """cifar10_quick's weights are V1 (`layers`, enum types, num/channels/height/width
    blob shapes): the reader maps them like Caffe's upgrade and ShapeEquals."""
    from migrate.readers.caffe.weights import load_weights

    weights = load_weights(real_files("cifar10")["weights"], 1 << 30)
    conv1 = weights.layers["conv1"]
    assert conv1.type == "4"  # V1LayerParameter.CONVOLUTION, stored as an enum
    assert conv1.blobs[1].legacy == (1, 1, 1, 32) and conv1.blobs[1].fits([32])


def test_cli_conversion_is_verified_layer_by_layer_against_real_caffe(
        shared_dir, caffe_python, tmp_path, capsys):
    from migrate.cli import main

    files = real_files("det1")
    assert main([files["net"], files["weights"], "--to", "onnx", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vs the source files in Caffe (real runtime)" in out and "OK" in out
    assert (tmp_path / "det1.onnx").exists()
    # migrate verify with an image as the input, layer by layer
    import cv2

    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (12, 12, 3), np.uint8))
    assert main(["verify", files["net"], files["weights"], str(tmp_path / "det1.onnx"),
                 "--input", str(image)]) == 0
    out = capsys.readouterr().out
    assert "layer-by-layer: onnxruntime (real runtime) vs the source files in Caffe" in out
    assert "PReLU1 (PReLU)" in out and "every layer within" in out


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_opencv_second_opinion_on_the_real_files(real_converted, name):
    """OpenCV's own Caffe importer reads the same files: it agrees with real Caffe and
    with our conversion."""
    cv2 = pytest.importorskip("cv2")
    from migrate.runtimes.ort.api import run_onnx

    files = real_files(name)
    x, expected = real_ref(name)
    net = cv2.dnn.readNetFromCaffe(files["net"], files["weights"])
    net.setInput(x)
    names = sorted(expected)
    theirs = net.forward(names)
    ours = run_onnx(real_converted[name]["onnx"]["onnx"], [x])
    for key, a, b in zip(names, theirs, ours, strict=True):
        np.testing.assert_allclose(a.reshape(expected[key].shape), expected[key], atol=1e-4)
        np.testing.assert_allclose(b, a.reshape(b.shape), atol=1e-4)


# -- hand-written nets for the layers the real models lack --------------------------------

@pytest.fixture(scope="module")
def hand_nets(caffe_python, tmp_path_factory):
    """The nets of caffe_nets.py with weights real Caffe made, each read by our reader,
    and real Caffe's outputs of every layer on a seeded input (one Caffe process)."""
    from caffe_nets import ALL_NETS, INTEGER_INPUTS, make_weights

    from migrate.pipeline import ConvertOptions, read_source
    from migrate.runtimes.caffe import api

    files = make_weights(caffe_python, str(tmp_path_factory.mktemp("nets")), ALL_NETS)
    sources, inputs = {}, {}
    for name, f in files.items():
        sources[name] = read_source([f["net"], f["weights"]], ConvertOptions())
        rng = np.random.default_rng(0)
        inputs[name] = [rng.integers(0, INTEGER_INPUTS[name], s.shape).astype(np.float32)
                        if name in INTEGER_INPUTS else
                        rng.standard_normal(s.shape).astype(np.float32)
                        for s in sources[name].inputs]
    runs = api.run_many([(files[n], inputs[n]) for n in files], caffe_python, layers=True)
    return {n: (files[n], sources[n], inputs[n], run) for n, run in zip(files, runs,
                                                                        strict=True)}


@pytest.mark.parametrize("name", ["pooling", "convolution", "normalization", "elementwise",
                                  "shape", "v1", "v0", "deploy", "embed"])
def test_hand_written_net_matches_real_caffe_layer_by_layer(hand_nets, name):
    from migrate.runtimes.ort.api import run_model
    from migrate.verify.layerwise import compare_runs

    _, source, inputs, caffe_run = hand_nets[name]
    assert not isinstance(caffe_run, str), caffe_run
    ours = run_model(source.model, inputs, layers=True)
    result = compare_runs(source.model, caffe_run, ours, runtime="onnxruntime",
                          reference_label="Caffe", atol=1e-4, rtol=1e-4)
    compared = [row for row in result.layers if row.max_abs is not None]
    failed = [f"{row.label}: {row.max_abs} {row.note}" for row in result.layers
              if row.passed is False]
    assert not failed, failed
    # every layer that makes nodes is compared with Caffe's own output of that layer
    assert len(compared) == len(result.layers) and result.outputs.passed


def test_caffe_pooling_sizes_ceil_clip_and_floor(hand_nets):
    """The pooling net's shapes are Caffe's (ceil rounding, the last window dropped when
    it would start in the padding, round_mode FLOOR)."""
    _, source, _, caffe_run = hand_nets["pooling"]
    shapes = {k: list(v.shape) for k, v in caffe_run.layers.items()}
    assert shapes["max_ceil"] == [1, 3, 4, 5]  # ceil((8-3)/2)+1 = 4, ceil((11-3)/2)+1 = 5
    assert shapes["max_pad_clip"] == [1, 3, 5, 6]  # 11: ceil(11/2)+1 = 7, clipped to 6
    assert shapes["max_floor"] == [1, 3, 3, 5]
    kinds = {n.metadata_props["source.path"]: n.op_type for n in source.model.graph}
    assert kinds["ave_pad_ceil"] == "Mul"  # average rescaled to Caffe's clipped windows


def test_binary_definition_reads_like_its_text(hand_nets, tmp_path, caffe_python):
    from google.protobuf import text_format

    from migrate.core.formats import caffe_pb2
    from migrate.pipeline import ConvertOptions, read_source
    from migrate.runtimes.caffe import api
    from migrate.runtimes.ort.api import run_model

    files, _, inputs, caffe_run = hand_nets["convolution"]
    net = caffe_pb2.NetParameter()
    text_format.Parse(open(files["net"]).read(), net)
    binary = tmp_path / "convolution_net.pb"
    binary.write_bytes(net.SerializeToString())
    source = read_source([str(binary), files["weights"]], ConvertOptions())
    assert "binary definition" in source.description
    ours = run_model(source.model, inputs).outputs
    theirs = api.run({"net": str(binary), "weights": files["weights"]}, inputs,
                     python=caffe_python).outputs
    for a, b, c in zip(ours, theirs, caffe_run.outputs, strict=True):
        np.testing.assert_allclose(a, c, atol=1e-4)
        np.testing.assert_array_equal(b, c)


def test_weightless_net_pairs_with_its_caffemodel(hand_nets):
    """A net without weights saves a caffemodel without blobs: it still plays the
    weights role beside its prototxt."""
    from migrate.core.detect import resolve_source

    files = hand_nets["pooling"][0]
    spec, ordered = resolve_source([files["weights"], files["net"]])
    assert spec.name == "caffe" and ordered == [files["net"], files["weights"]]


def test_training_definition_reads_as_its_deploy_net(hand_nets, tmp_path):
    """A train_val prototxt: TRAIN-only layers and the data layer dropped (its data is
    the input, its transform_param describes it), Accuracy and the loss dropped, so the
    net computes what its deploy version computes in real Caffe."""
    from caffe_nets import TRAIN_VAL

    from migrate.pipeline import ConvertOptions, read_source
    from migrate.runtimes.ort.api import run_model

    files, _, inputs, caffe_run = hand_nets["deploy"]
    train_val = tmp_path / "train_val.prototxt"
    train_val.write_text(TRAIN_VAL)
    source = read_source([str(train_val), files["weights"]],
                         ConvertOptions(input_shapes=[[1, 3, 8, 8]]))
    assert source.runtime_files is None  # Caffe would read the LMDB: not the reference
    (info,) = source.inputs
    assert info.expects == ("BGR, 0-255, mean (104, 117, 123) subtracted, then times 0.017, "
                            "8x8 centre crop")
    notes = " ".join(source.notes)
    assert "data layer(s) data dropped" in notes and "accuracy (Accuracy)" in notes
    assert "loss (SoftmaxWithLoss)" in notes and "outside the TEST phase" in notes
    assert [v.name for v in source.model.graph.outputs] == ["fc"]
    np.testing.assert_allclose(run_model(source.model, inputs).outputs[0],
                               caffe_run.layers["fc"], atol=1e-4)


def test_a_data_layer_without_a_shape_asks_for_input_shape(hand_nets, tmp_path):
    from caffe_nets import TRAIN_VAL

    from migrate.core.errors import UsageError
    from migrate.pipeline import ConvertOptions, read_source

    train_val = tmp_path / "train_val.prototxt"
    train_val.write_text(TRAIN_VAL)
    with pytest.raises(UsageError, match="--input-shape"):
        read_source([str(train_val), hand_nets["deploy"][0]["weights"]], ConvertOptions())


def test_fork_layers_match_opencv(tmp_path):
    """Permute, Normalize, Interp, ReLU6, ShuffleChannel and ConvolutionDepthwise: BVLC
    Caffe cannot parse them; OpenCV's Caffe importer implements them."""
    cv2 = pytest.importorskip("cv2")
    from caffe_nets import FORK_BLOBS, FORK_NET, write_caffemodel

    from migrate.pipeline import ConvertOptions, read_source
    from migrate.runtimes.ort.api import run_model

    net, weights = tmp_path / "fork.prototxt", tmp_path / "fork.caffemodel"
    net.write_text(FORK_NET)
    write_caffemodel(FORK_NET, str(weights), FORK_BLOBS)
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 6)).astype(np.float32) * 4
    source = read_source([str(net), str(weights)], ConvertOptions())
    assert source.runtime_files is None and "fork layer(s)" in " ".join(source.notes)
    ours = run_model(source.model, [x], layers=True).layers
    opencv = cv2.dnn.readNetFromCaffe(str(net), str(weights))
    opencv.setInput(x)
    names = ["permute", "norm", "norm_all", "interp", "interp_hw", "relu6", "shuffle", "dw"]
    for name, theirs in zip(names, opencv.forward(names), strict=True):
        np.testing.assert_allclose(ours[name], theirs.reshape(ours[name].shape), atol=1e-5,
                                   err_msg=name)
        assert ours[name].shape == theirs.shape, name


def test_fork_upsample_is_bvlc_nearest_deconvolution(hand_nets, tmp_path):
    """The YOLOv3 ports' Upsample (OpenCV lacks it) = real Caffe's per-channel 2x2
    deconvolution of ones on the same input."""
    from caffe_nets import UPSAMPLE_NET, write_caffemodel

    from migrate.pipeline import ConvertOptions, read_source
    from migrate.runtimes.ort.api import run_model

    _, _, inputs, caffe_run = hand_nets["deconv_upsample"]
    net, weights = tmp_path / "up.prototxt", tmp_path / "up.caffemodel"
    net.write_text(UPSAMPLE_NET)
    write_caffemodel(UPSAMPLE_NET, str(weights), {})
    source = read_source([str(net), str(weights)], ConvertOptions())
    np.testing.assert_array_equal(run_model(source.model, inputs).outputs[0],
                                  caffe_run.outputs[0])


# -- what cannot be converted: said once, completely --------------------------------------

def _cli(capsys, *args: str) -> tuple[int, str]:
    from migrate.cli import main

    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def _net_with(tmp_path, body: str, name: str = "net") -> tuple[str, str]:
    """A prototxt and a caffemodel (no blobs) for it."""
    from caffe_nets import write_caffemodel

    text = 'input: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n' + body
    net, weights = tmp_path / f"{name}.prototxt", tmp_path / f"{name}.caffemodel"
    net.write_text(text)
    write_caffemodel(text, str(weights), {})
    return str(net), str(weights)


def test_unsupported_layers_are_all_listed_with_their_names(tmp_path, capsys):
    net, weights = _net_with(tmp_path, """
layer { name: "mbox_priorbox" type: "PriorBox" bottom: "data" top: "prior" }
layer { name: "sig" type: "Sigmoid" bottom: "data" top: "sig" }
layer { name: "detection_out" type: "DetectionOutput" bottom: "prior" top: "out" }
layer { name: "prior2" type: "PriorBox" bottom: "sig" top: "prior2" }
""")
    code, err = _cli(capsys, net, weights, "-o", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1, err
    assert "DetectionOutput, PriorBox" in err
    for name in ("'mbox_priorbox' (PriorBox)", "'detection_out' (DetectionOutput)",
                 "'prior2' (PriorBox)"):
        assert name in err
    assert "plugin" in err


def test_a_plugin_adds_a_layer_type(tmp_path, capsys):
    net, weights = _net_with(tmp_path, """
layer { name: "twice" type: "Doubler" bottom: "data" top: "twice" doubler_param { k: 2 } }
""")
    plugin = tmp_path / "doubler.py"
    plugin.write_text(
        "import re\n"
        "from migrate.plugins import caffe_layer\n\n"
        "@caffe_layer('Doubler')\n"
        "def doubler(ctx, layer, bottoms):\n"
        "    k = float(re.search(r'k:\\s*([\\d.]+)', ctx.text).group(1))\n"
        "    return ctx.op('Mul', [bottoms[0], ctx.scalar(k)])\n")
    code, err = _cli(capsys, net, weights, "--plugin", str(plugin), "--to", "onnx",
                     "-o", str(tmp_path / "out"))
    assert code == 0, err
    from migrate.runtimes.ort.api import run_onnx

    x = np.arange(192, dtype=np.float32).reshape(1, 3, 8, 8)
    np.testing.assert_array_equal(run_onnx(str(tmp_path / "out" / "net.onnx"), [x])[0], 2 * x)


def test_a_fork_field_on_a_bvlc_layer_is_an_error_not_ignored(tmp_path, capsys):
    net, weights = _net_with(tmp_path, """
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 pad_type: 1 } }
""")
    code, err = _cli(capsys, net, weights, "-o", str(tmp_path / "out"))
    assert code == 2 and "'pool' (Pooling): PoolingParameter.pad_type" in err, err


# -- hostile and mistaken input: one line, exit status 2, bounded work --------------------

def _hostile_caffe(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (definition, weights), each damaged or hostile one way."""
    from migrate.core.sniff import encode_len_field, encode_varint

    lenet_net, lenet_weights = real_files("lenet")["net"], real_files("lenet")["weights"]
    text = open(lenet_net).read()
    weights = open(lenet_weights, "rb").read()
    cases = {}

    def write(name: str, data: bytes | str) -> str:
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    cases["truncated_prototxt"] = (write("t.prototxt", text[:len(text) // 2]), lenet_weights)
    cases["garbage_in_prototxt"] = (write("g.prototxt", text.replace("kernel_size: 5",
                                                                     "kernel_size: five")),
                                    lenet_weights)
    cases["truncated_caffemodel"] = (lenet_net, write("t.caffemodel", weights[:len(weights) // 2]))
    # a blob declaring 10^6 x 10^6 values backed by 4 bytes
    shape = encode_len_field(7, encode_len_field(1, encode_varint(10**6) + encode_varint(10**6)))
    blob = shape + encode_len_field(5, b"\0\0\0\0")
    layer = encode_len_field(1, b"conv1") + encode_len_field(2, b"Convolution") + \
        encode_len_field(7, blob)
    cases["huge_blob"] = (lenet_net, write("h.caffemodel", encode_len_field(100, layer)))
    # a layer claiming 2^40 bytes
    cases["huge_length"] = (lenet_net, write("l.caffemodel", encode_varint(100 << 3 | 2)
                                             + encode_varint(1 << 40) + b"\0" * 64))
    cycle = ('input: "data" input_shape { dim: 1 dim: 1 dim: 4 dim: 4 }\n'
             'layer { name: "a" type: "ReLU" bottom: "b" top: "a" }\n'
             'layer { name: "b" type: "ReLU" bottom: "a" top: "b" }\n')
    cases["cycle"] = (write("c.prototxt", cycle), lenet_weights)
    many = 'input: "data" input_shape { dim: 1 }\n' + 'layer { type: "ReLU" }\n' * 1_000_001
    cases["million_layers"] = (write("m.prototxt", many), lenet_weights)
    deep = "layer { " + "convolution_param { " * 50_000 + "} " * 50_001
    cases["deep_nesting"] = (write("d.prototxt", 'input: "data"\n' + deep), lenet_weights)
    cases["other_models_weights"] = (lenet_net, real_files("det1")["weights"])
    cases["wrong_blob_shape"] = (write("w.prototxt", text.replace("num_output: 20",
                                                                  "num_output: 21")),
                                 lenet_weights)
    return cases


def test_hostile_caffe_files_give_one_line_and_exit_2(shared_dir, tmp_path, capsys):
    import time

    expected = {
        "truncated_prototxt": "never closed", "garbage_in_prototxt": "line ",
        "truncated_caffemodel": "ends before",
        "huge_blob": "needs 4,000,000,000,000 bytes", "huge_length": "ends before",
        "cycle": "takes blob 'b', which no earlier layer makes",
        "million_layers": "more than 100,000 layers", "deep_nesting": "nested too deep",
        "other_models_weights": "has shape [10, 3, 3, 3] in the caffemodel",
        "wrong_blob_shape": "'conv1' (Convolution): blob 0 has shape [20, 1, 5, 5]",
    }
    for name, (net, weights) in _hostile_caffe(tmp_path).items():
        start = time.perf_counter()
        code, err = _cli(capsys, net, weights, "-o", str(tmp_path / "out"), "--no-verify")
        assert code == 2, (name, err)
        assert err.startswith("migrate: error: ") and err.count("\n") == 1, (name, err)
        assert expected[name] in err, (name, err)
        assert time.perf_counter() - start < 20, name
        assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_one_file_of_a_caffe_model_says_which_other_it_needs(shared_dir, capsys):
    files = real_files("lenet")
    code, err = _cli(capsys, files["weights"], "-o", "/tmp/unused-out")
    assert code == 2 and "Caffe weights" in err and "deploy .prototxt" in err, err
    code, err = _cli(capsys, files["net"], "-o", "/tmp/unused-out")
    assert code == 2 and "trained weights (the .caffemodel" in err, err


def test_batch_pairs_definitions_with_their_caffemodels(shared_dir, tmp_path):
    """Same stem (lenet + lenet_iter_10000), else the caffemodel sharing layer names."""
    import shutil

    from migrate.batch.discover import discover

    for name in ("lenet", "det1", "det2"):
        files = real_files(name)
        shutil.copy(files["net"], tmp_path / os.path.basename(files["net"]))
        shutil.copy(files["weights"], tmp_path / os.path.basename(files["weights"]))
    # renamed: no stem in common with its definition
    os.rename(tmp_path / "det2.caffemodel", tmp_path / "rnet_weights_final.caffemodel")
    found = {tuple(f.paths) for f in discover(str(tmp_path)) if f.format == "caffe"}
    assert found == {("lenet.prototxt", "lenet_iter_10000.caffemodel"),
                     ("det1.prototxt", "det1.caffemodel"),
                     ("det2.prototxt", "rnet_weights_final.caffemodel")}


def test_a_mean_file_is_described_with_its_channel_means(hand_nets, tmp_path):
    from caffe_nets import TRAIN_VAL

    from migrate.core.formats import caffe_pb2
    from migrate.pipeline import ConvertOptions, read_source

    mean = caffe_pb2.BlobProto(num=1, channels=3, height=2, width=2)
    mean.data.extend([104.0] * 4 + [117.0] * 4 + [123.0] * 4)
    (tmp_path / "mean.binaryproto").write_bytes(mean.SerializeToString())
    # the TEST-phase data layer (the one kept) takes its mean from a file
    text = TRAIN_VAL.replace("mean_value: 104 mean_value: 117 mean_value: 123",
                             'mean_file: "mean.binaryproto"')
    assert text.count("mean_file") == 1
    train_val = tmp_path / "train_val.prototxt"
    train_val.write_text(text)
    source = read_source([str(train_val), hand_nets["deploy"][0]["weights"]],
                         ConvertOptions(input_shapes=[[1, 3, 8, 8]]))
    assert "mean image mean.binaryproto subtracted (channel means 104.0, 117.0, 123.0)" in \
        source.inputs[0].expects


def test_fuzzed_caffe_files_fail_cleanly(shared_dir):
    """bench/fuzz.py on the real caffemodels and prototxts (damaged one way each): only
    our own errors escape, no case hangs, memory stays bounded."""
    from bench.fuzz import run_fuzz

    for fmt in ("caffe", "caffe_prototxt"):
        stats = run_fuzz(8, seed=20261125, shared=shared_dir, formats=[fmt])
        assert stats.cases >= 150, f"only {stats.cases} cases ran"
        assert not stats.failures, "\n".join(stats.failures[:20])
        assert stats.outcomes.get("converted", 0) > 0
        assert sum(v for k, v in stats.outcomes.items() if k.startswith("error:")) > 0
