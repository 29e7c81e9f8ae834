"""Run Caffe2 nets inside the Caffe2 side runtime (CPython 3.9 + torch 1.10.2).

This file is executed by that interpreter, not imported by the package: it must
stay Python 3.9 compatible and import nothing from torch7-migrate.

    caffe2-python caffe2_runner.py JOB.json

JOB.json: {"nets": [{"init": path, "predict": path, "inputs": [npy paths],
                     "outputs": npz path, "trace": [op indices],
                     "repeat": n}]}
For each net it loads the pair with Caffe2's Predictor (the loader mobile
deployments use), runs it on the inputs, and saves the outputs (`out0`, `out1`,
... in external_output order). With "trace" it also runs the ops one by one in a
plain workspace and saves the first output of each listed op right after that op
ran (`op<i>`), so values that later in-place ops overwrite are still seen. With
"repeat" it times that many Predictor runs and saves their durations (`times`).
It prints one JSON line per net: {"ok": true} or {"ok": false, "error": "..."}.
"""

import json
import os
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402
from caffe2.proto import caffe2_pb2  # noqa: E402
from caffe2.python import workspace  # noqa: E402


def _load(path):
    net = caffe2_pb2.NetDef()
    with open(path, "rb") as fh:
        net.ParseFromString(fh.read())
    return net


def run_one(job):
    init_net, predict_net = _load(job["init"]), _load(job["predict"])
    inputs = [np.load(p) for p in job["inputs"]]
    results = {}
    predictor = workspace.Predictor(init_net.SerializeToString(), predict_net.SerializeToString())
    for i, value in enumerate(predictor.run(inputs)):
        results["out%d" % i] = np.asarray(value)
    repeat = int(job.get("repeat") or 0)
    if repeat:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            predictor.run(inputs)
            times.append(time.perf_counter() - start)
        results["times"] = np.asarray(times)
    trace = set(job.get("trace") or [])
    if trace:
        workspace.ResetWorkspace()
        workspace.RunNetOnce(init_net)
        for name, value in zip(predict_net.external_input, inputs):
            workspace.FeedBlob(name, value)
        for i, op in enumerate(predict_net.op):
            workspace.RunOperatorOnce(op)
            if i in trace:
                results["op%d" % i] = np.asarray(workspace.FetchBlob(op.output[0]))
        workspace.ResetWorkspace()
    np.savez(job["outputs"], **results)


def main():
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)["nets"]
    for job in jobs:
        try:
            run_one(job)
            line = {"ok": True}
        except Exception as exc:  # report and go on with the next net
            message = str(exc).strip().splitlines()
            line = {"ok": False, "error": message[0] if message else type(exc).__name__}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
