"""Conversion speed, memory and exported-net speed, as ratios measured in one run.

    python bench/bench_convert.py [--workdir DIR] [--caffe2-python PYTHON]

1. Reading: our .t7 reader vs `torchfile.load` on a VGG-16-shaped Torch7 file
   (~528 MB float32, written in the real Torch7 binary format by bench/models.py).
2. End to end: `migrate vgg16.t7 --no-verify` (to Caffe2) vs the I/O floor = reading
   the input file plus writing (and fsyncing) as many bytes; and its peak RSS vs the
   file size.
3. Exported-net speed in the real Caffe2 runtime: optimized export (default) vs the
   naive one-op-per-layer export (--no-optimize) of a VGG-BN-style and a
   ResNet-style network, median of repeated Predictor runs in one process.
End to end is measured twice: with the model in the page cache (warm) and read
from the disk (cold: caches dropped before each run, which needs root).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import models, t7write  # noqa: E402


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _warm(path: str) -> None:
    with open(path, "rb") as fh:
        while fh.read(16 << 20):
            pass


def reading(path: str) -> dict:
    import torchfile

    from migrate.readers.torch7 import t7file

    def ours_touching_every_byte():
        """Our reader plus faulting in every page of every weight: the reading an
        mmap defers, so the ratio cannot hide I/O. (Summing the weights instead, as
        earlier runs did, timed numpy's arithmetic more than the reading.)"""
        root = t7file.load(path)
        total = 0
        for module in root._obj[b"modules"].values():
            weight = module._obj.get(b"weight")
            if isinstance(weight, np.ndarray) and weight.size:
                pages = weight.reshape(-1).view(np.uint8)[::4096]  # one byte per page
                total += int(pages.sum(dtype=np.uint64))
        return total

    torchfile_s = _median_time(lambda: torchfile.load(path, use_list_heuristic=False), 3)
    ours_s = _median_time(lambda: t7file.load(path), 5)
    ours_touch_s = _median_time(ours_touching_every_byte, 3)
    return {"torchfile_s": torchfile_s, "ours_s": ours_s,
            "ours_reading_every_weight_s": ours_touch_s,
            "speedup": torchfile_s / ours_s,
            "speedup_reading_every_weight": torchfile_s / ours_touch_s}


def drop_caches() -> bool:
    """Empty the page cache (root on Linux) so the next read comes from the disk."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3")
        return True
    except OSError:
        return False


def io_floor_once(path: str, workdir: str, cold: bool) -> float:
    """Read the file, write as many bytes to the output folder, fsync: the minimum
    any converter that reads its input and writes its output must spend."""
    target = os.path.join(workdir, "floor.bin")
    if cold:
        drop_caches()
    start = time.perf_counter()
    with open(path, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(16 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    elapsed = time.perf_counter() - start
    os.unlink(target)
    return elapsed


def _byte_compile() -> None:
    """Compile the tool's modules once, as `pip install` does: run from a source tree
    under PYTHONDONTWRITEBYTECODE, every start would compile ~55 files again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "migrate", "readers", "writers"],
                   cwd=ROOT, check=True)


def _warm_interpreter() -> None:
    """Python's own files and the tool's modules in the page cache, as on any machine
    that has run Python recently: the floor measures the model's bytes, not them."""
    subprocess.run([sys.executable, "-c", "import migrate.cli"], cwd=ROOT, check=True)


_LAUNCHER = """
import os, subprocess, sys, time
python, out, *args = sys.argv[1:]
start = time.perf_counter()
proc = subprocess.Popen([python, "-m", "migrate.cli", *args, "--no-verify", "-o", out],
                        stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
if status:
    sys.exit("migrate failed")
print(wall, usage.ru_maxrss * 1024)
"""


def timed_migrate(out: str, *args: str) -> tuple[float, int]:
    """Wall time and peak RSS of `migrate ARGS --no-verify -o OUT`, started by a small
    launcher process: Linux counts a forking parent's resident memory into the child's
    ru_maxrss, so the (large) benchmark process must not be the direct parent."""
    report = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, out, *args],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    wall, peak = report.split()
    return float(wall), int(peak)


