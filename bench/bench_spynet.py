"""SpyNet's pyramid as one exported network vs the level networks run one by one with
the glue in numpy, in real Caffe2 and onnxruntime; flow accuracy against known motion.

    python bench/bench_spynet.py [--caffe2-python PYTHON] [--rounds N] [--type TYPE]

1. Speed at 384x512 (5 levels): `migrate spynet-pyramid` exports sintelFinal as one
   network (ONNX and a Caffe2 pair). The baseline is what a deployment without it runs:
   each level network exported alone (the same Torch7 reader and writers) and
   spynet.lua's glue (normalisation, 2x2 pooling, align-corners x2 upsampling of the
   flow, the border-clamped bilinear warp, concatenations, residual additions) written
   in vectorised numpy with every index table precomputed. Both run on a synthetic
   384x512 pair (a smooth pattern moved by (+2.6, -1.4) px), alternating, `--rounds`
   times each; medians, and the median of each round's ratio (its two runs follow each
   other, so they share the load of a busy machine). onnxruntime runs with one thread
   (default graph optimisations); Caffe2 runs its Predictor (the mobile loader) in the
   side runtime with OMP_NUM_THREADS=1, the glue in that process's numpy.
2. End-point error of the final flow against the fixture's known motion
   (fixtures/real/spynet_pyramid, 128x160, (+2.6, -1.4) px), for the exported network in
   both runtimes, next to SpyNet's own (real Torch7's flow in the fixture).

All figures come from one run. The same file, run by the Caffe2 interpreter with
--caffe2-side JOB, is the Caffe2 half (numpy only at the top: Python 3.9).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# -- spynet.lua's glue in numpy (runs in both interpreters) ----------------------------------

class NumpyGlue:
    """The pyramid around `run_level(k, modelin) -> residual`, index tables made once."""

    def __init__(self, height, width, levels):
        self.levels = levels
        self.minus_mean = -np.asarray(MEAN * 2, np.float32).reshape(1, 6, 1, 1)
        self.std = np.asarray(STD * 2, np.float32).reshape(1, 6, 1, 1)
        self.tables = {}
        for k in range(2, levels + 1):
            h, w = height >> (levels - k), width >> (levels - k)
            self.tables[k] = (_upsample_table(h // 2, h), _upsample_table(w // 2, w),
                              np.arange(w, dtype=np.float32)[None, :],
                              np.arange(h, dtype=np.float32)[:, None])

    def run(self, im1, im2, run_level):
        images = (np.concatenate([im1, im2], axis=1) + self.minus_mean) / self.std
        pyramid = {self.levels: images}
        for k in range(self.levels - 1, 0, -1):
            n, c, h, w = pyramid[k + 1].shape
            pyramid[k] = pyramid[k + 1].reshape(n, c, h // 2, 2, w // 2, 2).mean(
                axis=(3, 5), dtype=np.float32)
        n, _, h, w = pyramid[1].shape
        flow = run_level(1, np.concatenate(
            [pyramid[1], np.zeros((n, 2, h, w), np.float32)], axis=1))
        for k in range(2, self.levels + 1):
            rows, columns, xs, ys = self.tables[k]
            flowinit = _upsample(flow, rows, columns) * np.float32(2)
            images = pyramid[k]
            warped = _warp(images[:, 3:], flowinit, xs, ys)
            modelin = np.concatenate([images[:, :3], warped, flowinit], axis=1)
            flow = run_level(k, modelin) + flowinit
        return flow


def _upsample_table(src, dst):
    """Corners on corners (align_corners): source position x * (src - 1) / (dst - 1)."""
    position = np.arange(dst, dtype=np.float64) * ((src - 1) / (dst - 1))
    low = np.minimum(np.floor(position).astype(np.int64), src - 1)
    high = np.minimum(low + 1, src - 1)
    weight = (position - low).astype(np.float32)
    return low, high, weight


def _upsample(x, rows, columns):
    (r0, r1, fr), (c0, c1, fc) = rows, columns
    fr = fr[:, None]
    tall = x[:, :, r0, :] * (1 - fr) + x[:, :, r1, :] * fr
    return tall[:, :, :, c0] * (1 - fc) + tall[:, :, :, c1] * fc


def _warp(image, flow, xs, ys):
    """image(p + flow(p)), bilinear, coordinates clamped (spynet's CUDA sampler); batch 1."""
    _, channels, h, w = image.shape
    x = np.clip(flow[0, 0] + xs, 0, w - 1)
    y = np.clip(flow[0, 1] + ys, 0, h - 1)
    x0, y0 = np.floor(x), np.floor(y)
    wx, wy = 1 - (x - x0), 1 - (y - y0)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    pixels = image[0].reshape(channels, h * w)

    def at(yy, xx):
        return pixels[:, yy * w + xx]

    out = (wx * wy) * at(y0, x0) + ((1 - wx) * wy) * at(y0, x1) \
        + (wx * (1 - wy)) * at(y1, x0) + ((1 - wx) * (1 - wy)) * at(y1, x1)
    return out[None].astype(np.float32)


# -- the Caffe2 half (inside the side runtime) ------------------------------------------------

def caffe2_side(job_path):
    from caffe2.python import workspace

    with open(job_path) as fh:
        job = json.load(fh)

    def predictor(pair):
        nets = []
        for path in pair:
            with open(path, "rb") as fh:
                nets.append(fh.read())
        return workspace.Predictor(nets[0], nets[1])

    inputs = [np.load(p) for p in job["inputs"]]
    whole = predictor(job["pyramid"])
    levels = [predictor(pair) for pair in job["levels"]]
    glue = NumpyGlue(inputs[0].shape[2], inputs[0].shape[3], len(levels))

    def run_level(k, modelin):
        return levels[k - 1].run([modelin])[0]

    single, separate = whole.run(inputs)[0], glue.run(inputs[0], inputs[1], run_level)
    times = {"single": [], "separate": []}
    for _ in range(job["rounds"]):
        start = time.perf_counter()
        whole.run(inputs)
        times["single"].append(time.perf_counter() - start)
        start = time.perf_counter()
        glue.run(inputs[0], inputs[1], run_level)
        times["separate"].append(time.perf_counter() - start)
    np.save(job["out"] + "_single.npy", single)
    np.save(job["out"] + "_separate.npy", separate)
    for name, (pair, frames) in job["epe"].items():
        np.save(f"{job['out']}_{name}.npy", predictor(pair).run([np.load(f) for f in frames])[0])
    print(json.dumps(times))


# -- the main run -----------------------------------------------------------------------------

def _ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _ort_run(session, inputs):
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))[0]


