"""What the constructions for project layers cost, as ratios measured in one run.

    python bench/bench_projects.py [--caffe2-python PYTHON] [--repeat N]

1. Spatial transformer sampler (stnbhwd BilinearSamplerBHWD -> ONNX GridSample): Caffe2
   has no sampler, so the Caffe2 export gathers the 4 neighbours of every point and
   sums them. Median Predictor time of that construction in real Caffe2 vs onnxruntime's
   native GridSample kernel on the same 1x3x224x224 image and 224x224 grid (and the
   largest difference between the two outputs).
2. Unrolled LSTM (rnn SeqLSTM, T steps of Gemm/MatMul/Add/Sigmoid/Tanh/Mul): the
   unrolled graph vs ONNX's fused LSTM operator on the same weights, both in
   onnxruntime, T=32, batch 16, 256 -> 256 (and the largest difference).
Both runtimes run single-threaded (OMP_NUM_THREADS=1, one onnxruntime thread), so that a
busy machine does not turn thread contention into the measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _ort_time(model, inputs, repeat):
    import onnxruntime as ort

    from migrate.core.graph import to_proto

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(to_proto(model).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(session.get_inputs(), inputs, strict=True)}
    out = session.run(None, feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _grid_sample_model():
    from migrate.core.graph import GraphBuilder

    builder = GraphBuilder("sampler")
    image = builder.add_input("image", [1, 3, 224, 224])
    grid = builder.add_input("grid", [1, 224, 224, 2])
    out = builder.op("GridSample", [image, grid], {"mode": "bilinear", "padding_mode": "zeros",
                                                   "align_corners": 1})
    builder.set_outputs([out])
    return builder.model()


def bench_sampler(python, repeat, workdir):
    from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
    from migrate.writers.caffe2.writer import build_nets, write_caffe2

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32),
              rng.uniform(-1.1, 1.1, (1, 224, 224, 2)).astype(np.float32)]
    model = _grid_sample_model()
    ort_s, ort_out = _ort_time(model, inputs, repeat)
    paths = write_caffe2(build_nets(model, "sampler", optimize=True), workdir, "sampler")
    job = Caffe2Job(paths["init_net"], paths["predict_net"], inputs, repeat=repeat)
    run_caffe2_jobs(python, [job])
    if job.error:
        raise SystemExit(f"Caffe2 failed: {job.error}")
    caffe2_s = statistics.median(job.times)
    diff = float(np.max(np.abs(job.outputs[0] - ort_out[0])))
    print(f"sampler 1x3x224x224, grid 224x224: Caffe2 Gather construction "
          f"{caffe2_s * 1e3:.2f} ms, onnxruntime GridSample {ort_s * 1e3:.2f} ms "
          f"(ratio {caffe2_s / ort_s:.2f}); max abs difference {diff:.2e}")


def _lstm_models(steps, batch, size):
    """The same LSTM as an unrolled SeqLSTM conversion and as ONNX's LSTM operator."""
    import torchfile

    from migrate.core.graph import GraphBuilder
    from migrate.readers.torch7.module import T7Module
    from migrate.readers.torch7.reader import build_graph

    rng = np.random.default_rng(1)
    weight = rng.uniform(-0.1, 0.1, (2 * size, 4 * size)).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, 4 * size).astype(np.float32)
    seq = torchfile.TorchObject(b"nn.SeqLSTM", {
        b"inputsize": size, b"hiddensize": size, b"outputsize": size, b"weight": weight,
        b"bias": bias, b"_remember": b"neither", b"batchfirst": False, b"maskzero": False})
    unrolled = build_graph(T7Module(seq, "model"), "seqlstm", [[steps, batch, size]]).model

    # ONNX LSTM: gates i, o, f, c; W = [4H x D] per direction; B = [Wb, Rb]
    h = size
    blocks = {"i": slice(0, h), "f": slice(h, 2 * h), "o": slice(2 * h, 3 * h),
              "g": slice(3 * h, 4 * h)}
    order = np.r_[blocks["i"], blocks["o"], blocks["f"], blocks["g"]]
    w = np.ascontiguousarray(weight[:size].T[order])[None]
    r = np.ascontiguousarray(weight[size:].T[order])[None]
    b = np.concatenate([bias[order], np.zeros(4 * h, np.float32)])[None]
    builder = GraphBuilder("lstm")
    x = builder.add_input("x", [steps, batch, size])
    y = builder.op("LSTM", [x, builder.constant(w, "W"), builder.constant(r, "R"),
                            builder.constant(b, "B")], {"hidden_size": h}, num_outputs=3)
    out = builder.op("Squeeze", [y, builder.int64s([1], "axes")])
    builder.set_outputs([out])
    return unrolled, builder.model()


def bench_lstm(repeat, steps=32, batch=16, size=256):
    unrolled, fused = _lstm_models(steps, batch, size)
    x = np.random.default_rng(2).standard_normal((steps, batch, size)).astype(np.float32)
    unrolled_s, out_u = _ort_time(unrolled, [x], repeat)
    fused_s, out_f = _ort_time(fused, [x], repeat)
    diff = float(np.max(np.abs(out_u[0] - out_f[0])))
    print(f"LSTM T={steps} batch {batch} {size}->{size} in onnxruntime: unrolled "
          f"{unrolled_s * 1e3:.2f} ms, fused LSTM operator {fused_s * 1e3:.2f} ms "
          f"(ratio {unrolled_s / fused_s:.2f}); max abs difference {diff:.2e}")


def main() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # the Caffe2 side process inherits it
    from migrate.runtimes.caffe2.side import find_caffe2_python

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--caffe2-python")
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    python = find_caffe2_python(args.caffe2_python)
    with tempfile.TemporaryDirectory(prefix="bench-projects-") as workdir:
        if python is None:
            print("sampler: skipped (no Caffe2 side runtime: migrate runtimes install caffe2)")
        else:
            bench_sampler(python, args.repeat, workdir)
    bench_lstm(args.repeat)


if __name__ == "__main__":
    main()
