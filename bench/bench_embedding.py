"""Word-index models (nn.LookupTable): conversion memory and speed, as ratios measured
in one run.

    python bench/bench_embedding.py [--workdir DIR] [--words N] [--dims D]

A bag-of-words classifier as char-rnn / sentence models saved it, LookupTable(words,
dims) -> Sum(2) -> Linear(dims, 2), float32, written in the real Torch7 binary format
(bench/t7write.py); the embedding is nearly the whole file. `migrate model.t7 --to T
--no-verify --input-shape 1x64` for T = onnx and caffe2, against the I/O floor (read the
file, write and fsync as many bytes) and the file size (peak RSS): the embedding must
stay a view of the mapped file, never a copy, and its int64 indices input costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import t7write  # noqa: E402
from bench.bench_convert import (  # noqa: E402
    _byte_compile,
    _warm,
    _warm_interpreter,
    io_floor_once,
    timed_migrate,
)


def bag_of_words(words: int, dims: int, seed: int = 0) -> t7write.TorchObject:
    rng = np.random.default_rng(seed)
    embedding = t7write.TorchObject("nn.LookupTable", {
        "weight": rng.standard_normal((words, dims), dtype=np.float32),
        "gradWeight": np.empty(0, np.float32), "paddingValue": 0, "output": np.empty(0, np.float32),
        "_type": "torch.FloatTensor", "train": False, "shouldScaleGradByFreq": False})
    total = t7write.TorchObject("nn.Sum", {"dimension": 2, "sizeAverage": False, "squeeze": True,
                                           "output": np.empty(0, np.float32), "train": False,
                                           "_type": "torch.FloatTensor"})
    classifier = t7write.linear(rng.standard_normal((2, dims), dtype=np.float32) * 0.05,
                                np.zeros(2, np.float32))
    return t7write.sequential(embedding, total, classifier)


def convert_once(path: str, out: str, target: str) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    _warm_interpreter()
    return timed_migrate(out, path, "--to", target, "--input-shape", "1x64")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                     "torch7-migrate-bench"))
    p.add_argument("--words", type=int, default=400_000)
    p.add_argument("--dims", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, f"bow_{args.words}x{args.dims}.t7")
    if not os.path.exists(path):
        t7write.save(path + ".partial", bag_of_words(args.words, args.dims))
        os.replace(path + ".partial", path)
    size = os.path.getsize(path)
    _byte_compile()
    results: dict = {"model_bytes": size}
    for target in ("onnx", "caffe2"):
        walls, peaks, floors = [], [], []
        for _ in range(args.rounds):  # alternately: the disk's speed drifts
            _warm(path)
            floors.append(io_floor_once(path, args.workdir, cold=False))
            wall, peak = convert_once(path, os.path.join(args.workdir, "out"), target)
            walls.append(wall)
            peaks.append(peak)
        results[target] = {"wall_s": statistics.median(walls),
                           "io_floor_s": statistics.median(floors),
                           "peak_rss_bytes": max(peaks)}
    print(json.dumps(results, indent=2))
    print(f"\nsummary: LookupTable({args.words}, {args.dims}) model, {size / 2**20:.0f} MiB "
          "(targets in brackets)")
    for target in ("onnx", "caffe2"):
        r = results[target]
        print(f"  {target:<7} migrate --no-verify / I/O floor  "
              f"{r['wall_s'] / r['io_floor_s']:.2f}  [<= 1.5]  ({r['wall_s']:.2f} s vs "
              f"{r['io_floor_s']:.2f} s, warm page cache)")
        peak = r["peak_rss_bytes"]
        print(f"  {target:<7} peak RSS / model size           "
              f"{peak / size:.2f}  [<= 1.5]  ({peak / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
