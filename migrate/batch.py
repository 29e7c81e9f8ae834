"""`migrate batch`: migrate a whole archive of model files, in parallel, resumably.

Progress lives in a SQLite database in the output folder (one row per model, one
transaction per finished model), so a batch killed at any moment loses nothing it
finished; rerunning it skips models already converted from identical content and
retries the ones that failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np

from migrate.batch_worker import DEFAULT_WORKER_MEMORY, convert_one, init_worker
from migrate.errors import UsageError

STATE_FILE = "migrate-state.sqlite"
REFERENCE_DIR = ".migrate-references"
MODEL_SUFFIXES = (".t7", ".th", ".net", ".t7model", ".torch")
DEFAULT_TIMEOUT_S = 1800
VERIFY_CHUNK = 25


# -- finding models ------------------------------------------------------------------

def looks_like_torch7(path: str) -> bool:
    """Torch7's binary format starts with a type tag (table 3 or object 4) and object
    index 1; the ascii format with the same as decimal lines."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return False
    if len(head) >= 12 and head[4:8] == b"\x01\x00\x00\x00" and head[0:4] in (
            b"\x03\x00\x00\x00", b"\x04\x00\x00\x00"):
        return True
    return head.startswith((b"4\n1\n", b"3\n1\n"))


def discover(root: str, exclude: str | None = None) -> list[str]:
    """Model files under root (relative paths, sorted): by name or by content."""
    found = []
    exclude = os.path.abspath(exclude) if exclude else None
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(folder, d)) != exclude)
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.lower().endswith(MODEL_SUFFIXES) or looks_like_torch7(path):
                found.append(os.path.relpath(path, root))
    return found


def output_stem(relative: str) -> str:
    name = os.path.basename(relative)
    if name.lower().endswith(".t7"):
        return name[:-3]
    return name.replace(".", "_")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- state ----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    path TEXT PRIMARY KEY,          -- relative to the archive root
    size INTEGER, mtime REAL, sha256 TEXT,
    status TEXT,                    -- converted | verified | mismatch | failed
    error TEXT, error_kind TEXT,
    unsupported TEXT,               -- JSON list of [module path, class]
    layers INTEGER, params INTEGER, seconds REAL,
    verify_error REAL, verify_note TEXT,
    outputs TEXT,                   -- JSON {kind: path}
    reference TEXT,                 -- npz with the source's outputs on a fixed input
    conversions INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
DONE = ("converted", "verified", "mismatch")


