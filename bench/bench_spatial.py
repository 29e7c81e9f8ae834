"""What the Caffe2 constructions for spatial / volumetric layers cost at run time.

Caffe2 has no operator for several ops the Torch7 spatial and volumetric classes become
(3-D ConvTranspose, max pooling that returns its indices and MaxUnpool, trilinear
Resize, GatherElements, N-d edge padding); the writer builds them from operators it has.
For each, one ONNX graph at a realistic size is written as ONNX and as a Caffe2 pair;
both run in their real runtimes (Caffe2 Predictor in the side runtime, onnxruntime
in-process, one thread each is not forced: their defaults), medians of N runs, and the
script prints Caffe2 / onnxruntime time ratios taken in this one run, and the largest
difference between the two outputs.

    python bench/bench_spatial.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from test_torch7_nn_spatial import (  # noqa: E402  (the same graph builders as the tests)
    _conv,
    _conv_transpose,
    _gather_elements,
    _op,
    _pad,
    _pool_unpool,
)

from migrate.core.graph import GraphBuilder  # noqa: E402
from migrate.runtimes.caffe2.side import Caffe2Job, find_caffe2_python, run_caffe2_jobs  # noqa: E402
from migrate.writers.caffe2.writer import build_nets, write_caffe2  # noqa: E402
from migrate.writers.onnx.writer import write_onnx  # noqa: E402


def _trilinear(g, x):
    sizes = g.int64s([*x.shape[:2], *(2 * d for d in x.shape[2:])])
    return [g.op("Resize", [x, None, None, sizes], dict(
        mode="linear", coordinate_transformation_mode="align_corners"))]


def _top_k_in_order(g, x):
    """TemporalDynamicKMaxPooling's graph: top k over time, back in time order."""
    k = g.int64s([x.shape[1] // 2])
    top = g.op("TopK", [x, k], dict(axis=1, largest=1, sorted=1), num_outputs=2)
    order = g.op("TopK", [top.producer().outputs[1], k], dict(axis=1, largest=0, sorted=1),
                 num_outputs=2)
    return [g.op("GatherElements", [x, order], dict(axis=1))]


CASES = {
    "ConvTranspose 3-D 16->8, 3x3x3, stride 2 (8x32x32)": (
        [1, 16, 8, 32, 32], _conv_transpose(16, 8, [3, 3, 3], strides=[2, 2, 2],
                                            pads=[1, 1, 1, 1, 1, 1], output_padding=[1, 1, 1])),
    "Conv 3-D 16->16, 3x3x3, pad 1 (8x32x32)": (
        [1, 16, 8, 32, 32], _conv(16, 16, [3, 3, 3], pads=[1, 1, 1, 1, 1, 1])),
    "Conv 1-D 64->64, k5 (1000 frames)": ([1, 64, 1000], _conv(64, 64, [5])),
    "MaxPool 2x2 + indices + MaxUnpool (64x128x128)": (
        [1, 64, 128, 128], lambda g, x: _pool_unpool([2, 2], [2, 2], [0, 0, 0, 0])(g, x)[2:]),
    "MaxPool 3-D 2x2x2, plain (32x16x64x64)": (
        [1, 32, 16, 64, 64], _op("MaxPool", kernel_shape=[2, 2, 2], strides=[2, 2, 2])),
    "MaxPool 3-D 3x3x3, dilation 2 (16x16x48x48)": (
        [1, 16, 16, 48, 48], _op("MaxPool", kernel_shape=[3, 3, 3], dilations=[2, 2, 2])),
    "trilinear Resize x2 (16x8x32x32)": ([1, 16, 8, 32, 32], _trilinear),
    "edge Pad 5-D, 2 each side (16x8x32x32)": (
        [1, 16, 8, 32, 32], _pad([0, 0, 2, 2, 2, 0, 0, 2, 2, 2], "edge")),
    "TopK + TopK + GatherElements (8x400x256)": ([8, 400, 256], _top_k_in_order),
    "GatherElements axis 0 (64x128x128)": ([64, 128, 128], _gather_elements(0, [64, 128, 128],
                                                                            64)),
}


def _model(shape, build):
    g = GraphBuilder("bench")
    g.set_origin("model", "bench")
    g.set_outputs(build(g, g.add_input("data", shape)))
    return g.model()


def _time_ort(path, x, runs):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: x})  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    python = find_caffe2_python()
    if python is None:
        sys.exit("the Caffe2 side runtime is not provisioned (migrate runtimes install caffe2)")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for k, (label, (shape, build)) in enumerate(CASES.items()):
            model = _model(shape, build)
            x = rng.standard_normal(shape).astype(np.float32)
            onnx_path = write_onnx(model, tmp, f"m{k}")["onnx"]
            pair = write_caffe2(build_nets(model, f"m{k}", optimize=True), tmp, f"m{k}")
            ort_time, ort_out = _time_ort(onnx_path, x, args.runs)
            jobs.append(Caffe2Job(pair["init_net"], pair["predict_net"], [x], repeat=args.runs))
            rows.append((label, ort_time, ort_out))
        run_caffe2_jobs(python, jobs)
    print("| construction | Caffe2 ms | onnxruntime ms | Caffe2 / onnxruntime | max diff |\n"
          "| --- | --- | --- | --- | --- |")
    for (label, ort_time, ort_out), job in zip(rows, jobs, strict=True):
        if job.error:
            print(f"| {label} | failed: {job.error[:80]} | | | |")
            continue
        c2 = statistics.median(job.times)
        diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - b)))
                   for a, b in zip(job.outputs, ort_out, strict=True))
        print(f"| {label} | {c2 * 1e3:.2f} | {ort_time * 1e3:.2f} | {c2 / ort_time:.2f} | "
              f"{diff:.1e} |")


if __name__ == "__main__":
    main()
