"""Classes Torch7 projects shipped in their own code (manifest_p.txt: fast-neural-style,
CycleGAN, char-rnn, waifu2x, dpnn, stnbhwd, Element-Research/rnn, GPU-saved cudnn.*),
the table containers (MapTable, ZipTable, ..., Parallel, Bottle) and nested nngraph tables
(q_nngraph_nested_tables), converted and run in real onnxruntime and real Caffe2,
reproduce what real Lua Torch7 computed (../shared/fixtures/torch7/raw/*.f64)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx_ir as ir
import pytest
import torchfile
from fixtures_t7 import T7_DIR, cases, manifest_names, read_raw

from migrate.core.errors import ConversionError, MigrateError
from migrate.core.graph import GraphBuilder
from migrate.core.passes.optimize import optimize
from migrate.readers.torch7 import t7file
from migrate.readers.torch7.inspect import inspect_file
from migrate.readers.torch7.module import T7Module
from migrate.readers.torch7.reader import build_graph, iter_modules, read_torch7
from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
from migrate.runtimes.ort.api import run_onnx
from migrate.verify.compare import compare
from migrate.writers.caffe2.writer import build_nets, write_caffe2
from migrate.writers.onnx.writer import write_onnx

ATOL = RTOL = 1e-4
TABLE_CASES = """n_MapTable n_ZipTable n_ZipTableOneToMany n_CAddTensorTable n_MixtureTable
n_MixtureTable_tensor n_Parallel n_Bottle n_Bottle_conv q_nngraph_nested_tables""".split()
CASES = cases(manifest_names("manifest_p.txt") + TABLE_CASES)
IDS = [c.name for c in CASES]
VARIANTS = ("naive", "optimized")


def _fixture(name: str) -> str:
    return os.path.join(T7_DIR, f"{name}.t7")


# -- models built here from real fixtures' modules, checked against real Torch7 outputs ------

def _module_object(name: str) -> torchfile.TorchObject:
    return t7file.load(_fixture(name))


def _sequencer(inner: torchfile.TorchObject) -> torchfile.TorchObject:
    return torchfile.TorchObject(b"nn.Sequencer", {b"modules": {1: inner}, b"module": inner,
                                                   b"_remember": b"neither", b"train": False})


def _fast_lstm_from_seq_lstm() -> torchfile.TorchObject:
    """The FastLSTM fixture given the SeqLSTM fixture's weights (gate blocks i, f, o, g of
    one (D+R) x 4H matrix -> FastLSTM's Linear/LinearNoBias rows in its order i, g, f, o):
    run over SeqLSTM's 3-step input it must reproduce SeqLSTM's real Torch7 output."""
    fast, seq = _module_object("p_rnn_FastLSTM_float"), _module_object("p_rnn_SeqLSTM_float")
    d, h = int(seq[b"inputsize"]), int(seq[b"outputsize"])
    weight, bias = seq[b"weight"], seq[b"bias"]
    order = np.r_[0:h, 3 * h:4 * h, h:2 * h, 2 * h:3 * h]
    fast[b"i2g"]._obj[b"weight"] = np.ascontiguousarray(weight[:d].T[order])
    fast[b"i2g"]._obj[b"bias"] = np.ascontiguousarray(bias[order])
    fast[b"o2g"]._obj[b"weight"] = np.ascontiguousarray(weight[d:].T[order])
    return fast


def _built_cases() -> dict[str, tuple]:
    """name -> (root module object, inputs, expected outputs), all data from real Torch7."""
    lstm_in, lstm_out = read_raw("p_rnn_LSTM_float_input"), read_raw("p_rnn_LSTM_float_output")
    seq_in, seq_out = read_raw("p_rnn_SeqLSTM_float_input"), read_raw("p_rnn_SeqLSTM_float_output")
    recursed = torchfile.TorchObject(b"nn.Recursor", {b"modules": {1: torchfile.TorchObject(
        b"nn.Sequential", {b"modules": {1: _fast_lstm_from_seq_lstm()}})}})
    return {
        # one step of a Sequencer from its initial state = the LSTM's first step
        "sequencer_lstm_1step": (_sequencer(_module_object("p_rnn_LSTM_float")),
                                 [lstm_in[0][None]], [lstm_out[0][None]]),
        # 3 steps, the state carried from step to step
        "sequencer_fastlstm_3steps": (_sequencer(_fast_lstm_from_seq_lstm()), seq_in, seq_out),
        # a table of steps in, a table out; the LSTM inside a Recursor(Sequential)
        "sequencer_table_recursor": (_sequencer(recursed), list(seq_in[0]), list(seq_out[0])),
    }


BUILT = _built_cases() if os.path.isdir(T7_DIR) else {}


def _built_model(name: str):
    root, inputs, _ = BUILT[name]
    return build_graph(T7Module(root, "model"), name, [a.shape for a in inputs]).model


def _models():
    """(name, model factory, inputs, expected) of every fixture and built case."""
    for case in CASES:
        yield case.name, (lambda c=case: read_torch7(c.model, [a.shape for a in c.inputs])
                          .model), case.inputs, case.outputs
    for name, (_, inputs, expected) in BUILT.items():
        yield name, (lambda n=name: _built_model(n)), inputs, expected


ALL = list(_models())
ALL_IDS = [name for name, *_ in ALL]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
def test_onnx_matches_torch7(entry, variant, tmp_path, shared_dir):
    name, make, inputs, expected = entry
    model = make()
    if variant == "optimized":
        optimize(model)
    written = write_onnx(model, str(tmp_path), name)
    result = compare(run_onnx(written["onnx"], inputs), expected, ATOL, RTOL)
    assert result.passed, result.describe()


# -- GridSample's Caffe2 construction in the modes no Torch7 fixture uses: real Caffe2
#    against onnxruntime's own GridSample ----------------------------------------------------

GRID_MODES = [(align, padding) for align in (0, 1) for padding in ("zeros", "border")]


def _grid_sample_model(align: int, padding: str) -> ir.Model:
    builder = GraphBuilder("grid_sample")
    image = builder.add_input("image", [2, 3, 5, 7])
    grid = builder.add_input("grid", [2, 4, 6, 2])
    out = builder.op("GridSample", [image, grid], {"mode": "bilinear", "padding_mode": padding,
                                                   "align_corners": align})
    builder.set_outputs([out])
    return builder.model()


def _grid_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal((2, 3, 5, 7)).astype(np.float32),
            rng.uniform(-1.3, 1.3, (2, 4, 6, 2)).astype(np.float32)]


@pytest.fixture(scope="module")
def caffe2_results(caffe2_python, shared_dir, tmp_path_factory):
    """Every model, naive and optimized, converted and run in ONE Caffe2 process."""
    out = tmp_path_factory.mktemp("caffe2_projects")
    jobs, failures = {}, {}
    entries = [(n, m, i) for n, m, i, _ in ALL] + [
        (f"gridsample_align{a}_{p}", (lambda a=a, p=p: _grid_sample_model(a, p)), _grid_inputs())
        for a, p in GRID_MODES]
    for name, make, inputs in entries:
        for variant in VARIANTS:
            key = (name, variant)
            try:
                model = make()
                if variant == "optimized":
                    optimize(model)
                nets = build_nets(model, name, optimize=variant == "optimized")
                paths = write_caffe2(nets, str(out), f"{name}_{variant}")
            except Exception as exc:  # reported by the test of that case
                failures[key] = exc
                continue
            jobs[key] = Caffe2Job(paths["init_net"], paths["predict_net"], inputs)
    run_caffe2_jobs(caffe2_python, list(jobs.values()))
    return jobs, failures


def _caffe2_outputs(caffe2_results, key):
    jobs, failures = caffe2_results
    if key in failures:
        raise failures[key]
    job = jobs[key]
    assert job.error is None, f"Caffe2 failed: {job.error}"
    return job.outputs


@pytest.mark.caffe2
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("entry", ALL, ids=ALL_IDS)
def test_caffe2_matches_torch7(entry, variant, caffe2_results):
    name, _, _, expected = entry
    result = compare(_caffe2_outputs(caffe2_results, (name, variant)), expected, ATOL, RTOL)
    assert result.passed, result.describe()


@pytest.mark.caffe2
@pytest.mark.parametrize("align, padding", GRID_MODES)
def test_caffe2_grid_sample_matches_onnxruntime(align, padding, caffe2_results, tmp_path):
    written = write_onnx(_grid_sample_model(align, padding), str(tmp_path), "grid")
    expected = run_onnx(written["onnx"], _grid_inputs())
    got = _caffe2_outputs(caffe2_results, (f"gridsample_align{align}_{padding}", "naive"))
    result = compare(got, expected, 1e-5, 1e-5)
    assert result.passed, result.describe()


# -- what the conversion says, and the mechanism's errors ----------------------------------

@pytest.mark.parametrize("name, project", [
    ("p_fns_InstanceNormalization_float", "jcjohnson/fast-neural-style"),
    ("p_cyclegan_InstanceNormalization_float", "junyanz/CycleGAN"),
    ("p_cyclegan_InstanceNormalization_noaffine_float", "junyanz/CycleGAN"),
])
def test_instance_normalization_is_converted_as_true_instance_norm_and_says_so(
        name, project, shared_dir):
    case = cases([name.rsplit("_", 1)[0]])[0]
    result = read_torch7(case.model, [a.shape for a in case.inputs])
    [note] = [n for n in result.notes if "InstanceNormalization" in n]
    assert project in note and "true instance normalization" in note and "919eeca" in note
    assert [node.op_type for node in result.model.graph].count("InstanceNormalization") == 1


@pytest.mark.parametrize("name, expected", [
    ("p_fns_ShaveImage_float", "nn.ShaveImage  [jcjohnson/fast-neural-style]"),
    ("p_cyclegan_InstanceNormalization_float", "nn.InstanceNormalization  [junyanz/CycleGAN]"),
    ("p_charrnn_OneHot_float", "OneHot  [karpathy/char-rnn]"),
    ("p_w2nn_ScaleTable_float", "w2nn.ScaleTable  [nagadomi/waifu2x]"),
    ("p_dpnn_Inception_maxpool_float", "nn.Inception  [Element-Research/dpnn]"),
    ("p_stn_transformer_float", "nn.BilinearSamplerBHWD  [qassemoquab/stnbhwd]"),
    ("p_rnn_GRU_float", "nn.LinearNoBias  [Element-Research/rnn]"),
    ("p_cudnn_ReLU_float", "cudnn.ReLU  [soumith/cudnn.torch]"),
    ("q_nngraph_nested_tables_float", "nn.gModule  [torch/nngraph]"),
])
def test_inspect_names_the_package_of_each_class(name, expected, shared_dir):
    text = inspect_file(_fixture(name))
    assert expected in text
    assert "every module is supported" in text and "classes from: " in text


def test_nested_tables_convert_without_input_shapes(shared_dir):
    """The gModule's three inputs are found and sized from the layers they feed."""
    model = read_torch7(_fixture("q_nngraph_nested_tables_float")).model
    assert [list(v.shape) for v in model.graph.inputs] == [[1, 5], [1, 5], [1, 10]]
    assert len(model.graph.outputs) == 2


