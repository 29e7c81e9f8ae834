"""Fuzz the readers and converters with mutated real model files, of every source format.

    python bench/fuzz.py --minutes 30 [--seed 1] [--shared ../shared] [--formats torch7,onnx]
    (formats: torch7, onnx, caffe (damaged caffemodels), caffe_prototxt, pytorch, ...)

Every case is a real fixture file damaged one way: bit flips, truncation at an
object boundary, a size field set huge or negative, a type tag overwritten (Torch7), a
field's length made huge (protobuf formats: ONNX, Caffe, Caffe2), plus synthetic deep
nesting and self-containing modules. Each is read the way `migrate` reads a user's files
(found by content, every file of a multi-file model), converted (common graph, graph
passes, then Caffe2 nets) in a worker process that reports, per case, what escaped and
how far its resident memory peaked above where it started. A case fails when anything
other than the project's own MigrateError escapes, when it takes longer than the per-case
timeout (the worker is killed and restarted), or when its memory peak exceeds 8x the
file size + 32 MB.

A source format plugs in with `@seed_format(name)`: a function returning its seed models
(`Seed`: the files, which one to damage, the input shapes) and the byte structure of a
file (`structure(data)`: offsets of objects and size fields).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE_TIMEOUT_S = 10.0
MEMORY_FACTOR, MEMORY_SLACK = 8, 32 << 20


# -- finding the structure of a real file -----------------------------------------

def structure(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """Byte offsets of objects, type tags and size fields, found by decoding once."""
    sys.path.insert(0, ROOT)
    from migrate.readers.torch7 import t7file

    found: dict[str, list[tuple[int, int]]] = {"object": [], "int": [], "long": []}

    class Recorder(t7file.T7Reader):
        def read_obj(self):
            found["object"].append((self.buf.pos, 4))
            return super().read_obj()

        def read_int(self):
            found["int"].append((self.buf.pos, 4))
            return super().read_int()

        def read_long(self):
            found["long"].append((self.buf.pos, self.long_size))
            return super().read_long()

    reader = Recorder(t7file._Buffer(data, "x"), ascii=False, long_size=8,
                      max_bytes=t7file.DEFAULT_MAX_BYTES)
    try:
        t7file._run_with_deep_stack(reader.read_obj)
    except Exception:  # noqa: S110 - a partial structure is still useful
        pass
    return found


def protobuf_structure(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """Offsets of field tags ("object") and of LEN fields' length varints ("len"),
    two levels deep (enough to reach tensors, layers and ops)."""
    sys.path.insert(0, ROOT)
    from migrate.core.sniff import LEN, wire_fields

    found: dict[str, list[tuple[int, int]]] = {"object": [], "int": [], "long": [], "len": []}

    def walk(start: int, end: int, depth: int) -> None:
        try:
            for f in wire_fields(data, start, end, 200_000):
                found["object"].append((f.offset, 1))
                if f.wire_type == LEN and f.end <= end:
                    found["len"].append((f.offset, f.start - f.offset))
                    if depth < 3 and f.length > 2:
                        walk(f.start, f.end, depth + 1)
        except ValueError:
            pass

    walk(0, len(data), 0)
    return found


# -- synthetic hostile files ----------------------------------------------------------

def _i32(v: int) -> bytes:
    return struct.pack("<i", v)


def _str(s: bytes) -> bytes:
    return _i32(len(s)) + s


def _torch_header(index: int, cls: bytes) -> bytes:
    return _i32(4) + _i32(index) + _str(b"V 1") + _str(cls)


def deep_tables(depth: int) -> bytes:
    """{[1] = {[1] = ... }} nested `depth` times."""
    body = b"".join(_i32(3) + _i32(i + 2) + _i32(1) + _i32(1) + struct.pack("<d", 1.0)
                    for i in range(depth))
    return body + _i32(0)


def deep_modules(depth: int) -> bytes:
    """nn.Sequential{modules={nn.Sequential{...}}} nested `depth` times."""
    out, index = b"", 1
    for _ in range(depth):
        out += _torch_header(index, b"nn.Sequential") + _i32(3) + _i32(index + 1) + _i32(1)
        out += _str_key(b"modules") + _i32(3) + _i32(index + 2) + _i32(1) + _i32(1)
        out += struct.pack("<d", 1.0)
        index += 3
    return out + _torch_header(index, b"nn.ReLU") + _i32(3) + _i32(index + 1) + _i32(0)


def _str_key(s: bytes) -> bytes:
    return _i32(2) + _str(s)


def self_containing_module() -> bytes:
    """nn.Sequential whose modules[1] is the Sequential itself (object index 1)."""
    return (_torch_header(1, b"nn.Sequential") + _i32(3) + _i32(2) + _i32(1)
            + _str_key(b"modules") + _i32(3) + _i32(3) + _i32(1) + _i32(1)
            + struct.pack("<d", 1.0) + _i32(4) + _i32(1))


# -- mutations -------------------------------------------------------------------------

@dataclass
class Case:
    kind: str
    source: str  # the damaged file's original
    data: bytes  # its damaged bytes
    shapes: list[list[int]] | None
    name: str = "case.t7"  # the damaged file's name in the case folder
    companions: list[str] = field(default_factory=list)  # undamaged files of the model
    options: dict = field(default_factory=dict)  # ConvertOptions the model needs


@dataclass
class Seed:
    format: str
    damaged: str  # the file the mutations damage
    shapes: list[list[int]] | None
    companions: list[str] = field(default_factory=list)  # the model's other files
    options: dict = field(default_factory=dict)  # e.g. a checkpoint's model_class


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def mutate(seed: Seed, data: bytes, info, rng: random.Random) -> Case:
    kinds = ["bitflip", "truncate", "huge_size", "type_tag", "bitflip", "truncate"]
    if info.get("len"):
        kinds += ["huge_length", "huge_length"]
    kind = rng.choice(kinds)
    buf = bytearray(data)
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
    elif kind == "truncate" and info["object"]:
        cut = rng.choice(info["object"])[0] + rng.choice([0, 0, 1, 4, 7])
        buf = buf[: max(0, min(cut, len(buf) - 1))]
    elif kind == "huge_size" and (info["int"] or info["long"]):
        pos, width = rng.choice(info["int"] + info["long"])
        value = rng.choice([-1, -(2 ** 31), 2 ** 31 - 1, 2 ** 40, 2 ** 62, 10 ** 15])
        packed = struct.pack("<q", value)[:width] if width == 8 else struct.pack(
            "<i", max(min(value, 2 ** 31 - 1), -(2 ** 31)))
        buf[pos:pos + width] = packed
    elif kind == "type_tag" and info["object"] and seed.format == "torch7":
        pos, _ = rng.choice(info["object"])
        buf[pos:pos + 4] = _i32(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 99, -3]))
    elif kind == "type_tag" and info["object"]:  # protobuf: another field number / wire type
        pos, _ = rng.choice(info["object"])
        buf[pos] = rng.randrange(256)
    elif kind == "huge_length" and info.get("len"):
        offset, width = rng.choice(info["len"])
        tag_end = offset + width - len(_length_bytes(buf, offset, width))
        value = rng.choice([2 ** 31, 2 ** 40, 2 ** 62, 10 ** 12, 0])
        buf[tag_end:offset + width] = _encode_varint(value)
    name = os.path.basename(seed.damaged)
    return Case(kind, seed.damaged, bytes(buf), seed.shapes, name, list(seed.companions),
                dict(seed.options))


def _length_bytes(buf: bytearray, offset: int, width: int) -> bytes:
    """The length varint at the end of a LEN field's header (tag varint, length varint)."""
    pos = offset
    while buf[pos] & 0x80:  # skip the tag varint
        pos += 1
    return bytes(buf[pos + 1:offset + width])