def _export(request, shape, to, out):
    import migrate

    summary = migrate.convert(request, to=to, out_dir=out, input_shapes=[shape], verify=False)
    return list(summary.outputs.values())


def _level_exports(models_dir, model_type, height, width, levels, out):
    """Each level network alone, at its level's size, as the pyramid's export writes it."""
    from migrate.core.passes.optimize import optimize
    from migrate.readers.spynet import level_file
    from migrate.readers.torch7.reader import read_torch7
    from migrate.writers.caffe2.writer import build_nets, write_caffe2
    from migrate.writers.onnx.writer import write_onnx

    onnx_paths, caffe2_pairs = [], []
    for k in range(1, levels + 1):
        h, w = height >> (levels - k), width >> (levels - k)
        model = read_torch7(os.path.join(models_dir, level_file(model_type, k)),
                            [[1, 8, h, w]]).model
        optimize(model)
        stem = f"level{k}"
        onnx_paths.append(write_onnx(model, out, stem)["onnx"])
        paths = write_caffe2(build_nets(model, stem, optimize=True), out, stem)
        caffe2_pairs.append((paths["init_net"], paths["predict_net"]))
    return onnx_paths, caffe2_pairs


def _epe(flow, known):
    flow = np.asarray(flow, np.float64).reshape(known.shape)
    return float(np.sqrt(((flow - known) ** 2).sum(axis=0)).mean())


def _raw(folder, name):
    import glob

    (path,) = glob.glob(os.path.join(folder, "raw", f"{name}.*.f64"))
    shape = [int(d) for d in os.path.basename(path).split(".")[-2].split("x")]
    return np.fromfile(path, "<f8").reshape(shape)


