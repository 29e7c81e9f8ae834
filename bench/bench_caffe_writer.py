"""Caffe output speed and memory, as ratios measured in one run.

    python bench/bench_caffe_writer.py [--workdir DIR] [--rounds N]

`migrate vgg16.t7 --to caffe --no-verify` on a VGG-16-shaped Torch7 file (~528 MB of
float32 weights, written in the real Torch7 binary format by bench/models.py) against:

- the I/O floor: reading the input file plus writing (and fsyncing) as many bytes in the
  output folder, measured alternately with the conversion, medians;
- the peak resident memory of the conversion process, against the weights' size;
- the same conversion to Caffe2 (the project's first target), for scale.

Measured with the model in the page cache (warm) and read from the disk (cold: caches
dropped before each run, which needs root).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import models, t7write  # noqa: E402
from bench.bench_convert import (  # noqa: E402
    _byte_compile,
    _warm,
    _warm_interpreter,
    drop_caches,
    io_floor_once,
    timed_migrate,
)


def _convert(path: str, out: str, target: str) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)  # no old output to delete on the clock
    return timed_migrate(out, path, "--to", target, "--input-shape", "1x3x224x224")


def measure(path: str, workdir: str, cold: bool, rounds: int) -> dict:
    """Floor, Caffe and Caffe2 conversions in turn, `rounds` times (the disk's speed
    drifts, so each ratio compares neighbours), medians."""
    out = os.path.join(workdir, "out")
    rows: dict[str, list] = {"floor": [], "caffe": [], "caffe2": [], "peak_caffe": [],
                             "peak_caffe2": []}
    for _ in range(rounds):
        rows["floor"].append(io_floor_once(path, workdir, cold))
        for target in ("caffe", "caffe2"):
            if cold:
                drop_caches()
            else:
                _warm(path)
            _warm_interpreter()
            wall, peak = _convert(path, out, target)
            rows[target].append(wall)
            rows[f"peak_{target}"].append(peak)
    written = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    return {"io_floor_s": statistics.median(rows["floor"]),
            "caffe_s": statistics.median(rows["caffe"]),
            "caffe2_s": statistics.median(rows["caffe2"]),
            "caffe_peak_rss_bytes": max(rows["peak_caffe"]),
            "caffe2_peak_rss_bytes": max(rows["peak_caffe2"]),
            "caffe2_written_bytes": written}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                     "torch7-migrate-bench-caffe"))
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    vgg = t7write.ensure(os.path.join(args.workdir, "vgg16.t7"), models.vgg16)
    size = os.path.getsize(vgg)
    _byte_compile()
    # the weights the Caffe file holds (what its size is mostly made of)
    out = os.path.join(args.workdir, "caffe-check")
    _convert(vgg, out, "caffe")
    caffemodel = os.path.join(out, "vgg16.caffemodel")
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "model_bytes": size,
        "caffemodel_bytes": os.path.getsize(caffemodel),
        "prototxt_bytes": os.path.getsize(os.path.join(out, "vgg16.prototxt")),
    }
    can_drop = drop_caches()
    for label, cold in (("warm", False), ("cold", True)):
        if cold and not can_drop:
            continue
        m = measure(vgg, args.workdir, cold, args.rounds)
        m["caffe_ratio_to_io_floor"] = m["caffe_s"] / m["io_floor_s"]
        m["caffe_over_caffe2"] = m["caffe_s"] / m["caffe2_s"]
        m["caffe_peak_rss_over_weights"] = m["caffe_peak_rss_bytes"] / results[
            "caffemodel_bytes"]
        results[f"{label}_cache"] = m
    print(json.dumps(results, indent=2))
    print("\nsummary (targets in brackets)")
    for label in ("cold", "warm"):
        m = results.get(f"{label}_cache")
        if m:
            print(f"  --to caffe / I/O floor ({label})    {m['caffe_ratio_to_io_floor']:.2f}"
                  f"  [<= 1.5]  ({m['caffe_s']:.2f} s vs {m['io_floor_s']:.2f} s; Caffe2 "
                  f"{m['caffe2_s']:.2f} s)")
            print(f"  peak RSS / weights ({label})        "
                  f"{m['caffe_peak_rss_over_weights']:.2f}  [well under 1]  "
                  f"({m['caffe_peak_rss_bytes'] / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