def end_to_end(path: str, workdir: str, cold: bool, rounds: int = 5) -> dict:
    """Conversion and I/O floor measured alternately (the disk's speed drifts), medians."""
    out = os.path.join(workdir, "out")
    walls, peaks, floors = [], [], []
    for _ in range(rounds):
        floors.append(io_floor_once(path, workdir, cold))
        shutil.rmtree(out, ignore_errors=True)  # no old output to delete on the clock
        if cold:
            drop_caches()
        _warm_interpreter()
        wall, peak = timed_migrate(out, path, "--input-shape", "1x3x224x224")
        walls.append(wall)
        peaks.append(peak)
    return {"wall_s": statistics.median(walls), "peak_rss_bytes": max(peaks),
            "io_floor_s": statistics.median(floors)}


def exported_net_speed(workdir: str, caffe2_python: str) -> dict:
    from migrate.core.passes.optimize import optimize
    from migrate.readers.torch7.reader import read_torch7
    from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs
    from migrate.writers.caffe2.writer import build_nets, write_caffe2

    cases = {
        "vgg_bn": (lambda: models.vgg16(width=0.5, image=64, hidden=256, classes=100,
                                        batch_norm=True), [1, 3, 64, 64]),
        "resnet": (lambda: models.resnet(width=32, blocks=4), [1, 3, 32, 32]),
    }
    jobs = {}
    for name, (make, shape) in cases.items():
        path = t7write.ensure(os.path.join(workdir, f"{name}.t7"), make)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for optimized in (False, True):
            model = read_torch7(path, [shape]).model
            if optimized:
                optimize(model)
            stem = f"{name}_{'optimized' if optimized else 'naive'}"
            files = write_caffe2(build_nets(model, stem, optimize=optimized), workdir, stem)
            jobs[(name, optimized)] = Caffe2Job(files["init_net"], files["predict_net"], [x],
                                                repeat=300)
    run_caffe2_jobs(caffe2_python, list(jobs.values()))
    result = {}
    for name in cases:
        naive, fast = jobs[(name, False)], jobs[(name, True)]
        for job in (naive, fast):
            if job.error:
                raise SystemExit(job.error)
        result[name] = {
            "naive_ms": statistics.median(naive.times) * 1e3,
            "optimized_ms": statistics.median(fast.times) * 1e3,
            "ratio": statistics.median(fast.times) / statistics.median(naive.times),
            "max_abs_difference": float(np.abs(naive.outputs[0] - fast.outputs[0]).max()),
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                     "torch7-migrate-bench"))
    p.add_argument("--caffe2-python", default=None)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    from migrate.runtimes.caffe2.side import find_caffe2_python

    vgg = t7write.ensure(os.path.join(args.workdir, "vgg16.t7"), models.vgg16)
    size = os.path.getsize(vgg)
    _warm(vgg)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}, numpy {np.__version__}",
        "model_bytes": size,
        "reading": reading(vgg),
    }
    _byte_compile()
    can_drop = drop_caches()
    for label, cold in (("warm", False), ("cold", True)):
        if cold and not can_drop:
            continue
        if not cold:
            _warm(vgg)
        e2e = end_to_end(vgg, args.workdir, cold)
        results[f"end_to_end_{label}_cache"] = {
            **e2e, "ratio_to_io_floor": e2e["wall_s"] / e2e["io_floor_s"],
            "peak_rss_over_model_size": e2e["peak_rss_bytes"] / size}
    results["startup_s"] = _median_time(lambda: subprocess.run(
        [sys.executable, "-c", "import migrate.cli"], cwd=ROOT, check=True), 5)
    python = find_caffe2_python(args.caffe2_python)
    if python:
        results["exported_net_speed"] = exported_net_speed(args.workdir, python)
    print(json.dumps(results, indent=2))
    r = results
    print("\nsummary (targets in brackets)")
    print(f"  reader vs torchfile.load          {r['reading']['speedup']:.1f}x faster  [>= 2x]")
    for label in ("cold", "warm"):
        e2e = r.get(f"end_to_end_{label}_cache")
        if e2e:
            print(f"  migrate --no-verify / I/O floor   {e2e['ratio_to_io_floor']:.2f}  [<= 1.5]"
                  f"  ({label} page cache: {e2e['wall_s']:.2f} s vs {e2e['io_floor_s']:.2f} s)")
            print(f"  peak RSS / model size             "
                  f"{e2e['peak_rss_over_model_size']:.2f}  [<= 1.5]  ({label})")
    print(f"  (of which Python start-up and imports: {r['startup_s']:.2f} s)")
    for name, v in r.get("exported_net_speed", {}).items():
        print(f"  {name:<6} optimized / naive Caffe2   {v['ratio']:.2f}  [<= 0.8]")


if __name__ == "__main__":
    main()
