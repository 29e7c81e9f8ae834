"""The PyTorch writer's generated code against hand-written PyTorch, as ratios in one run.

    python bench/bench_pytorch.py [--workdir DIR] [--rounds N] [--no-compile]

1. A ResNet-18 and a VGG-16 written by hand (bench/handwritten.py), given trained-like
   weights, are exported to ONNX (torch.onnx.export, BatchNorm kept) and converted with
   `migrate MODEL.onnx --to pytorch` (verified in PyTorch against onnxruntime). The
   generated module and the hand-written one then run the same batch of 8 (CPU, eval,
   torch.inference_mode): forward time, measured alternately (medians), eagerly and
   under torch.compile; peak memory of one forward, each in a fresh process (the peak
   resident set, reset just before the forward through /proc/self/clear_refs; the
   smallest of six processes per variant).
2. Writing the safetensors of a 528 MB model (VGG-16 as Torch7 ports saved it, the
   file bench/bench_convert.py uses), streamed from the mapped .t7 and fsynced, against
   the I/O floor (reading the .t7 and writing and fsyncing as many bytes), page cache
   warm; and the whole writer (code, safetensors, JSON with the source's sha256).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BATCH = 8
IMAGE = 224


# -- models ----------------------------------------------------------------------------

def hand_model(name: str):
    from bench import handwritten

    model = handwritten.ResNet18() if name == "resnet18" else handwritten.VGG16Net()
    return handwritten.trained_like(model)


def prepare(name: str, work: str) -> dict[str, str]:
    """The hand-written model's weights (safetensors), its ONNX export and the module
    migrate generates from that export."""
    import torch
    from safetensors.torch import save_file

    from migrate.pipeline import ConvertOptions, convert_source

    paths = {"hand": os.path.join(work, f"{name}_hand.safetensors"),
             "onnx": os.path.join(work, f"{name}.onnx"),
             "code": os.path.join(work, "generated", f"{name}.py")}
    if os.path.exists(paths["code"]):
        return paths
    model = hand_model(name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, paths["hand"])
    print(f"exporting {name} to ONNX ...", flush=True)
    # no constant folding: BatchNorm stays a layer of its own, as in the hand-written code
    torch.onnx.export(model, (torch.rand(1, 3, IMAGE, IMAGE),), paths["onnx"], dynamo=False,
                      do_constant_folding=False, input_names=["image"],
                      output_names=["logits"])
    print(f"migrate {name}.onnx --to pytorch ...", flush=True)
    summary = convert_source(paths["onnx"], ConvertOptions(
        target="pytorch", out_dir=os.path.join(work, "generated")))
    print("  " + str(summary).splitlines()[-1].strip(), flush=True)
    return paths


def load(variant: str, name: str, work: str):
    import torch
    from safetensors.torch import load_file

    if variant == "hand":  # loaded the way the generated load_model() does, for a fair
        from bench import handwritten  # comparison of the memory each process holds

        with torch.device("meta"):
            model = handwritten.ResNet18() if name == "resnet18" else handwritten.VGG16Net()
        model.load_state_dict(load_file(os.path.join(work, f"{name}_hand.safetensors")),
                              strict=True, assign=True)
        return model.eval()
    import importlib.util

    path = os.path.join(work, "generated", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()
    assert isinstance(model, torch.nn.Module)
    return model


def batch() -> object:
    import torch

    return torch.rand(BATCH, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


# -- speed ---------------------------------------------------------------------------------

def _time(model, x) -> float:
    import torch

    with torch.inference_mode():
        start = time.perf_counter()
        model(x)
        return time.perf_counter() - start


def speed(name: str, work: str, rounds: int, compiled: bool) -> dict:
    """Median forward time of both modules, run alternately (which goes first alternates
    too), after warm-up (and compilation)."""
    import torch

    hand, generated = load("hand", name, work), load("generated", name, work)
    x = batch()
    with torch.inference_mode():
        difference = float((hand(x) - generated(x)).abs().max())
    if compiled:
        hand, generated = torch.compile(hand), torch.compile(generated)
    for model in (hand, generated, hand, generated):
        _time(model, x)  # warm-up; compiles under torch.compile
    times = {"hand": [], "generated": []}
    for k in range(rounds):
        order = [("hand", hand), ("generated", generated)]
        for variant, model in order if k % 2 == 0 else order[::-1]:
            times[variant].append(_time(model, x))
    hand_t, gen_t = statistics.median(times["hand"]), statistics.median(times["generated"])
    # on a shared machine the fastest rounds are the least disturbed: their ratio too
    fastest = min(times["generated"]) / min(times["hand"])
    return {"hand": hand_t, "generated": gen_t, "ratio": gen_t / hand_t,
            "ratio_of_fastest": fastest, "max_abs_difference": difference}


# -- memory --------------------------------------------------------------------------------

def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(variant: str, name: str, work: str) -> None:
    """In a fresh process: resident memory before one forward, and its peak during it."""
    import gc

    import torch

    model = load(variant, name, work)
    x = batch()
    gc.collect()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak resident set (VmHWM) to the current one
    with torch.inference_mode():
        model(x)
    print(json.dumps({"before": before, "peak": _status("VmHWM")}))


def memory(name: str, work: str, rounds: int) -> dict:
    found: dict[str, list[dict]] = {"hand": [], "generated": []}
    for k in range(rounds):
        for variant in ("hand", "generated") if k % 2 == 0 else ("generated", "hand"):
            done = subprocess.run([sys.executable, __file__, "--memory-child", variant, name,
                                   "--workdir", work], capture_output=True, text=True,
                                  check=True)
            found[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    # The smallest of several fresh processes: a forward's own allocations are the same
    # every time; what varies (by 6 MB on ResNet-18, in either variant) is when the
    # allocator gives a second thread its own arena.
    result = {}
    for variant, runs in found.items():
        result[variant] = {"peak": min(r["peak"] for r in runs),
                           "forward": min(r["peak"] - r["before"] for r in runs)}
    result["peak_ratio"] = result["generated"]["peak"] / result["hand"]["peak"]
    result["forward_ratio"] = result["generated"]["forward"] / result["hand"]["forward"]
    return result


# -- writing safetensors -------------------------------------------------------------------

def _fsync_write(path: str, size: int, piece: bytes) -> None:
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(piece[:min(left, len(piece))])
            left -= len(piece)
        fh.flush()
        os.fsync(fh.fileno())


def io_floor(source: str, out: str) -> float:
    """Reading the source file and writing (and fsyncing) as many bytes."""
    start = time.perf_counter()
    size = 0
    with open(source, "rb") as fh:
        while chunk := fh.read(16 << 20):
            size += len(chunk)
    _fsync_write(out, size, b"\0" * (16 << 20))
    return time.perf_counter() - start


def safetensors_speed(work: str, rounds: int) -> dict:
    from bench import models, t7write
    from migrate.core.model import WriteOptions
    from migrate.core.outputs import write_atomically
    from migrate.pipeline import ConvertOptions, read_source
    from migrate.writers.pytorch import safetensors_out
    from migrate.writers.pytorch.program import generate
    from migrate.writers.pytorch.writer import write

    source = os.path.join(work, "vgg16.t7")
    if not os.path.exists(source):
        print(f"writing {source} ...", flush=True)
        t7write.save(source + ".partial", models.vgg16())
        os.replace(source + ".partial", source)
    out = os.path.join(work, "written")
    os.makedirs(out, exist_ok=True)
    src = read_source(source, ConvertOptions())
    state = generate(src.model, src).state
    times: dict[str, list[float]] = {"floor": [], "safetensors": [], "writer": []}
    for _ in range(rounds):
        times["floor"].append(io_floor(source, os.path.join(out, "floor.bin")))
        start = time.perf_counter()
        write_atomically({os.path.join(out, "alone.safetensors"): safetensors_out.chunks(state)})
        times["safetensors"].append(time.perf_counter() - start)
        start = time.perf_counter()
        files = write(src.model, out, "vgg16", WriteOptions(source=src)).files
        times["writer"].append(time.perf_counter() - start)
    found = {key: statistics.median(values) for key, values in times.items()}
    return {"bytes": os.path.getsize(files["weights"]), **found,
            "ratio": found["safetensors"] / found["floor"],
            "writer_ratio": found["writer"] / found["floor"]}


# -- report ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "bench-pytorch"))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--memory-child", nargs=2, metavar=("VARIANT", "MODEL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.memory_child:
        memory_child(*args.memory_child, args.workdir)
        return
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; batch {BATCH}x3x{IMAGE}x{IMAGE}", flush=True)
    results = {}
    for name in ("resnet18", "vgg16"):
        prepare(name, args.workdir)
        results[name] = {"eager": speed(name, args.workdir, args.rounds, compiled=False)}
        if not args.no_compile:
            results[name]["compiled"] = speed(name, args.workdir, args.rounds, compiled=True)
        results[name]["memory"] = memory(name, args.workdir, 6)
        print(json.dumps({name: results[name]}), flush=True)
    results["safetensors"] = safetensors_speed(args.workdir, 7)
    print(json.dumps({"safetensors": results["safetensors"]}), flush=True)
    print()
    print("| measure | generated / hand-written | target |")
    print("| --- | --- | --- |")
    for name, label in (("resnet18", "ResNet-18"), ("vgg16", "VGG-16")):
        r = results[name]
        for mode in ("eager", "compiled"):
            if mode in r:
                s = r[mode]
                print(f"| {label} forward, {mode} | {s['generated'] * 1e3:.0f} ms / "
                      f"{s['hand'] * 1e3:.0f} ms = **{s['ratio']:.3f}** (fastest rounds: "
                      f"{s['ratio_of_fastest']:.3f}) | <= 1.05 |")
        m = r["memory"]
        print(f"| {label} peak RSS of one forward | {m['generated']['peak'] / 2**20:.0f} MB / "
              f"{m['hand']['peak'] / 2**20:.0f} MB = **{m['peak_ratio']:.3f}** | <= 1.05 |")
        print(f"| {label} memory the forward adds | {m['generated']['forward'] / 2**20:.0f} MB"
              f" / {m['hand']['forward'] / 2**20:.0f} MB = **{m['forward_ratio']:.3f}** | "
              "<= 1.05 |")
    s = results["safetensors"]
    print(f"| writing the {s['bytes'] / 2**20:.0f} MiB safetensors / I/O floor | "
          f"{s['safetensors']:.2f} s / {s['floor']:.2f} s = **{s['ratio']:.2f}** | <= 1.5 |")
    print(f"| the whole writer (code, safetensors, JSON with the source's sha256) / I/O floor "
          f"| {s['writer']:.2f} s / {s['floor']:.2f} s = **{s['writer_ratio']:.2f}** | |")
    print()
    for name in ("resnet18", "vgg16"):
        print(f"{name}: generated vs hand-written outputs differ by at most "
              f"{results[name]['eager']['max_abs_difference']:.2e}")


if __name__ == "__main__":
    main()
