"""ONNX -> LiteRT (.tflite): this tool vs onnx2tf, side by side in one run.

    python bench/bench_tflite.py [--workdir DIR] [--onnx2tf-venv DIR] [--rounds N]

For each model (the ONNX backend tests' light ResNet-50, Inception v1, SqueezeNet,
ShuffleNet, and a VGG-16 exported from PyTorch with random weights):

- conversion time: `migrate MODEL --to tflite --no-verify` vs `onnx2tf -i MODEL` (its
  default flatbuffer_direct backend), each a fresh process, as a user runs them, on a
  fresh copy of the .onnx (onnx2tf rewrites its input in place: the hashes are shown);
- LiteRT inference time of each produced .tflite, in the same `ai-edge-litert`
  interpreter (one thread), measured alternately, medians;
- Transpose ops left in each .tflite;
- max |error| against the stored outputs (the backend tests' output_0.pb; for VGG-16
  what PyTorch computed at export), each output mapped back to NCHW.

onnx2tf (pinned, from PyPI) needs Python >= 3.12: it runs from its own venv, made here
with pyenv's 3.12 when missing.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHARED = os.environ.get("MIGRATE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
LIGHT = os.path.join(SHARED, "fixtures", "real", "onnx", "backend", "light")
MODELS = ["light_resnet50", "light_inception_v1", "light_squeezenet", "light_shufflenet",
          "vgg16"]
ONNX2TF = "onnx2tf==2.6.9"
DEFAULT_VENV = os.path.expanduser("~/.cache/torch7-migrate/onnx2tf-venv")


def _sha(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]


def _python312() -> str:
    found = shutil.which("python3.12")
    if found:
        return found
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    if not candidates:
        raise SystemExit("onnx2tf needs Python >= 3.12: install one (pyenv install 3.12)")
    return candidates[-1]


def ensure_onnx2tf(venv: str) -> str:
    tool = os.path.join(venv, "bin", "onnx2tf")
    if not os.path.exists(tool):
        print(f"installing {ONNX2TF} into {venv} ...", flush=True)
        subprocess.run([_python312(), "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", ONNX2TF],
                       check=True)
    return tool


# -- the models ---------------------------------------------------------------------------

def _input(shape) -> np.ndarray:
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def _light(name: str, workdir: str) -> tuple[str, np.ndarray, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    path = os.path.join(LIGHT, f"{name}.onnx")
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    value = next(v for v in model.graph.input if v.name not in inits)
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(LIGHT,
                                                                   f"{name}_output_0.pb")))
    return path, _input(shape), expected


def _vgg16(workdir: str) -> tuple[str, np.ndarray, np.ndarray]:
    """torchvision's VGG-16 layout, random weights (seed 0), exported by torch.onnx;
    the expected output is PyTorch's."""
    os.makedirs(os.path.join(workdir, "source"), exist_ok=True)
    path = os.path.join(workdir, "source", "vgg16.onnx")
    ref = os.path.join(workdir, "source", "vgg16_expected.npy")
    x = _input((1, 3, 224, 224))
    if not (os.path.exists(path) and os.path.exists(ref)):
        import torch

        torch.manual_seed(0)
        layers, n_in = [], 3
        for item in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                     512, 512, 512, "M"]:
            if item == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(n_in, item, 3, padding=1), torch.nn.ReLU()]
                n_in = item
        model = torch.nn.Sequential(
            *layers, torch.nn.Flatten(), torch.nn.Linear(25088, 4096), torch.nn.ReLU(),
            torch.nn.Dropout(), torch.nn.Linear(4096, 4096), torch.nn.ReLU(),
            torch.nn.Dropout(), torch.nn.Linear(4096, 1000)).eval()
        with torch.no_grad():
            np.save(ref, model(torch.from_numpy(x)).numpy())
            torch.onnx.export(model, (torch.from_numpy(x),), path + ".partial",
                              input_names=["input"], output_names=["logits"],
                              opset_version=17, dynamo=False)
        os.replace(path + ".partial", path)
    return path, x, np.load(ref)


# -- running the two tools ------------------------------------------------------------------

def convert_ours(source: str, out: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "migrate", source, "--to", "tflite", "--no-verify",
                    "-o", out], check=True, capture_output=True)
    return time.perf_counter() - start


def convert_onnx2tf(tool: str, source: str, out: str) -> float:
    # its venv's bin first on PATH: onnx2tf runs the `onnxsim` command it installs
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ["PATH"])
    start = time.perf_counter()
    result = subprocess.run([tool, "-i", source, "-o", out, "-n"], capture_output=True,
                            text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"onnx2tf failed: {result.stderr[-2000:]}")
    return time.perf_counter() - start


