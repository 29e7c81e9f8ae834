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

from migrate.batch.discover import discover
from migrate.batch.worker import DEFAULT_WORKER_MEMORY, convert_one, init_worker
from migrate.core.errors import UsageError

STATE_FILE = "migrate-state.sqlite"
REFERENCE_DIR = ".migrate-references"
DEFAULT_TIMEOUT_S = 1800
VERIFY_CHUNK = 25


# -- finding models ------------------------------------------------------------------

def output_stem(relative: str) -> str:
    name = os.path.basename(relative)
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in (".t7", ".onnx", ".pb", ".prototxt", ".pbtxt") else \
        name.replace(".", "_")


def sha256_of(paths: list[str]) -> str:
    """One digest of a model's files (in role order)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


# -- state ----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    path TEXT PRIMARY KEY,          -- relative to the archive root (a model's first file)
    files TEXT,                     -- JSON list of all its files (two-file formats)
    format TEXT,                    -- the reader that read it
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
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(models)")}
        for column in ("files", "format"):  # state files of earlier versions
            if column not in columns:
                self.db.execute(f"ALTER TABLE models ADD COLUMN {column} TEXT")
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

    def record(self, path: str, files: list[str], size: int, mtime: float, sha: str,
               result: dict) -> None:
        converted = result["status"] in DONE
        with self.db:
            self.db.execute(
                """INSERT INTO models (path, files, format, size, mtime, sha256, status, error,
                       error_kind, unsupported, layers, params, seconds, verify_error,
                       verify_note, outputs, reference, conversions, attempts, updated)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                   ON CONFLICT(path) DO UPDATE SET
                       files=excluded.files, format=excluded.format,
                       size=excluded.size, mtime=excluded.mtime, sha256=excluded.sha256,
                       status=excluded.status, error=excluded.error,
                       error_kind=excluded.error_kind, unsupported=excluded.unsupported,
                       layers=excluded.layers, params=excluded.params,
                       seconds=excluded.seconds, verify_error=excluded.verify_error,
                       verify_note=excluded.verify_note, outputs=excluded.outputs,
                       reference=excluded.reference,
                       conversions=models.conversions + excluded.conversions,
                       attempts=models.attempts + 1, updated=excluded.updated""",
                (path, json.dumps(files), result.get("format"), size, mtime, sha,
                 result["status"], result.get("error"),
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
    runtime_python: dict[str, str] = field(default_factory=dict)
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
    files: list[str]  # relative paths of all its files
    size: int
    mtime: float
    sha: str
    job: dict[str, Any]
    crashes: int = 0


def run_batch(options: BatchOptions, log: Callable[[str], None] = print) -> BatchSummary:
    from migrate.core.detect import unknown_file_error
    from migrate.core.registry import READERS, RUNTIMES, WRITERS
    from migrate.pipeline import prepare_out_dir

    root = os.path.abspath(options.root)
    if not os.path.isdir(root):
        raise UsageError("not a folder", file=options.root)
    out = os.path.abspath(options.out)
    if out == root:
        raise UsageError("the output folder must differ from the archive folder")
    writer = WRITERS.get(options.target)
    if writer is None:
        raise UsageError(f"unknown target '{options.target}' (choose from "
                         f"{', '.join(WRITERS.names())})")
    found = discover(root, exclude=out)
    if not found:
        formats = ", ".join(f"{s.name} ({', '.join(s.suffixes) or 'by content'})"
                            for s in READERS.all())
        raise UsageError(f"no model files found under it (looked for {formats})",
                         file=options.root)
    prepare_out_dir(out)
    _remove_leftovers(out)
    state = State(os.path.join(out, STATE_FILE))
    summary = BatchSummary()
    side_runtime = RUNTIMES.get(writer.runtime).side

    todo: list[_Item] = []
    for model in found:
        relative = model.key
        sources = [os.path.join(root, p) for p in model.paths]
        stats = [os.stat(p) for p in sources]
        size, mtime = sum(s.st_size for s in stats), max(s.st_mtime for s in stats)
        sha = state.known_hash(relative, size, mtime) or sha256_of(sources)
        summary.total += 1
        row = state.row(relative)
        if row is not None and row["sha256"] == sha and row["status"] in DONE and all(
                os.path.exists(p) for p in json.loads(row["outputs"] or "{}").values()):
            summary.skipped += 1
            continue
        item = _Item(relative, model.paths, size, mtime, sha, {})
        if not model.format:  # named like a model, claimed by no reader
            error = unknown_file_error(sources[0])
            state.record(relative, model.paths, size, mtime, sha, {
                "status": "failed", "error": str(error), "error_kind": "unknown-format"})
            continue
        item.job = {"sources": sources, "target": writer.name, "optimize": options.optimize,
                    "out_dir": os.path.join(out, os.path.dirname(relative)),
                    "stem": output_stem(relative), "seed": int(sha[:8], 16),
                    "input_shapes": options.input_shapes, "verify": options.verify,
                    "runtime_python": options.runtime_python,
                    "reference": os.path.join(out, REFERENCE_DIR, f"{sha}.npz")}
        todo.append(item)
    if summary.skipped:
        log(f"{summary.skipped} model(s) already converted from identical content: skipped")

    def finished(item: _Item, result: dict) -> None:
        if result["status"] == "converted" and not side_runtime:
            if result.get("verified"):
                result["status"] = "verified"
            elif result.get("verify_note") not in (None, "ok") and \
                    not str(result.get("verify_note")).startswith("not verified"):
                result["status"] = "mismatch"
        state.record(item.relative, item.files, item.size, item.mtime, item.sha, result)

    runner = _run_dask if options.executor.startswith("dask://") else _run_local
    runner(todo, options, finished, log)
    if options.verify and side_runtime:
        _verify_side(writer.runtime, state, options, log)

    from migrate.batch.report import write_batch_report

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
    def __init__(self, total: int, enabled: bool, log: Callable[[str], None],
                 stream=None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="model", disable=not enabled or total == 0,
                        dynamic_ncols=True, file=stream or sys.stderr)
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
        # count first, then the postfix with a redraw: every line drawn shows the bar's
        # count and ok/failed/left of the same moment (the other order drew them one apart)
        self.bar.update(1)
        self.bar.set_postfix_str(f"ok={self.ok} failed={self.failed} "
                                 f"left={self.bar.total - self.ok - self.failed} {rate:.1f} MB/s")

    def close(self) -> None:
        self.bar.close()


def _crash_result(item: _Item, why: str) -> dict:
    source = item.job["sources"][0]
    return {"source": source, "status": "failed", "error": f"{source}: {why}",
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


# -- verification in side runtimes, many models per process -----------------------------

def _verify_side(runtime: str, state: State, options: BatchOptions,
                 log: Callable[[str], None]) -> None:
    from migrate.core.registry import RUNTIMES
    from migrate.verify.compare import compare
    from migrate.verify.layerwise import runtime_missing

    pending = [r for r in state.rows() if r["status"] == "converted" and r["reference"]
               and r["verify_error"] is None and os.path.exists(r["reference"])]
    if not pending:
        return
    why = runtime_missing(runtime, options.runtime_python)
    if why is not None:
        log(f"converted files were NOT verified: {why}")
        return
    module = RUNTIMES.get(runtime).load()
    for chunk in _chunks(pending, VERIFY_CHUNK):
        jobs, expected = [], []
        for row in chunk:
            with np.load(row["reference"]) as ref:
                inputs = [ref[k] for k in sorted((k for k in ref.files if k.startswith("in")),
                                                 key=lambda k: int(k[2:]))]
                expected.append([ref[k] for k in sorted(
                    (k for k in ref.files if k.startswith("out")), key=lambda k: int(k[3:]))])
            jobs.append((json.loads(row["outputs"]), inputs))
        results = module.run_many(jobs, python=options.runtime_python.get(runtime))
        for row, wanted, got in zip(chunk, expected, results, strict=True):
            if isinstance(got, str):
                state.set_verification(row["path"], "mismatch", None, f"{runtime}: {got}")
                continue
            result = compare(got.outputs, wanted)
            status = "verified" if result.passed else "mismatch"
            state.set_verification(row["path"], status, result.max_abs,
                                   "ok" if result.passed else result.describe())


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