class State:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=60)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed model survives kill -9
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def row(self, path: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM models WHERE path = ?", (path,)).fetchone()

    def rows(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM models ORDER BY path").fetchall()

    def known_hash(self, path: str, size: int, mtime: float) -> str | None:
        row = self.row(path)
        if row is not None and row["size"] == size and row["mtime"] == mtime:
            return row["sha256"]
        return None

    def record(self, path: str, size: int, mtime: float, sha: str, result: dict) -> None:
        converted = result["status"] in DONE
        with self.db:
            self.db.execute(
                """INSERT INTO models (path, size, mtime, sha256, status, error, error_kind,
                       unsupported, layers, params, seconds, verify_error, verify_note,
                       outputs, reference, conversions, attempts, updated)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                   ON CONFLICT(path) DO UPDATE SET
                       size=excluded.size, mtime=excluded.mtime, sha256=excluded.sha256,
                       status=excluded.status, error=excluded.error,
                       error_kind=excluded.error_kind, unsupported=excluded.unsupported,
                       layers=excluded.layers, params=excluded.params,
                       seconds=excluded.seconds, verify_error=excluded.verify_error,
                       verify_note=excluded.verify_note, outputs=excluded.outputs,
                       reference=excluded.reference,
                       conversions=models.conversions + excluded.conversions,
                       attempts=models.attempts + 1, updated=excluded.updated""",
                (path, size, mtime, sha, result["status"], result.get("error"),
                 result.get("error_kind"), json.dumps(result.get("unsupported") or []),
                 result.get("layers"), result.get("params"), result.get("seconds"),
                 result.get("verify_error"), result.get("verify_note"),
                 json.dumps(result.get("outputs") or {}), result.get("reference"),
                 int(converted), time.time()))

    def set_verification(self, path: str, status: str, error: float | None, note: str) -> None:
        with self.db:
            self.db.execute("UPDATE models SET status=?, verify_error=?, verify_note=?, "
                            "updated=? WHERE path=?", (status, error, note, time.time(), path))


# -- running --------------------------------------------------------------------------

@dataclass
class BatchOptions:
    root: str
    out: str
    target: str = "caffe2"
    jobs: int = os.cpu_count() or 1
    executor: str = "local"  # or dask://host:port
    optimize: bool = True
    verify: bool = True
    caffe2_python: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    worker_memory: int = DEFAULT_WORKER_MEMORY
    progress: bool = True
    input_shapes: list[list[int]] | None = None


@dataclass
class BatchSummary:
    total: int = 0
    skipped: int = 0
    converted: int = 0
    failed: int = 0
    mismatched: int = 0
    report_md: str = ""
    report_json: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.mismatched else 0


@dataclass
class _Item:
    relative: str
    source: str
    size: int
    mtime: float
    sha: str
    job: dict[str, Any]
    crashes: int = 0


def run_batch(options: BatchOptions, log: Callable[[str], None] = print) -> BatchSummary:
    root = os.path.abspath(options.root)
    if not os.path.isdir(root):
        raise UsageError("not a folder", file=options.root)
    out = os.path.abspath(options.out)
    if out == root:
        raise UsageError("the output folder must differ from the archive folder")
    if options.target not in ("caffe2", "onnx"):
        raise UsageError(f"unknown target '{options.target}'")
    os.makedirs(out, exist_ok=True)
    _remove_leftovers(out)
    state = State(os.path.join(out, STATE_FILE))
    summary = BatchSummary()

    todo: list[_Item] = []
    for relative in discover(root, exclude=out):
        source = os.path.join(root, relative)
        stat = os.stat(source)
        sha = state.known_hash(relative, stat.st_size, stat.st_mtime) or sha256_of(source)
        summary.total += 1
        row = state.row(relative)
        if row is not None and row["sha256"] == sha and row["status"] in DONE and all(
                os.path.exists(p) for p in json.loads(row["outputs"] or "{}").values()):
            summary.skipped += 1
            continue
        job = {"source": source, "target": options.target, "optimize": options.optimize,
               "out_dir": os.path.join(out, os.path.dirname(relative)),
               "stem": output_stem(relative), "seed": int(sha[:8], 16),
               "input_shapes": options.input_shapes,
               "reference": os.path.join(out, REFERENCE_DIR, f"{sha}.npz")}
        todo.append(_Item(relative, source, stat.st_size, stat.st_mtime, sha, job))
    if summary.skipped:
        log(f"{summary.skipped} model(s) already converted from identical content: skipped")

    def finished(item: _Item, result: dict) -> None:
        if result["status"] == "converted" and options.target == "caffe2":
            result["reference"] = item.job["reference"]
        if result["status"] == "converted" and options.target == "onnx" \
                and result.get("verify_note") not in (None, "ok"):
            result["status"] = "mismatch"
        state.record(item.relative, item.size, item.mtime, item.sha, result)

    runner = _run_dask if options.executor.startswith("dask://") else _run_local
    runner(todo, options, finished, log)
    if options.verify and options.target == "caffe2":
        _verify_caffe2(state, out, options, log)

    from migrate.batch_report import write_batch_report

    rows = [r for r in state.rows() if os.path.exists(os.path.join(root, r["path"]))]
    summary.report_md, summary.report_json = write_batch_report(rows, out, root, options.target)
    summary.converted = sum(r["status"] in ("converted", "verified") for r in rows)
    summary.failed = sum(r["status"] == "failed" for r in rows)
    summary.mismatched = sum(r["status"] == "mismatch" for r in rows)
    return summary


def _remove_leftovers(out: str) -> None:
    """Staging folders and partial files of a batch that was killed."""
    for folder, dirs, files in os.walk(out):
        for d in list(dirs):
            if d.startswith(".migrate-") and d != REFERENCE_DIR:
                shutil.rmtree(os.path.join(folder, d), ignore_errors=True)
                dirs.remove(d)
        for name in files:
            if name.startswith(".partial-") or name.endswith(".partial.npz"):
                os.unlink(os.path.join(folder, name))


class _Progress:
    def __init__(self, total: int, enabled: bool, log: Callable[[str], None]) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="model", disable=not enabled or total == 0,
                        dynamic_ncols=True, file=sys.stderr)
        # one line per failure, on stderr, above the bar when there is one
        self.log = self.bar.write if enabled else (lambda m: print(m, file=sys.stderr))
        self.ok = self.failed = 0
        self.bytes = 0
        self.start = time.monotonic()

    def done(self, item: _Item, result: dict) -> None:
        self.bytes += item.size
        if result["status"] == "failed":
            self.failed += 1
            self.log(f"FAILED {item.relative}: {result['error']}")
        else:
            self.ok += 1
        rate = self.bytes / max(time.monotonic() - self.start, 1e-6) / 1e6
        self.bar.set_postfix_str(f"ok={self.ok} failed={self.failed} "
                                 f"left={self.bar.total - self.ok - self.failed} {rate:.1f} MB/s")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _crash_result(item: _Item, why: str) -> dict:
    return {"source": item.source, "status": "failed", "error": f"{item.source}: {why}",
            "error_kind": "worker-crash", "seconds": None}


def _run_local(todo: list[_Item], options: BatchOptions,
               finished: Callable[[_Item, dict], None], log: Callable[[str], None]) -> None:
    """A process pool; a crashed or hung worker costs only the models it was running:
    the pool is rebuilt, and models that were in flight with a crash are rerun one at
    a time to find the one that crashes."""
    progress = _Progress(len(todo), options.progress, log)
    queue: deque[_Item] = deque(todo)
    suspects: deque[_Item] = deque()
    context = get_context("forkserver")

    def new_pool(workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                   initializer=init_worker,
                                   initargs=(options.worker_memory,))

    def drain(source: deque[_Item], workers: int, solo: bool) -> None:
        pool = new_pool(workers)
        running: dict[Future, tuple[_Item, float]] = {}
        # in solo mode one model at a time, so a crash is that model's
        in_flight = 1 if solo else workers * 2
        try:
            while source or running:
                while source and len(running) < in_flight:
                    item = source.popleft()
                    running[pool.submit(convert_one, {**item.job})] = (item, time.monotonic())
                done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    item, _ = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if solo:
                            result = _crash_result(item, "the worker process crashed "
                                                   "(killed, out of memory or a fault)")
                        else:
                            suspects.append(item)
                            continue
                    finished(item, result)
                    progress.done(item, result)
                now = time.monotonic()
                late = [f for f, (_, t0) in running.items() if now - t0 > options.timeout]
                if late or broken:
                    for future in late:
                        item, _ = running.pop(future)
                        result = _crash_result(item, f"no result in {options.timeout:.0f} s")
                        finished(item, result)
                        progress.done(item, result)
                    # everything else in flight goes back to the queue
                    for item, _ in running.values():
                        (suspects if broken and not solo else source).appendleft(item)
                    running.clear()
                    _kill(pool)
                    pool = new_pool(workers)
        finally:
            _kill(pool)

    try:
        drain(queue, max(1, options.jobs), solo=False)
        if suspects:
            log(f"rerunning {len(suspects)} model(s) one at a time after a worker crash")
            drain(suspects, 1, solo=True)
    finally:
        progress.close()


def _kill(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor cannot stop a running task; its processes can be killed.
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(todo: list[_Item], options: BatchOptions,
              finished: Callable[[_Item, dict], None], log: Callable[[str], None]) -> None:
    """Submit the per-model work to an existing Dask cluster; state stays here."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--executor dask://... needs Dask: pip install "
                         "'torch7-migrate[dask]'") from None
    address = "tcp://" + options.executor[len("dask://"):]
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    progress = _Progress(len(todo), options.progress, log)
    try:
        futures = {client.submit(convert_one, {**item.job}, pure=False,
                                 key=f"migrate-{item.sha[:16]}-{i}"): item
                   for i, item in enumerate(todo)}
        for future in as_completed(futures):
            item = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # e.g. KilledWorker: the worker died on this model
                result = _crash_result(item, f"Dask worker failed: {type(exc).__name__}: "
                                             f"{exc}")
            finished(item, result)
            progress.done(item, result)
    finally:
        progress.close()
        client.close()


# -- verification of Caffe2 outputs, many models per Caffe2 process ------------------

def _verify_caffe2(state: State, out: str, options: BatchOptions,
                   log: Callable[[str], None]) -> None:
    from migrate.caffe2_side import Caffe2Job, find_caffe2_python, run_caffe2_jobs
    from migrate.verify import compare

    pending = [r for r in state.rows() if r["status"] == "converted" and r["reference"]
               and r["verify_error"] is None and os.path.exists(r["reference"])]
    if not pending:
        return
    python = find_caffe2_python(options.caffe2_python)
    if python is None:
        log("Caffe2 side runtime not found: converted Caffe2 files were NOT verified "
            "(tools/provision-caffe2.sh or --caffe2-python)")
        return
    for chunk in _chunks(pending, VERIFY_CHUNK):
        jobs = []
        for row in chunk:
            outputs = json.loads(row["outputs"])
            with np.load(row["reference"]) as ref:
                inputs = [ref[k] for k in sorted((k for k in ref.files if k.startswith("in")),
                                                 key=lambda k: int(k[2:]))]
                expected = [ref[k] for k in sorted((k for k in ref.files if k.startswith("out")),
                                                   key=lambda k: int(k[3:]))]
            jobs.append((row, expected,
                         Caffe2Job(outputs["init_net"], outputs["predict_net"], inputs)))
        run_caffe2_jobs(python, [job for _, _, job in jobs])
        for row, expected, job in jobs:
            if job.error:
                state.set_verification(row["path"], "mismatch", None, f"Caffe2: {job.error}")
                continue
            result = compare(job.outputs, expected)
            status = "verified" if result.passed else "mismatch"
            state.set_verification(row["path"], status, result.max_abs,
                                   "ok" if result.passed else result.describe())


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
