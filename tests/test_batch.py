"""`migrate batch` on an archive of several hundred real Torch7 files with 10% broken
ones: killed with SIGKILL midway and rerun, then the same archive through Dask."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from fixtures_t7 import (
    PROJECT_FIXTURES,
    REAL_DIR,
    ROOT,
    T7_DIR,
    read_raw,
    spynet_expected,
    spynet_input,
)

from migrate.runtimes.caffe2.side import Caffe2Job, run_caffe2_jobs

GOOD_CASES = [  # shape-agnostic networks, so the stored Torch7 input fits the export
    "a_lenet_float", "d_spynet_level_float", "layer_SpatialConvolution_s2p1_float",
    "layer_SpatialConvolution_nobias_float", "layer_SpatialDilatedConvolution_float",
    "layer_SpatialBatchNormalization_float", "layer_SpatialConvolutionMM_float",
    "layer_SpatialBatchNormalization_noaffine_float", "f_nngraph_residual_float",
]
N_GOOD = 306


def _renamed(data: bytes, old: bytes, new: bytes) -> bytes:
    pack = struct.Struct("<i").pack
    return data.replace(pack(len(old)) + old, pack(len(new)) + new)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, shared_dir):
    """~340 files in nested folders: copies of real models under other names (some
    with other extensions or none, found by content) and 10% broken ones."""
    root = tmp_path_factory.mktemp("archive")
    bases = [(c, os.path.join(T7_DIR, f"{c}.t7")) for c in GOOD_CASES]
    bases += [(os.path.basename(p)[:-3], p)
              for p in sorted(glob.glob(os.path.join(REAL_DIR, "spynet", "*.t7")))]
    good: dict[str, str] = {}  # relative path -> case name (for the expected outputs)
    for i in range(N_GOOD):
        case, path = bases[i % len(bases)]
        folder = root / f"project{i % 7}" / f"v{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"model_{i:03d}" + (".net" if i % 10 == 3 else "" if i % 13 == 5 else ".t7")
        (folder / name).write_bytes(open(path, "rb").read())
        good[os.path.relpath(folder / name, root)] = case
    bad: dict[str, str] = {}  # relative path -> kind
    lenet = open(os.path.join(PROJECT_FIXTURES, "torch7", "a_lenet_float.t7"), "rb").read()
    residual = open(os.path.join(T7_DIR, "c_residual_float.t7"), "rb").read()
    lrn = open(os.path.join(T7_DIR, "layer_SpatialCrossMapLRN_float.t7"), "rb").read()
    rng = np.random.default_rng(5)
    broken = root / "broken"
    broken.mkdir()
    for i in range(34):
        kind = ["truncated", "random", "empty", "unsupported", "unsupported2"][i % 5]
        if kind == "truncated":
            data = lenet[: int(rng.integers(100, len(lenet) - 100))]
        elif kind == "random":
            data = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
        elif kind == "empty":
            data = b""
        elif kind == "unsupported":
            data = _renamed(_renamed(residual, b"nn.MulConstant", b"dpnn.Constant"),
                            b"nn.JoinTable", b"fbnn.FancyJoin")
        else:
            data = _renamed(lrn, b"nn.SpatialCrossMapLRN", b"inn.SpatialCrossResponseNormalization")
        (broken / f"bad_{i:02d}.t7").write_bytes(data)
        bad[f"broken/bad_{i:02d}.t7"] = kind
    (root / "README.txt").write_text("not a model\n")
    return root, good, bad


def _batch(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "migrate.cli", "batch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def _rows(out) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(os.path.join(out, "migrate-state.sqlite"))
    db.row_factory = sqlite3.Row
    try:
        return {r["path"]: r for r in db.execute("SELECT * FROM models")}
    finally:
        db.close()


def _finished_count(out) -> int:
    try:
        return sum(r["conversions"] > 0 for r in _rows(out).values())
    except sqlite3.Error:
        return 0


def _check_results(out, good, bad, caffe2_python):
    rows = _rows(out)
    assert set(rows) == set(good) | set(bad)
    for path in good:
        row = rows[path]
        assert row["status"] == "verified", (path, row["status"], row["error"], row["verify_note"])
        assert row["conversions"] == 1, (path, "converted more than once")
    for path, kind in bad.items():
        row = rows[path]
        assert row["status"] == "failed" and row["conversions"] == 0
        assert path.split("/")[-1] in row["error"], row["error"]
        if kind.startswith("unsupported"):
            assert row["error_kind"] == "unsupported"
    # every converted file reproduces real Torch7's stored output, in real Caffe2
    jobs = []
    for path, case in good.items():
        outputs = json.loads(rows[path]["outputs"])
        inputs = read_raw(f"{case}_input") or [spynet_input()]
        expected = read_raw(f"{case}_output") or [spynet_expected(case)]
        # the batch converted each model for a guessed input of one sample (nn.View
        # makes a Torch7 net's shapes depend on the batch size): feed the first sample
        inputs, expected = [inputs[0][:1]], [expected[0][:1]]
        jobs.append((path, expected, Caffe2Job(outputs["init_net"], outputs["predict_net"],
                                               inputs)))
    run_caffe2_jobs(caffe2_python, [j for _, _, j in jobs])
    for path, expected, job in jobs:
        assert job.error is None, (path, job.error)
        np.testing.assert_allclose(job.outputs[0].reshape(-1), expected[0].reshape(-1),
                                   atol=1e-4, rtol=1e-4, err_msg=path)
    report = json.load(open(os.path.join(out, "report.json")))
    assert report["totals"]["models"] == len(good) + len(bad)
    assert report["totals"]["failed"] == len(bad)
    ranking = {e["class"]: e["models_blocked"] for e in report["unsupported_classes"]}
    n_each = sum(k == "unsupported" for k in bad.values())
    assert ranking == {"dpnn.Constant": n_each, "fbnn.FancyJoin": n_each,
                       "inn.SpatialCrossResponseNormalization":
                           sum(k == "unsupported2" for k in bad.values())}
    md = open(os.path.join(out, "report.md")).read()
    assert "| `dpnn.Constant` |" in md and "broken/bad_00.t7" in md
    leftovers = [p for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)
                 if os.path.basename(p).startswith((".partial-", ".migrate-"))]
    assert not leftovers
    return rows


def test_killed_batch_resumes_without_losing_or_redoing_work(archive, tmp_path,
                                                             caffe2_python):
    root, good, bad = archive
    out = tmp_path / "migrated"
    proc = _batch(str(root), "-o", str(out), "--jobs", "2", "--caffe2-python", caffe2_python)
    deadline = time.monotonic() + 300
    while _finished_count(out) < 80 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the batch ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = _finished_count(out)
    assert 80 <= finished_before < len(good)

    rerun = _batch(str(root), "-o", str(out), "--jobs", "2", "--caffe2-python", caffe2_python)
    stdout, stderr = rerun.communicate(timeout=900)
    assert rerun.returncode == 1, stderr  # some models failed
    assert f"{finished_before} model(s) already converted" in stdout + stderr
    assert f"{len(bad)} failed" in stdout
    assert "FAILED broken/bad_" in stderr
    _check_results(out, good, bad, caffe2_python)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
             "--nthreads", "1", "--no-dashboard", "--memory-limit", "4GB"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(f"tcp://127.0.0.1:{port}", timeout=5) as client:
                if len(client.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the local Dask cluster did not start")
        time.sleep(0.5)
    yield f"dask://127.0.0.1:{port}"
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def test_dask_executor_gives_the_same_results(archive, tmp_path, dask_cluster, caffe2_python):
    root, good, bad = archive
    out = tmp_path / "migrated-dask"
    proc = _batch(str(root), "-o", str(out), "--executor", dask_cluster,
                  "--caffe2-python", caffe2_python)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 1, stderr
    rows = _check_results(out, good, bad, caffe2_python)
    assert all(r["attempts"] == 1 for r in rows.values())


def test_crashing_and_memory_hungry_models_do_not_stop_the_batch(tmp_path, shared_dir):
    root = tmp_path / "archive"
    root.mkdir()
    lrn = open(os.path.join(T7_DIR, "layer_SpatialCrossMapLRN_float.t7"), "rb").read()
    (root / "crash.t7").write_bytes(_renamed(lrn, b"nn.SpatialCrossMapLRN", b"test.Crash"))
    (root / "hungry.t7").write_bytes(_renamed(lrn, b"nn.SpatialCrossMapLRN", b"test.Hungry"))
    for i in range(4):
        (root / f"good{i}.t7").write_bytes(
            open(os.path.join(T7_DIR, "layer_SpatialConvolution_s2p1_float.t7"), "rb").read())
    plugin = tmp_path / "nasty_layers.py"
    plugin.write_text(
        "import os\n"
        "import numpy as np\n"
        "from migrate.plugins import torch7_converter\n\n"
        "@torch7_converter('test.Crash')\n"
        "def crash(ctx, module, x):\n"
        "    os._exit(3)  # the worker process dies\n\n"
        "@torch7_converter('test.Hungry')\n"
        "def hungry(ctx, module, x):\n"
        "    return np.ones(1 << 40, dtype=np.uint8)  # 1 TB\n")
    out = tmp_path / "out"
    proc = _batch(str(root), "-o", str(out), "--jobs", "2", "--plugin", str(plugin),
                  "--worker-memory", "3G", "--no-verify", "--input-shape", "1x4x9x11")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr
    rows = _rows(out)
    assert rows["crash.t7"]["status"] == "failed"
    assert "worker process crashed" in rows["crash.t7"]["error"]
    assert rows["hungry.t7"]["status"] == "failed"
    assert rows["hungry.t7"]["error_kind"] == "out-of-memory"
    assert all(rows[f"good{i}.t7"]["status"] == "converted" for i in range(4))
    assert "4 converted, 2 failed" in stdout


def test_usage_errors_exit_2(tmp_path):
    proc = _batch(str(tmp_path / "missing"), "-o", str(tmp_path / "out"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "not a folder" in stderr


def test_progress_counts_match_the_bar(tmp_path):
    """After each model the bar's count and ok/failed/left agree (they were one apart)."""
    import io
    import re

    from migrate.batch.runner import _Item, _Progress

    stream = io.StringIO()
    progress = _Progress(3, True, print, stream=stream)
    for k, status in enumerate(["converted", "failed", "converted"]):
        item = _Item(f"m{k}.t7", [f"m{k}.t7"], 1000, 0.0, "x", {})
        progress.done(item, {"status": status, "error": "boom"})
        last = re.split(r"[\r\n]", stream.getvalue().strip())[-1]
        done = int(re.search(r"(\d+)/3", last).group(1))
        ok, failed, left = map(int, re.search(r"ok=(\d+) failed=(\d+) left=(\d+)",
                                              last).groups())
        assert done == k + 1 == ok + failed and left == 3 - done, last
    progress.close()