def synthetic_cases() -> list[Case]:
    return [
        Case("deep_tables", "synthetic", deep_tables(200_000), None),
        Case("deep_modules", "synthetic", deep_modules(5_000), [[1, 3, 8, 8]]),
        Case("cycle", "synthetic", self_containing_module(), [[1, 3, 8, 8]]),
        Case("empty", "synthetic", b"", None),
        Case("garbage", "synthetic", os.urandom(4096), None),
    ]


_SEED_FORMATS: dict[str, tuple] = {}


def seed_format(name: str, structure_of=protobuf_structure):
    """Register a source format's seeds: fn(shared) -> list[Seed]."""
    def add(fn):
        _SEED_FORMATS[name] = (fn, structure_of)
        return fn
    return add


@seed_format("torch7", structure_of=structure)
def torch7_seeds(shared: str) -> list[Seed]:
    """Fixture models with the input shapes they were saved with."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from fixtures_t7 import cases, manifest_names

    listed = manifest_names("manifest.txt") + ["misc_lenet_long4"]
    found = [Seed("torch7", c.model, [list(a.shape) for a in c.inputs]) for c in cases(listed)
             if not c.name.endswith("_double")]
    found += [Seed("torch7", p, [[1, 8, 24, 32]]) for p in
              sorted(glob.glob(os.path.join(shared, "fixtures", "real", "spynet", "*_C.t7")))]
    found += [Seed("torch7", p, None)
              for p in glob.glob(os.path.join(shared, "fixtures", "torch7", "misc_*.t7"))]
    return found


@seed_format("onnx")
def onnx_seeds(shared: str) -> list[Seed]:
    """ONNX's backend node-test models. (Not the "light" zoo models: their weights are
    ConstantOfShape fills that a 10 KB file declares as 500 MB, so their memory is not
    bounded by the file's size, which is what this fuzzer checks.)"""
    backend = os.path.join(shared, "fixtures", "real", "onnx", "backend")
    paths = sorted(glob.glob(os.path.join(backend, "pytorch-*", "*", "model.onnx")))
    return [Seed("onnx", p, None) for p in paths]


