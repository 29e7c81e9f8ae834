"""The whole command as a user times it, against copying the file.

    python bench/bench_wall.py [--workdir DIR] [--runs 7]

Runs, alternately and as separate processes timed by /usr/bin/time (page cache warm):

    sh -c 'migrate vgg16.t7 -o out --to TARGET --no-verify && sync'
    sh -c 'cat vgg16.t7 > copy.bin && sync'

for TARGET in caffe2 and onnx, and a bare Python copy of the file (the floor of any Python
tool), prints the medians (wall and CPU seconds), the ratios,
the start-up times of `migrate --help` and `migrate inspect` on a small model, and what
the machine was doing (load average, other busy processes) while it ran. Also: the CPU
time apart from the copy for VGG-16 and for a model ten times smaller (it should be
about the same: nothing may grow with the weights but the kernel's copy).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import models, t7write  # noqa: E402


def _timed(command: str, cwd: str) -> tuple[float, float, float]:
    """(wall, user + system CPU, user CPU) seconds of one shell command (/usr/bin/time)."""
    result = subprocess.run(["/usr/bin/time", "-f", "%e %U %S", "sh", "-c", command], cwd=cwd,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {command}\n{result.stderr}")
    wall, user, system = (float(v) for v in result.stderr.strip().splitlines()[-1].split())
    return wall, user + system, user


def _load() -> str:
    with open("/proc/loadavg") as fh:
        one, five, fifteen = fh.read().split()[:3]
    busy = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True,
                          text=True).stdout.splitlines()[1:6]
    top = ", ".join(" ".join(line.split()[::-1]) for line in busy if float(line.split()[0]) > 5)
    return f"load average {one} {five} {fifteen}; busiest: {top or 'nothing over 5% CPU'}"


def _migrate_command() -> str:
    """The console script installed beside this Python, as a venv or system install puts
    it on PATH: not a version manager's shim (pyenv's adds ~0.06 s of bash per call,
    which start_up() reports apart)."""
    script = os.path.join(os.path.dirname(sys.executable), "migrate")
    if os.access(script, os.X_OK):
        return script
    return shutil.which("migrate") or f"{sys.executable} -m migrate"


# the least any Python tool can do: start the interpreter, copy the file in the kernel,
# make it durable; nothing imported (the floor under this tool's own start-up)
BARE_PYTHON_COPY = (
    "import os, sys\n"
    "src, dst = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], "
    "os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
    "while os.copy_file_range(src, dst, 1 << 30):\n    pass\n"
    "os.fsync(dst)\n")


def compare(model: str, work: str, target: str, runs: int, bare: bool = False) -> dict:
    migrate = _migrate_command()
    convert = f"{migrate} {model} -o out --to {target} --no-verify > /dev/null && sync"
    if bare:  # instead of the tool: the bare Python copy above
        script = os.path.join(work, "bare_copy.py")
        with open(script, "w") as fh:
            fh.write(BARE_PYTHON_COPY)
        convert = f"{sys.executable} {script} {model} out.bin && sync"
    copy = f"cat {model} > copy.bin && sync"
    with open(model, "rb") as fh:  # warm the page cache
        while fh.read(16 << 20):
            pass
    tool, floor = [], []
    for _ in range(runs):  # alternate, so that both see the same machine
        tool.append(_timed(convert, work))
        floor.append(_timed(copy, work))
        shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
        for name in ("copy.bin", "out.bin"):
            if os.path.exists(os.path.join(work, name)):
                os.unlink(os.path.join(work, name))
    med = {k: statistics.median(v[i] for v in series) for k, series, i in (
        ("tool_wall", tool, 0), ("tool_cpu", tool, 1), ("tool_user", tool, 2),
        ("copy_wall", floor, 0), ("copy_cpu", floor, 1))}
    med["spread"] = (min(v[0] for v in floor), max(v[0] for v in floor))
    med["ratio"] = med["tool_wall"] / med["copy_wall"]
    return med


def startup(work: str, runs: int) -> dict:
    migrate = _migrate_command()
    small = os.path.join(ROOT, "fixtures", "torch7", "a_lenet_float.t7")
    helps = [_timed(f"{migrate} --help > /dev/null", work)[0] for _ in range(runs)]
    inspects = [_timed(f"{migrate} inspect {small} > /dev/null", work)[0] for _ in range(runs)]
    found = {"help": statistics.median(helps), "inspect": statistics.median(inspects)}
    on_path = shutil.which("migrate")
    if on_path and os.path.realpath(on_path) != os.path.realpath(migrate):
        shim = [_timed(f"{on_path} --help > /dev/null", work)[0] for _ in range(runs)]
        found["shim"] = (on_path, statistics.median(shim))
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "migrate-bench"))
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "migrate"),
                    os.path.join(ROOT, "readers"), os.path.join(ROOT, "writers")], check=False)
    big = t7write.ensure(os.path.join(args.workdir, "vgg16.t7"), models.vgg16)
    small = t7write.ensure(os.path.join(args.workdir, "vgg16_small.t7"),
                    lambda: models.vgg16(width=0.7, hidden=300))  # ~10x smaller weights
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; before: {_load()}")
    print(f"command: {_migrate_command()}")
    print(f"model: {os.path.getsize(big):,} bytes (VGG-16); smaller: "
          f"{os.path.getsize(small):,} bytes")
    for target in ("caffe2", "onnx"):
        result = compare(big, args.workdir, target, args.runs)
        low, high = result["spread"]
        print(f"{target}: migrate {result['tool_wall']:.2f} s wall ({result['tool_cpu']:.2f} s "
              f"CPU) vs copy {result['copy_wall']:.2f} s ({result['copy_cpu']:.2f} s CPU; "
              f"{low:.2f}-{high:.2f} s over the runs): ratio {result['ratio']:.2f} "
              "(target <= 1.2)")
        smaller = compare(small, args.workdir, target, args.runs)
        # the kernel's copy is system time: user time is the tool's own work
        print(f"  user CPU (the tool's own work, not the kernel's copy): VGG-16 "
              f"{result['tool_user']:.2f} s, 10x smaller {smaller['tool_user']:.2f} s")
    bare = compare(big, args.workdir, "", args.runs, bare=True)
    print(f"floor of any Python tool (start-up, copy_file_range, fsync; nothing imported): "
          f"{bare['tool_wall']:.2f} s vs copy {bare['copy_wall']:.2f} s: ratio "
          f"{bare['ratio']:.2f}")
    times = startup(args.workdir, args.runs)
    print(f"start-up: migrate --help {times['help']:.3f} s, migrate inspect (LeNet) "
          f"{times['inspect']:.3f} s (target < 0.2 s)")
    if "shim" in times:
        path, seconds = times["shim"]
        print(f"  `migrate` on PATH is {path} (a shim): --help through it {seconds:.3f} s")
    print(f"after: {_load()}")


if __name__ == "__main__":
    main()