@pytest.mark.parametrize("shapes, message", [
    ([[2, 5]], "takes a table of 3 inputs (one --input-shape each), got a tensor 2x5"),
    ([[2, 5], [2, 5]], "takes a table of 3 inputs (one --input-shape each), got a table "
                       "{2x5, 2x5}"),
])
def test_wrong_inputs_for_a_gmodule_are_a_clear_error(shapes, message, shared_dir):
    with pytest.raises(ConversionError) as err:
        read_torch7(_fixture("q_nngraph_nested_tables_float"), shapes)
    assert message in str(err.value) and "model (nn.gModule)" in str(err.value)


def test_a_table_module_given_a_tensor_names_itself(shared_dir):
    with pytest.raises(ConversionError) as err:
        read_torch7(_fixture("p_stn_BilinearSamplerBHWD_float"), [[2, 7, 8, 3]])
    assert "model.modules[1] (nn.BilinearSamplerBHWD)" in str(err.value)
    assert "takes a table, got a tensor 2x7x8x3" in str(err.value)


def test_cli_converts_nested_tables_without_input_shape(tmp_path, shared_dir):
    """The issue's case end to end: `migrate` used to fail with a TypeError here."""
    command = [sys.executable, "-m", "migrate", _fixture("q_nngraph_nested_tables_float"),
               "--to", "onnx", "-o", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "input 1x5, 1x5, 1x10" in run.stdout and "OK" in run.stdout


def test_nested_table_inputs_are_arranged_as_the_model_takes_them(shared_dir):
    """{{a, b}, c} into ParallelTable{ParallelTable{Linear, Linear}, Linear}: the three
    graph inputs are nested as the model's structure says, each sized by its Linear."""
    gru = T7Module(_module_object("p_rnn_GRU_float"), "gru")  # it holds a Linear(4, 10)
    first = next(m.obj for m in iter_modules(gru) if m.cls == "nn.Linear")

    def parallel(*modules):
        return torchfile.TorchObject(b"nn.ParallelTable",
                                     {b"modules": dict(enumerate(modules, 1))})

    root = T7Module(parallel(parallel(first, first), first), "model")
    model = build_graph(root, "nested").model
    assert [list(v.shape) for v in model.graph.inputs] == [[1, 4]] * 3
    assert [list(v.shape) for v in model.graph.outputs] == [[1, 10]] * 3


def test_shared_containers_nested_over_and_over_fail_fast():
    """A hostile tree asking for 2^40 module visits: a clear error, not a hang."""
    node = torchfile.TorchObject(b"nn.ReLU", {})
    for _ in range(40):
        node = torchfile.TorchObject(b"nn.Sequential", {b"modules": {1: node, 2: node}})
    with pytest.raises(MigrateError, match="shared containers nested over and over"):
        build_graph(T7Module(node, "model"), "hostile", [[1, 3]])


def test_unrolled_recurrent_layers_say_so(shared_dir):
    notes = read_torch7(_fixture("p_rnn_SeqLSTM_float"), [[3, 2, 4]]).notes
    assert any("unrolled over its 3 time steps" in n and "exactly 3 steps" in n for n in notes)
    ops = {node.op_type for node in read_torch7(_fixture("p_rnn_SeqLSTM_float"), [[3, 2, 4]])
           .model.graph}
    assert not ops & {"LSTM", "GRU", "RNN", "Loop", "Scan"}
