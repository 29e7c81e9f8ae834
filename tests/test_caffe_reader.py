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