def _transposes(path: str) -> int:
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as fh:
        model = schema.ModelT.InitFromPackedBuf(fh.read(), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return sum(1 for g in model.subgraphs for op in g.operators
               if codes[op.opcodeIndex] == schema.BuiltinOperator.TRANSPOSE)


class _Runner:
    """One .tflite in the LiteRT interpreter, fed the NCHW input in its own layout."""

    def __init__(self, path: str, x: np.ndarray, sidecar_path: str | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from migrate.core.formats import tensorflow as sidecar

        self.interpreter = Interpreter(model_path=path, num_threads=1)
        self.interpreter.allocate_tensors()
        (detail,) = self.interpreter.get_input_details()
        self.index = detail["index"]
        self.out_index = self.interpreter.get_output_details()[0]["index"]
        self.data = json.load(open(sidecar_path)) if sidecar_path else None
        if self.data is not None:
            self.x = sidecar.to_stored(x, self.data["inputs"][0])
        elif tuple(detail["shape"]) == x.shape:
            self.x = x
        else:  # onnx2tf's NHWC input
            self.x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def __call__(self) -> np.ndarray:
        self.interpreter.set_tensor(self.index, self.x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.out_index)

    def output(self, expected_shape) -> np.ndarray:
        from migrate.core.formats import tensorflow as sidecar

        y = self()
        if self.data is not None:
            return sidecar.to_source(y, self.data["outputs"][0])
        if y.shape == tuple(expected_shape):
            return y
        if y.ndim == 4 and y.transpose(0, 3, 1, 2).shape == tuple(expected_shape):
            return y.transpose(0, 3, 1, 2)
        return y.reshape(expected_shape)


def _time(run, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - start) / n


def bench_model(name: str, tool: str, workdir: str, rounds: int, runs: int) -> dict:
    source, x, expected = _vgg16(workdir) if name == "vgg16" else _light(name, workdir)
    row: dict = {"model": name}
    ours_times, theirs_times = [], []
    conversions = 1 if name == "vgg16" else rounds
    for k in range(conversions):
        for who in ("ours", "onnx2tf"):
            folder = os.path.join(workdir, f"{name}_{who}")
            shutil.rmtree(folder, ignore_errors=True)
            copy = os.path.join(workdir, f"{name}.onnx")  # a fresh copy each time
            shutil.copy(source, copy)
            before = _sha(copy)
            if who == "ours":
                ours_times.append(convert_ours(copy, folder))
                row["ours_input_unchanged"] = _sha(copy) == before
            else:
                theirs_times.append(convert_onnx2tf(tool, copy, folder))
                row["onnx2tf_input_unchanged"] = _sha(copy) == before
            os.remove(copy)
        print(f"  {name}: conversion round {k + 1}: ours {ours_times[-1]:.2f} s, "
              f"onnx2tf {theirs_times[-1]:.2f} s", flush=True)
    row["convert_ours"] = statistics.median(ours_times)
    row["convert_onnx2tf"] = statistics.median(theirs_times)
    ours_file = os.path.join(workdir, f"{name}_ours", f"{name}.tflite")
    theirs_file = os.path.join(workdir, f"{name}_onnx2tf", f"{name}_float32.tflite")
    ours = _Runner(ours_file, x, os.path.join(workdir, f"{name}_ours", f"{name}.json"))
    row["transposes_ours"] = _transposes(ours_file)
    row["transposes_onnx2tf"] = _transposes(theirs_file)
    row["error_ours"] = float(np.max(np.abs(ours.output(expected.shape) - expected)))
    try:
        theirs = _Runner(theirs_file, x, None)
    except RuntimeError as exc:  # e.g. a custom op the LiteRT interpreter lacks
        row["onnx2tf_failure"] = str(exc).splitlines()[0]
        print(f"  {name}: onnx2tf's .tflite does not run in LiteRT: "
              f"{row['onnx2tf_failure']}", flush=True)
        theirs = None
    row["error_onnx2tf"] = (float(np.max(np.abs(theirs.output(expected.shape) - expected)))
                            if theirs else None)
    ours()  # warm up
    if theirs:
        theirs()
    a, b = [], []
    for _ in range(rounds):  # alternately, so both see the same machine
        a.append(_time(ours, runs))
        if theirs:
            b.append(_time(theirs, runs))
    row["infer_ours"] = statistics.median(a)
    row["infer_onnx2tf"] = statistics.median(b) if b else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--onnx2tf-venv", default=DEFAULT_VENV)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="invokes per timing round")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    tool = ensure_onnx2tf(args.onnx2tf_venv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-tflite-")
    os.makedirs(workdir, exist_ok=True)
    version = subprocess.run([os.path.join(args.onnx2tf_venv, "bin", "pip"), "show",
                              "onnx2tf"], capture_output=True, text=True).stdout
    version = next((line.split()[1] for line in version.splitlines()
                    if line.startswith("Version")), "?")
    print(f"onnx2tf {version} ({tool}); workdir {workdir}", flush=True)
    rows = [bench_model(name, tool, workdir, args.rounds, args.runs)
            for name in args.models.split(",")]
    print()
    print("| model | conversion: ours / onnx2tf | LiteRT inference: ours / onnx2tf | "
          "Transpose ops: ours / onnx2tf | max abs error: ours / onnx2tf | "
          "input .onnx unchanged: ours / onnx2tf |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r["infer_onnx2tf"] is None:
            infer = f"{r['infer_ours'] * 1e3:.1f} ms / does not run ({r['onnx2tf_failure']})"
            error = f"{r['error_ours']:.2g} / -"
        else:
            infer = (f"{r['infer_ours'] * 1e3:.1f} ms / {r['infer_onnx2tf'] * 1e3:.1f} ms = "
                     f"**{r['infer_ours'] / r['infer_onnx2tf']:.2f}**")
            error = f"{r['error_ours']:.2g} / {r['error_onnx2tf']:.2g}"
        print(f"| {r['model']} | {r['convert_ours']:.2f} s / {r['convert_onnx2tf']:.2f} s = "
              f"**{r['convert_ours'] / r['convert_onnx2tf']:.2f}** | {infer} | "
              f"{r['transposes_ours']} / {r['transposes_onnx2tf']} | {error} | "
              f"{'yes' if r['ours_input_unchanged'] else 'NO'} / "
              f"{'yes' if r['onnx2tf_input_unchanged'] else 'NO'} |")
    total_ours = sum(r["convert_ours"] for r in rows)
    total_theirs = sum(r["convert_onnx2tf"] for r in rows)
    print(f"\nconversion, all models: {total_ours:.1f} s / {total_theirs:.1f} s = "
          f"{total_ours / total_theirs:.2f}")
    with open(os.path.join(workdir, "bench_tflite.json"), "w") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