def main() -> None:
    import argparse
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    sys.path.insert(0, os.path.join(root, "tests"))
    from fixtures_t7 import REAL_DIR

    from migrate.readers.spynet import SpyNetPyramid
    from migrate.readers.spynet.levels import geometry
    from migrate.readers.spynet.sample import MOTION, moving_pair
    from migrate.runtimes.caffe2.side import find_caffe2_python

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--caffe2-python")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--type", default="sintelFinal")
    p.add_argument("--size", default="384x512")
    args = p.parse_args()
    models = os.path.join(REAL_DIR, "spynet")
    fixtures = os.path.join(REAL_DIR, "spynet_pyramid")
    height, width = (int(d) for d in args.size.split("x"))
    shape = [1, 3, height, width]
    levels = geometry([shape]).levels
    python = find_caffe2_python(args.caffe2_python)
    work = tempfile.mkdtemp(prefix="bench-spynet-")

    request = SpyNetPyramid(models, args.type)
    (pyramid_onnx,) = _export(request, shape, "onnx", os.path.join(work, "onnx"))
    pyramid_caffe2 = _export(request, shape, "caffe2", os.path.join(work, "caffe2"))[:2]
    level_onnx, level_caffe2 = _level_exports(models, args.type, height, width, levels,
                                              os.path.join(work, "levels"))
    inputs = moving_pair(shape)
    motion = np.empty((2, height, width))
    motion[0], motion[1] = MOTION

    # onnxruntime: one session vs one session per level + numpy glue, alternating
    whole = _ort_session(pyramid_onnx)
    sessions = [_ort_session(path) for path in level_onnx]
    glue = NumpyGlue(height, width, levels)

    def run_level(k, modelin):
        return _ort_run(sessions[k - 1], [modelin])

    single, separate = _ort_run(whole, inputs), glue.run(*inputs, run_level)
    ort_times = {"single": [], "separate": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        _ort_run(whole, inputs)
        ort_times["single"].append(time.perf_counter() - start)
        start = time.perf_counter()
        glue.run(*inputs, run_level)
        ort_times["separate"].append(time.perf_counter() - start)
    results = {"onnxruntime": (ort_times, single, separate)}

    # accuracy against the fixture's known motion (128x160), SpyNet's own next to it
    epe_jobs, epe_rows = {}, []
    known = _raw(fixtures, "spynet_pyramid_pair1_gtflow")
    for t, model_type in (("F", "sintelFinal"), ("K", "kittiFinal")):
        frames = [_raw(fixtures, f"spynet_pyramid_{t}_pair1_im{k}")[None].astype(np.float32)
                  for k in (1, 2)]
        small = SpyNetPyramid(models, model_type)
        (small_onnx,) = _export(small, [1, 3, 128, 160], "onnx", os.path.join(work, f"epe{t}"))
        small_caffe2 = _export(small, [1, 3, 128, 160], "caffe2",
                               os.path.join(work, f"epe{t}"))[:2]
        files = []
        for k, frame in enumerate(frames, start=1):
            files.append(os.path.join(work, f"epe{t}_im{k}.npy"))
            np.save(files[-1], frame)
        epe_jobs[t] = (small_caffe2, files)
        torch7 = _raw(fixtures, f"spynet_pyramid_{t}_pair1_flow")
        ours = _ort_run(_ort_session(small_onnx), frames)
        epe_rows.append([model_type, _epe(torch7, known), _epe(ours, known), None,
                         float(np.abs(ours[0] - torch7).max())])

    if python:
        job = {"pyramid": pyramid_caffe2, "levels": level_caffe2, "rounds": args.rounds,
               "inputs": [], "out": os.path.join(work, "caffe2"), "epe": epe_jobs}
        for k, array in enumerate(inputs, start=1):
            job["inputs"].append(os.path.join(work, f"im{k}.npy"))
            np.save(job["inputs"][-1], array)
        with open(os.path.join(work, "job.json"), "w") as fh:
            json.dump(job, fh)
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        done = subprocess.run([python, "-I", os.path.abspath(__file__), "--caffe2-side",
                               os.path.join(work, "job.json")], capture_output=True, text=True,
                              env=env, timeout=3600)
        if done.returncode != 0:
            sys.exit(f"Caffe2 side failed: {done.stderr.strip().splitlines()[-1:]}")
        times = json.loads(done.stdout.strip().splitlines()[-1])
        results["Caffe2"] = (times, np.load(job["out"] + "_single.npy"),
                             np.load(job["out"] + "_separate.npy"))
        for row, t in zip(epe_rows, ("F", "K"), strict=True):
            row[3] = _epe(np.load(f"{job['out']}_{t}.npy"), known)
    else:
        print("Caffe2: skipped (no side runtime: migrate runtimes install caffe2)")

    print(f"SpyNet {args.type}, {height}x{width}, {levels} levels, {args.rounds} rounds "
          f"each, medians")
    print(f"{'runtime':<12} {'one network':>12} {'levels + numpy glue':>20} {'ratio':>7} "
          f"{'paired':>7} {'max |diff|':>11} {'EPE (one)':>10} {'EPE (glue)':>11}")
    for runtime, (times, one, many) in results.items():
        a, b = statistics.median(times["single"]), statistics.median(times["separate"])
        # each round's two runs follow each other: their ratio shares the machine's load
        paired = statistics.median(x / y for x, y in zip(times["single"], times["separate"],
                                                          strict=True))
        print(f"{runtime:<12} {a * 1e3:10.1f} ms {b * 1e3:17.1f} ms {a / b:7.2f} "
              f"{paired:7.2f} {float(np.abs(one - many).max()):11.2e} "
              f"{_epe(one, motion):10.3f} {_epe(many, motion):11.3f}")
    zero = float(np.sqrt((known ** 2).sum(axis=0)).mean())
    print(f"\nEPE against the fixture's known motion, 128x160 (zero flow: {zero:.3f} px)")
    print(f"{'type':<12} {'SpyNet (Torch7)':>16} {'onnxruntime':>12} {'Caffe2':>9} "
          f"{'max |ours - Torch7|':>20}")
    for model_type, torch7, ort_epe, caffe2_epe, diff in epe_rows:
        c2 = f"{caffe2_epe:9.4f}" if caffe2_epe is not None else f"{'-':>9}"
        print(f"{model_type:<12} {torch7:16.4f} {ort_epe:12.4f} {c2} {diff:20.2e}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--caffe2-side":
        caffe2_side(sys.argv[2])
    else:
        main()