@seed_format("caffe2")
def caffe2_seeds(shared: str) -> list[Seed]:
    """Caffe2 pairs of Torch7 fixtures written by our Caffe2 writer (real Caffe2 runs them in
    the tests), each file damaged in turn with the other beside it."""
    sys.path.insert(0, ROOT)
    from migrate.core.model import WriteOptions
    from migrate.readers.torch7.reader import read_torch7
    from migrate.writers.caffe2.writer import write

    folder = tempfile.mkdtemp(prefix="fuzz-caffe2-seeds-")
    seeds = []
    for seed in torch7_seeds(shared)[:12]:
        try:
            model = read_torch7(seed.damaged, seed.shapes).model
            files = write(model, folder, os.path.basename(seed.damaged)[:-3],
                          WriteOptions(optimize=False)).files
        except Exception:  # noqa: S112 - a fixture the writer cannot take is no seed
            continue
        pair = [files["init_net"], files["predict_net"]]
        seeds += [Seed("caffe2", pair[0], seed.shapes, [pair[1]]),
                  Seed("caffe2", pair[1], seed.shapes, [pair[0]])]
    return seeds


def prototxt_structure(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """A text prototxt has no size fields: its braces, line starts and numbers are where
    truncation and overwritten bytes hurt most."""
    import re

    found: dict[str, list[tuple[int, int]]] = {"object": [], "int": [], "long": [], "len": []}
    found["object"] = [(m.start(), 1) for m in re.finditer(rb"[{}\n]|\d+", data)]
    return found


_CAFFE_PAIRS = [("lenet/lenet.prototxt", "lenet/lenet_iter_10000.caffemodel"),
                ("cifar10/cifar10_quick.prototxt", "cifar10/cifar10_quick_iter_5000.caffemodel"),
                ("mtcnn/det1.prototxt", "mtcnn/det1.caffemodel"),
                ("mtcnn/det2.prototxt", "mtcnn/det2.caffemodel"),
                ("mtcnn/det3.prototxt", "mtcnn/det3.caffemodel")]


def _caffe_pairs(shared: str) -> list[tuple[str, str]]:
    real = os.path.join(shared, "fixtures", "real", "caffe")
    return [(os.path.join(real, n), os.path.join(real, w)) for n, w in _CAFFE_PAIRS
            if os.path.exists(os.path.join(real, w))]


@seed_format("caffe")
def caffe_seeds(shared: str) -> list[Seed]:
    """The real caffemodels (current and V1 formats) damaged, their prototxt beside."""
    return [Seed("caffe", weights, None, [net]) for net, weights in _caffe_pairs(shared)]


@seed_format("caffe_prototxt", structure_of=prototxt_structure)
def caffe_prototxt_seeds(shared: str) -> list[Seed]:
    """The real prototxts damaged (V1 input fields, Input layers), their caffemodel beside."""
    return [Seed("caffe_prototxt", net, None, [weights]) for net, weights in
            _caffe_pairs(shared)]


def zip_structure(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """A zip archive's records ("object": local headers, central directory entries, the
    end record) and their 4-byte size, CRC and offset fields ("int")."""
    found: dict[str, list[tuple[int, int]]] = {"object": [], "int": [], "long": []}
    for signature, fields in ((b"PK\x03\x04", (14, 18, 22)), (b"PK\x01\x02", (16, 20, 24, 42)),
                              (b"PK\x05\x06", (12, 16))):
        pos = data.find(signature)
        while pos >= 0:
            found["object"].append((pos, 4))
            found["int"] += [(pos + k, 4) for k in fields if pos + k + 4 <= len(data)]
            pos = data.find(signature, pos + 4)
    return found


_PYTORCH_CODE = '''
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
'''


@seed_format("pytorch", structure_of=zip_structure)
def pytorch_seeds(shared: str) -> list[Seed]:
    """A small CNN as a .pt2 ExportedProgram and as a nested checkpoint named ckpt.t7
    (with its model code), made here with PyTorch (none without it)."""
    try:
        import torch
    except ImportError:
        return []
    folder = tempfile.mkdtemp(prefix="fuzz-pytorch-seeds-")
    code = os.path.join(folder, "fuzz_models.py")
    with open(code, "w") as fh:
        fh.write(_PYTORCH_CODE)
    namespace: dict = {}
    exec(compile(_PYTORCH_CODE, code, "exec"), namespace)  # noqa: S102 - our own code above
    torch.manual_seed(0)
    net = namespace["Net"]().eval()
    x = torch.randn(1, 3, 16, 16)
    program = os.path.join(folder, "model.pt2")
    torch.export.save(torch.export.export(net, (x,)), program)
    checkpoint = os.path.join(folder, "ckpt.t7")
    torch.save({"net": net.state_dict(), "acc": 93.1}, checkpoint)
    return [Seed("pytorch", program, [[1, 3, 16, 16]]),
            Seed("pytorch", checkpoint, [[1, 3, 16, 16]],
                 options={"model_class": f"{code}:Net"})]


def seed_models(shared: str, formats: list[str] | None = None) -> list[Seed]:
    return [s for name, (fn, _) in _SEED_FORMATS.items() if not formats or name in formats
            for s in fn(shared)]


# -- the worker: runs in its own process ----------------------------------------------

def _rss_kb(field_name: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    # (tracemalloc would do per-case peaks too, but makes deep recursion crawl.)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def worker() -> None:
    sys.path.insert(0, ROOT)
    if "--preload-torch" in sys.argv:
        _warm_up_torch()
        print(json.dumps({"ready": True}), flush=True)
    from migrate.core.errors import MigrateError
    from migrate.core.passes.optimize import optimize
    from migrate.pipeline import ConvertOptions, read_source
    from migrate.readers.torch7 import t7file
    from migrate.readers.torch7.module import T7Module
    from migrate.readers.torch7.reader import build_graph
    from migrate.writers.caffe2.writer import build_nets

    for line in sys.stdin:
        job = json.loads(line)
        _reset_peak_rss()
        baseline = _rss_kb("VmRSS")
        start = time.perf_counter()
        outcome = "converted"
        try:
            if job.get("raw_t7"):  # synthetic Torch7 bytes: the decoder and converters
                data = open(job["paths"][0], "rb").read()
                root = T7Module(t7file.loads(data, name=job["paths"][0]), "model")
                model = build_graph(root, "fuzz", job["shapes"]).model
            else:  # as `migrate` reads a user's files: found by content
                options = ConvertOptions(input_shapes=job["shapes"], **job.get("options", {}))
                model = read_source(job["paths"], options).model
            optimize(model)  # what `migrate` does by default
            build_nets(model, "fuzz", optimize=True)
        except MigrateError as exc:
            outcome = "error:" + type(exc).__name__
        except BaseException as exc:  # the failures the fuzzer is looking for
            outcome = f"ESCAPED:{type(exc).__name__}: {str(exc)[:200]}"
        peak = max(0, _rss_kb("VmHWM") - baseline) * 1024
        print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start,
                          "peak": peak}), flush=True)


