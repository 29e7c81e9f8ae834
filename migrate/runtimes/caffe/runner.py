"""Run Caffe nets inside the Caffe side runtime (pycaffe of BVLC Caffe on CPython 3.9).

This file is executed by that interpreter, not imported by the package: it must stay
Python 3.9 compatible and import nothing from torch7-migrate.

    caffe-python runner.py JOB.json

JOB.json: {"nets": [{"net": path, "binary": bool, "weights": path or null,
                     "inputs": [npy paths], "outputs": npz path, "layers": bool,
                     "repeat": n}]}
For each net it builds caffe.Net in the TEST phase (Caffe upgrades V0/V1 definitions
and drops TRAIN-only layers itself), copies the weights in, feeds the inputs (reshaping
input blobs whose shape differs from the declared one), runs it and saves the outputs
(`out0`, `out1`, ... in Caffe's own output order) in the npz. With "layers" it runs the
net one layer at a time and saves each layer's first top right after that layer ran
(`L<i>`, i = layer index), because in-place layers (ReLU on conv1's blob) overwrite
blobs; the layer names go to the JSON line. With "repeat" it times that many forward
passes (`times`).

It prints one JSON line per net, {"ok": true, "layers": [names], "tops": [first top of
each layer], "outputs": [output blob names]} or
{"ok": false, "error": "..."}, flushed before the next net starts: Caffe ABORTS the
process on a definition it cannot parse or a failed check, and the caller then knows
which net did it (and restarts the runner for the nets after it).
"""

import json
import os
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe  # noqa: E402
import numpy as np  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402


def _text_definition(path, folder):
    """caffe.Net reads text definitions only: a binary NetParameter (a definition saved
    as binary, or a caffemodel used as its own definition) is rewritten as text,
    without its blobs."""
    net = caffe_pb2.NetParameter()
    with open(path, "rb") as fh:
        net.ParseFromString(fh.read())
    for layer in net.layer:
        del layer.blobs[:]
    for layer in net.layers:
        del layer.blobs[:]
        if layer.HasField("layer"):
            del layer.layer.blobs[:]
    out = os.path.join(folder, "definition.prototxt")
    with open(out, "w") as fh:
        fh.write(text_format.MessageToString(net))
    return out


def _feed(net, inputs):
    names = list(net.inputs)
    if len(names) != len(inputs):
        raise ValueError("the net has %d input(s) (%s); %d given"
                         % (len(names), ", ".join(names), len(inputs)))
    reshaped = False
    for name, array in zip(names, inputs):
        blob = net.blobs[name]
        if tuple(blob.data.shape) != tuple(array.shape):
            blob.reshape(*array.shape)
            reshaped = True
    if reshaped:
        net.reshape()
    for name, array in zip(names, inputs):
        net.blobs[name].data[...] = array


def run_one(job, folder):
    definition = job["net"]
    if job.get("binary"):
        definition = _text_definition(definition, folder)
    if job.get("weights"):
        net = caffe.Net(definition, caffe.TEST, weights=job["weights"])
    else:
        net = caffe.Net(definition, caffe.TEST)
    inputs = [np.load(p) for p in job["inputs"]]
    _feed(net, inputs)
    results = {}
    names = list(net._layer_names)
    first_tops = []
    if job.get("layers"):
        blob_names = list(net._blob_names)
        for i in range(len(names)):
            net._forward(i, i)
            tops = list(net._top_ids(i))
            if tops:
                results["L%d" % i] = net.blobs[blob_names[tops[0]]].data.copy()
            first_tops.append(blob_names[tops[0]] if tops else "")
    else:
        net.forward()
    for k, name in enumerate(net.outputs):
        results["out%d" % k] = net.blobs[name].data.copy()
    repeat = int(job.get("repeat") or 0)
    if repeat:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            net.forward()
            times.append(time.perf_counter() - start)
        results["times"] = np.asarray(times)
    np.savez(job["outputs"], **results)
    return {"ok": True, "layers": names, "tops": first_tops, "outputs": list(net.outputs)}


def main():
    caffe.set_mode_cpu()
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)["nets"]
    folder = os.path.dirname(os.path.abspath(sys.argv[1]))  # the caller's private folder
    for job in jobs:
        try:
            line = run_one(job, folder)
        except Exception as exc:  # report and go on with the next net
            message = str(exc).strip().splitlines()
            line = {"ok": False, "error": message[0] if message else type(exc).__name__}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
