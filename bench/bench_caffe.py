"""Caffe as a source: conversion speed and memory on a VGG-16-sized caffemodel, as ratios
measured in one run.

    python bench/bench_caffe.py [--workdir DIR] [--rounds 5]

1. The model: BVLC's VGG-16 deploy definition and a 528 MB caffemodel. Real Caffe makes
   it (its gaussian fillers, `net.save`) when the Caffe runtime is provisioned; else our
   own wire writer streams the same layout (a NetParameter of layers with packed blobs).
2. Reading: the reader's weights (views of the mapped file, every page faulted in) vs
   protobuf parsing the caffemodel (what Caffe-to-X converters built on caffe_pb2 do).
3. End to end: `migrate vgg16.prototxt vgg16.caffemodel --no-verify --to onnx` and
   `--to caffe2` vs the I/O floor (reading the caffemodel plus writing and fsyncing as
   many bytes), and each one's peak RSS vs the caffemodel's size; also the same
   conversion inside a process that has done its imports (the work alone). Measured with the
   model in the page cache (warm) and read from the disk (cold: caches dropped before
   each run, which needs root).
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

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_convert import (  # noqa: E402
    _byte_compile,
    _median_time,
    _warm,
    _warm_interpreter,
    drop_caches,
    io_floor_once,
    timed_migrate,
)

# (name, output channels) per convolution block; "M" = 2x2 max pooling
VGG16 = [("conv1_1", 64), ("conv1_2", 64), "M", ("conv2_1", 128), ("conv2_2", 128), "M",
         ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), "M",
         ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), "M",
         ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512), "M"]
FILLERS = 'weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" }'


def vgg16_prototxt() -> str:
    """BVLC's VGG_ILSVRC_16_layers_deploy, layer for layer (with fillers, so that real
    Caffe can make its weights)."""
    lines = ['name: "VGG_ILSVRC_16_layers"', 'input: "data"',
             "input_shape { dim: 1 dim: 3 dim: 224 dim: 224 }"]
    bottom, pool = "data", 0
    for item in VGG16:
        if item == "M":
            pool += 1
            top = f"pool{pool}"
            lines.append(f'layer {{ name: "{top}" type: "Pooling" bottom: "{bottom}" '
                         f'top: "{top}" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}')
        else:
            top, channels = item
            lines.append(f'layer {{ name: "{top}" type: "Convolution" bottom: "{bottom}" '
                         f'top: "{top}" convolution_param {{ num_output: {channels} pad: 1 '
                         f'kernel_size: 3 {FILLERS} }} }}')
            lines.append(f'layer {{ name: "relu{top[4:]}" type: "ReLU" bottom: "{top}" '
                         f'top: "{top}" }}')
        bottom = top
    for name, size in (("fc6", 4096), ("fc7", 4096), ("fc8", 1000)):
        lines.append(f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" '
                     f'top: "{name}" inner_product_param {{ num_output: {size} {FILLERS} }} }}')
        if name != "fc8":
            lines.append(f'layer {{ name: "relu{name[2:]}" type: "ReLU" bottom: "{name}" '
                         f'top: "{name}" }}')
            lines.append(f'layer {{ name: "drop{name[2:]}" type: "Dropout" bottom: "{name}" '
                         f'top: "{name}" dropout_param {{ dropout_ratio: 0.5 }} }}')
        bottom = name
    lines.append('layer { name: "prob" type: "Softmax" bottom: "fc8" top: "prob" }')
    return "\n".join(lines) + "\n"


def vgg16_blob_shapes() -> list[tuple[str, str, list[list[int]]]]:
    shapes, channels, size = [], 3, 224
    for item in VGG16:
        if item == "M":
            size //= 2
            continue
        name, out = item
        shapes.append((name, "Convolution", [[out, channels, 3, 3], [out]]))
        channels = out
    features = channels * size * size
    for name, out in (("fc6", 4096), ("fc7", 4096), ("fc8", 1000)):
        shapes.append((name, "InnerProduct", [[out, features], [out]]))
        features = out
    return shapes


_REAL_CAFFE_SAVE = """
import sys, caffe
caffe.set_mode_cpu()
caffe.set_random_seed(0)
caffe.Net(sys.argv[1], caffe.TEST).save(sys.argv[2])
"""


def write_caffemodel_ourselves(path: str) -> None:
    """The caffemodel's wire format, streamed: NetParameter.layer (field 100) messages
    with name, type and BlobProto{shape, packed float data} blobs."""
    from migrate.core.sniff import encode_len_field, encode_varint

    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        for name, kind, shapes in vgg16_blob_shapes():
            blobs = []
            for shape in shapes:
                data = rng.standard_normal(int(np.prod(shape)), dtype=np.float32) * 0.01
                dims = b"".join(encode_varint(d) for d in shape)
                blobs.append(encode_len_field(7, encode_len_field(1, dims))
                             + encode_varint(5 << 3 | 2) + encode_varint(data.nbytes))
                blobs.append(data.tobytes())
            # each blob: BlobProto header + data, wrapped in a LayerParameter.blobs field
            body = [encode_len_field(1, name.encode()), encode_len_field(2, kind.encode())]
            for header, data in zip(blobs[::2], blobs[1::2], strict=True):
                body.append(encode_varint(7 << 3 | 2) + encode_varint(len(header) + len(data))
                            + header)
                body.append(data)
            size = sum(len(b) for b in body)
            fh.write(encode_varint(100 << 3 | 2) + encode_varint(size))
            for piece in body:
                fh.write(piece)


def ensure_model(workdir: str) -> tuple[str, str, str]:
    net = os.path.join(workdir, "vgg16.prototxt")
    weights = os.path.join(workdir, "vgg16.caffemodel")
    with open(net, "w") as fh:
        fh.write(vgg16_prototxt())
    if os.path.exists(weights):
        return net, weights, open(weights + ".maker").read().strip()
    from migrate.runtimes.caffe.side import find_caffe_python

    python = find_caffe_python()
    print(f"writing {weights} ...", flush=True)
    if python:
        subprocess.run([python, "-c", _REAL_CAFFE_SAVE, net, weights + ".partial"], check=True)
        maker = "real Caffe (gaussian fillers, net.save)"
    else:
        write_caffemodel_ourselves(weights + ".partial")
        maker = "our wire writer (Caffe runtime not provisioned)"
    os.replace(weights + ".partial", weights)
    with open(weights + ".maker", "w") as fh:
        fh.write(maker)
    return net, weights, maker


def reading(weights: str) -> dict:
    from migrate.core.formats import caffe_pb2
    from migrate.readers.caffe.weights import load_weights

    def ours() -> int:
        total = 0
        for layer in load_weights(weights, 1 << 40).layers.values():
            for blob in layer.blobs:
                total += int(blob.data.view(np.uint8)[::4096].sum(dtype=np.uint64))
        return total

    def protobuf() -> int:
        net = caffe_pb2.NetParameter()
        with open(weights, "rb") as fh:
            net.ParseFromString(fh.read())
        return len(net.layer)

    protobuf_s = _median_time(protobuf, 3)
    ours_s = _median_time(ours, 5)
    return {"protobuf_parse_s": protobuf_s, "ours_reading_every_weight_s": ours_s,
            "speedup": protobuf_s / ours_s}


_IN_PROCESS = """
import sys, time
net, weights, target, out = sys.argv[1:5]
import migrate
import migrate.readers.caffe.reader, migrate.writers.caffe2.writer, migrate.writers.onnx.writer
start = time.perf_counter()
migrate.convert([net, weights], to=target, out_dir=out, verify=False)
print(time.perf_counter() - start)
"""


def end_to_end(net: str, weights: str, target: str, workdir: str, cold: bool,
               rounds: int) -> dict:
    """Conversion and I/O floor measured alternately (the disk's speed drifts), medians."""
    out = os.path.join(workdir, f"out_{target}")
    walls, peaks, floors, inside = [], [], [], []
    for _ in range(rounds):
        floors.append(io_floor_once(weights, workdir, cold))
        shutil.rmtree(out, ignore_errors=True)
        if cold:
            drop_caches()
        _warm_interpreter()
        wall, peak = timed_migrate(out, net, weights, "--to", target)
        walls.append(wall)
        peaks.append(peak)
        # the same conversion in a process that has imported everything already: the
        # work itself, without interpreter start-up and imports
        shutil.rmtree(out, ignore_errors=True)
        if cold:
            drop_caches()
        inside.append(float(subprocess.run(
            [sys.executable, "-c", _IN_PROCESS, net, weights, target, out], cwd=ROOT,
            check=True, capture_output=True, text=True).stdout.split()[-1]))
    written = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    return {"wall_s": statistics.median(walls), "peak_rss_bytes": max(peaks),
            "io_floor_s": statistics.median(floors), "written_bytes": written,
            "in_process_s": statistics.median(inside)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                     "torch7-migrate-bench-caffe"))
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    net, weights, maker = ensure_model(args.workdir)
    size = os.path.getsize(weights)
    _warm(weights)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}, numpy {np.__version__}",
        "caffemodel_bytes": size, "caffemodel_made_by": maker,
        "reading": reading(weights),
    }
    _byte_compile()
    can_drop = drop_caches()
    for target in ("onnx", "caffe2"):
        for label, cold in (("warm", False), ("cold", True)):
            if cold and not can_drop:
                continue
            if not cold:
                _warm(weights)
            e2e = end_to_end(net, weights, target, args.workdir, cold, args.rounds)
            results[f"{target}_{label}_cache"] = {
                **e2e, "ratio_to_io_floor": e2e["wall_s"] / e2e["io_floor_s"],
                "peak_rss_over_caffemodel_size": e2e["peak_rss_bytes"] / size}
    # what every conversion pays before it reads a byte of the model
    results["startup_s"] = _median_time(lambda: subprocess.run(
        [sys.executable, "-c", "import migrate.cli.convert, migrate.pipeline, "
         "migrate.readers.caffe.reader, migrate.writers.onnx.writer, "
         "migrate.writers.caffe2.writer"], cwd=ROOT, check=True), 5)
    print(json.dumps(results, indent=2))
    r = results
    print("\nsummary (targets in brackets)")
    print(f"  caffemodel: {size / 1e6:.0f} MB, made by {maker}")
    print(f"  reader vs protobuf parse           {r['reading']['speedup']:.1f}x faster")
    for target in ("onnx", "caffe2"):
        for label in ("cold", "warm"):
            e2e = r.get(f"{target}_{label}_cache")
            if not e2e:
                continue
            print(f"  --to {target:<7} / I/O floor         {e2e['ratio_to_io_floor']:.2f}  "
                  f"[<= 1.5]  ({label} page cache: {e2e['wall_s']:.2f} s vs "
                  f"{e2e['io_floor_s']:.2f} s)")
            print(f"  --to {target:<7} peak RSS / model     "
                  f"{e2e['peak_rss_over_caffemodel_size']:.2f}  [<= 0.5]  ({label})")
            print(f"  --to {target:<7} in-process / floor   "
                  f"{e2e['in_process_s'] / e2e['io_floor_s']:.2f}  (start-up and imports "
                  f"excluded: {e2e['in_process_s']:.2f} s)")
    print(f"  (of which Python start-up and imports: {r['startup_s']:.2f} s)")


if __name__ == "__main__":
    main()