def _warm_up_torch() -> None:
    """Import PyTorch and run one export before the first case: its imports and caches
    would otherwise count as that case's memory."""
    import torch

    from migrate.pipeline import ConvertOptions, read_source

    read_source(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()),
                ConvertOptions(input_shapes=[[1, 3, 8, 8]]))


# -- the driver -------------------------------------------------------------------------

@dataclass
class FuzzStats:
    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    worst_memory_ratio: float = 0.0


class _Worker:
    def __init__(self, preload_torch: bool = False) -> None:
        args = ["--worker"] + (["--preload-torch"] if preload_torch else [])
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        if preload_torch:  # the warm-up is not part of any case's time
            ready, _, _ = select.select([self.proc.stdout], [], [], 300)
            if not ready or not self.proc.stdout.readline():
                raise RuntimeError("the fuzz worker could not import PyTorch")

    def run(self, paths: list[str], shapes, timeout: float, raw_t7: bool = False,
            options: dict | None = None) -> dict | None:
        self.proc.stdin.write(json.dumps({"paths": paths, "shapes": shapes, "raw_t7": raw_t7,
                                          "options": options or {}}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"outcome": "ESCAPED:worker died"}

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_fuzz(seconds: float, seed: int, shared: str, case_timeout: float = CASE_TIMEOUT_S,
             log=None, formats: list[str] | None = None) -> FuzzStats:
    rng = random.Random(seed)
    seeds = [(s, open(s.damaged, "rb").read()) for s in seed_models(shared, formats)]
    infos = {s.damaged: _SEED_FORMATS[s.format][1](d) for s, d in seeds}
    stats = FuzzStats()
    preload = any(s.format == "pytorch" for s, _ in seeds)
    pending = synthetic_cases()
    worker_proc = _Worker(preload)
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        try:
            while time.monotonic() < deadline:
                if pending:
                    case = pending.pop()
                else:
                    model, data = rng.choice(seeds)
                    case = mutate(model, data, infos[model.damaged], rng)
                folder = os.path.join(tmp, str(stats.cases % 2))
                shutil.rmtree(folder, ignore_errors=True)
                os.makedirs(folder)
                path = os.path.join(folder, case.name)
                with open(path, "wb") as fh:
                    fh.write(case.data)
                paths = [path]
                for companion in case.companions:  # the model's other, undamaged files
                    paths.append(os.path.join(folder, os.path.basename(companion)))
                    shutil.copyfile(companion, paths[-1])
                result = worker_proc.run(paths, case.shapes, case_timeout,
                                         raw_t7=case.source == "synthetic",
                                         options=case.options)
                stats.cases += 1
                label = f"{case.kind} of {os.path.basename(case.source)}"
                if result is None:
                    stats.failures.append(f"{label}: no answer in {case_timeout} s")
                    worker_proc.kill()
                    worker_proc = _Worker(preload)
                    _keep(tmp, case, stats)
                    continue
                outcome = result["outcome"]
                key = outcome.split(":")[0] + (":" + outcome.split(":")[1]
                                               if outcome.startswith("error") else "")
                stats.outcomes[key] = stats.outcomes.get(key, 0) + 1
                stats.slowest_s = max(stats.slowest_s, result["seconds"])
                budget = MEMORY_FACTOR * len(case.data) + MEMORY_SLACK
                stats.worst_memory_ratio = max(stats.worst_memory_ratio,
                                               result["peak"] / max(len(case.data), 1))
                if outcome.startswith("ESCAPED") or result["peak"] > budget:
                    stats.failures.append(f"{label}: {outcome}, peak {result['peak']} bytes")
                    _keep(tmp, case, stats)
                if log and stats.cases % 500 == 0:
                    log(f"{stats.cases} cases, {len(stats.failures)} failures")
        finally:
            worker_proc.kill()
    return stats


def _keep(tmp: str, case: Case, stats: FuzzStats) -> None:
    """Keep a failing input for the developer (in the system temp folder)."""
    keep = os.path.join(tempfile.gettempdir(),
                        f"fuzz-failure-{len(stats.failures)}-{case.name}")
    with open(keep, "wb") as fh:
        fh.write(case.data)


def main() -> None:
    if "--worker" in sys.argv:
        worker()
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    p.add_argument("--formats", help="comma-separated source formats (default: all)")
    args = p.parse_args()
    start = time.time()
    formats = args.formats.split(",") if args.formats else None
    stats = run_fuzz(args.minutes * 60, args.seed, args.shared, log=print, formats=formats)
    print(json.dumps({"cases": stats.cases, "failures": len(stats.failures),
                      "outcomes": stats.outcomes, "slowest_s": round(stats.slowest_s, 3),
                      "worst_peak_over_file_size": round(stats.worst_memory_ratio, 1),
                      "minutes": round((time.time() - start) / 60, 1)}, indent=2))
    for failure in stats.failures[:50]:
        print("FAIL", failure)
    sys.exit(1 if stats.failures else 0)


if __name__ == "__main__":
    main()
