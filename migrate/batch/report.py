"""report.md and report.json of a batch: every model, what blocks the failures, totals."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter

from migrate.core.outputs import write_atomically

_STATUS_WORD = {"verified": "converted, verified", "converted": "converted (not verified)",
                "mismatch": "MISMATCH", "failed": "FAILED"}


def _entry(row: sqlite3.Row) -> dict:
    return {
        "path": row["path"], "format": row["format"] or "-",
        "files": json.loads(row["files"] or "[]") or [row["path"]],
        "status": row["status"], "error": row["error"],
        "error_kind": row["error_kind"], "layers": row["layers"], "parameters": row["params"],
        "verification_max_abs_error": row["verify_error"], "verification": row["verify_note"],
        "seconds": row["seconds"], "sha256": row["sha256"],
        "outputs": json.loads(row["outputs"] or "{}"),
        "unsupported": json.loads(row["unsupported"] or "[]"),
    }


def blocking_classes(entries: list[dict]) -> list[tuple[str, int]]:
    """Unsupported module classes ranked by how many models each one blocks."""
    counter: Counter[str] = Counter()
    for e in entries:
        counter.update({cls for _, cls in e["unsupported"]})
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def write_batch_report(rows: list[sqlite3.Row], out: str, root: str,
                       target: str) -> tuple[str, str]:
    entries = [_entry(r) for r in rows]
    statuses = Counter(e["status"] for e in entries)
    totals = {
        "models": len(entries),
        "converted": statuses["converted"] + statuses["verified"],
        "verified": statuses["verified"],
        "mismatch": statuses["mismatch"],
        "failed": statuses["failed"],
        "parameters_converted": sum(e["parameters"] or 0 for e in entries
                                    if e["status"] != "failed"),
        "seconds": round(sum(e["seconds"] or 0 for e in entries), 2),
    }
    blockers = blocking_classes(entries)
    per_format: dict[str, Counter[str]] = {}
    for e in entries:
        per_format.setdefault(e["format"], Counter())[e["status"]] += 1
    formats = {fmt: {"models": sum(c.values()), "converted": c["converted"] + c["verified"],
                     "verified": c["verified"], "mismatch": c["mismatch"], "failed": c["failed"]}
               for fmt, c in sorted(per_format.items())}
    data = {"archive": root, "target": target, "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "totals": totals, "formats": formats,
            "unsupported_classes": [{"class": c, "models_blocked": n} for c, n in blockers],
            "models": entries}

    lines = [f"# Migration report: {root} -> {target}", "",
             f"{totals['models']} models: {totals['converted']} converted "
             f"({totals['verified']} verified in the target runtime), {totals['mismatch']} "
             f"converted but not matching, {totals['failed']} failed. "
             f"{totals['parameters_converted']:,} parameters converted in "
             f"{totals['seconds']} s of conversion time.", ""]
    lines += ["## By source format", "", "| format | models | converted | verified | "
              "mismatch | failed |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {fmt} | {c['models']} | {c['converted']} | {c['verified']} | {c['mismatch']} "
              f"| {c['failed']} |" for fmt, c in formats.items()]
    lines.append("")
    if blockers:
        lines += ["## Unsupported classes, by models blocked", "",
                  "| class | models blocked |", "| --- | --- |"]
        lines += [f"| `{c}` | {n} |" for c, n in blockers]
        lines.append("")
    lines += ["## Models", "",
              "| model | status | layers | parameters | verification max abs error | "
              "time (s) | error |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        err = (e["error"] or (e["verification"] if e["status"] == "mismatch" else "") or "")
        err = err.replace("|", "\\|").replace("\n", " ")
        verify = "-" if e["verification_max_abs_error"] is None else \
            f"{e['verification_max_abs_error']:.2g}"
        lines.append(f"| {e['path']} | {_STATUS_WORD.get(e['status'], e['status'])} | "
                     f"{e['layers'] or '-'} | {e['parameters'] or '-'} | {verify} | "
                     f"{e['seconds'] or 0:.2f} | {err} |")
    md_path, json_path = os.path.join(out, "report.md"), os.path.join(out, "report.json")
    write_atomically({md_path: ("\n".join(lines) + "\n").encode(),
                      json_path: (json.dumps(data, indent=2) + "\n").encode()})
    return md_path, json_path
