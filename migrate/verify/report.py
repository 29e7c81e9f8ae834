"""Self-contained HTML (and JSON) report of one conversion and its verification."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field

import onnx_ir as ir

from migrate.core.graph import SOURCE_PATH
from migrate.core.outputs import write_atomically
from migrate.verify.layerwise import LayerwiseResult


@dataclass
class ReportData:
    source: str
    target: str
    files: dict[str, str]
    input_description: str
    atol: float
    rtol: float
    parameters: int
    fixups: list[str]  # changes made to the model (folds, op rewrites)
    layerwise: LayerwiseResult
    edges: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # plain observations

    @property
    def verdict(self) -> str:
        lw = self.layerwise
        if not lw.executed:
            return "NOT RUN"
        return "PASS" if lw.outputs and lw.outputs.passed and not lw.first_divergence else "FAIL"

    def to_json(self) -> dict:
        return {
            "source": self.source, "target": self.target, "files": self.files,
            "input": self.input_description, "atol": self.atol, "rtol": self.rtol,
            "parameters": self.parameters, "verdict": self.verdict, "fixups": self.fixups,
            "notes": self.notes + self.layerwise.notes,
            "layerwise": self.layerwise.to_dict(),
            "output_difference_histogram": histogram(self.layerwise.output_differences),
            "edges": self.edges,
        }


def module_edges(model: ir.Model) -> list[tuple[str, str]]:
    """Data flow between source modules (producer path -> consumer path)."""
    edges: list[tuple[str, str]] = []
    for node in model.graph:
        target = node.metadata_props.get(SOURCE_PATH)
        for value in node.inputs:
            producer = value.producer() if value is not None else None
            source = producer.metadata_props.get(SOURCE_PATH) if producer else None
            if target and source and source != target and (source, target) not in edges:
                edges.append((source, target))
    return edges


def histogram(differences: list[float]) -> dict:
    """Counts of |difference| per decade, 1e-10 .. 1e+1, plus exact zeros."""
    edges = list(range(-10, 2))
    counts = {"0": 0, **{f"1e{e}": 0 for e in edges}}
    for d in differences:
        if d == 0.0:
            counts["0"] += 1
        elif math.isfinite(d):
            decade = min(max(math.floor(math.log10(d)), edges[0]), edges[-1])
            counts[f"1e{decade}"] += 1
    return counts


def _graph_svg(data: ReportData) -> str:
    rows = data.layerwise.layers
    index = {r.path: i for i, r in enumerate(rows)}
    row_h, box_w, left = 34, 520, 20
    height = max(len(rows), 1) * row_h + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{box_w + 220}" height="{height}" '
             'role="img" aria-label="module graph">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="3" '
             'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#555"/></marker></defs>']
    for k, (a, b) in enumerate(data.edges):
        if a not in index or b not in index:
            continue
        ya, yb = 10 + index[a] * row_h + 24, 10 + index[b] * row_h + 2
        if index[b] == index[a] + 1:
            x = left + box_w // 2
            parts.append(f'<line x1="{x}" y1="{ya}" x2="{x}" y2="{yb}" stroke="#555" '
                         'marker-end="url(#arrow)"/>')
        else:  # skip connections arc on the right
            x = left + box_w
            bend = x + 30 + 12 * (k % 8)
            parts.append(f'<path d="M{x},{ya - 12} C{bend},{ya - 12} {bend},{yb + 12} '
                         f'{x},{yb + 12}" fill="none" stroke="#888" marker-end="url(#arrow)"/>')
    for i, r in enumerate(rows):
        color = "#e0e0e0" if r.passed is None else ("#c8f0c8" if r.passed else "#f6b8b8")
        if data.layerwise.first_divergence is r:
            color = "#ff7b7b"
        y = 10 + i * row_h
        label = f"{r.converted or '-'}  ·  {r.cls}  ·  {'x'.join(map(str, r.shape))}"
        parts.append(f'<rect x="{left}" y="{y}" width="{box_w}" height="24" rx="6" '
                     f'fill="{color}" stroke="#666"><title>{html.escape(r.label)}</title></rect>')
        parts.append(f'<text x="{left + 10}" y="{y + 16}" font-size="12" '
                     f'font-family="monospace">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram_svg(counts: dict) -> str:
    width, height, bar = 560, 180, 40
    peak = max(counts.values()) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
             'role="img" aria-label="histogram of output differences">']
    for i, (label, n) in enumerate(counts.items()):
        h = 0 if n == 0 else max(2, int(height * math.log1p(n) / math.log1p(peak)))
        x = 10 + i * (bar + 6)
        parts.append(f'<rect x="{x}" y="{height - h}" width="{bar}" height="{h}" '
                     f'fill="#4a7bd0"><title>{label}: {n}</title></rect>')
        parts.append(f'<text x="{x + bar / 2}" y="{height + 14}" font-size="10" '
                     f'text-anchor="middle">{label}</text>')
        parts.append(f'<text x="{x + bar / 2}" y="{height + 28}" font-size="9" '
                     f'text-anchor="middle" fill="#555">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def render_html(data: ReportData) -> str:
    lw = data.layerwise
    esc = html.escape
    verdict_color = {"PASS": "#1b7f2a", "FAIL": "#b00020", "NOT RUN": "#8a6d00"}[data.verdict]
    rows = []
    for r in lw.layers:
        status = "not run" if r.passed is None else ("ok" if r.passed else "exceeds tolerance")
        cls = "fail" if r.passed is False else ("first" if lw.first_divergence is r else "")
        if lw.first_divergence is r:
            cls = "first"
        rows.append(
            f'<tr class="{cls}"><td>{esc(r.path)}</td><td>{esc(r.cls)}</td>'
            f"<td>{esc(r.converted or '-')}</td><td>{'x'.join(map(str, r.shape))}</td>"
            f"<td>{_fmt(r.max_abs)}</td><td>{_fmt(r.max_rel)}</td>"
            f"<td>{'-' if r.cosine is None else f'{r.cosine:.6f}'}</td>"
            f"<td>{esc(status + (' ' + r.note if r.note else ''))}</td></tr>")
    first = (f"<p class='first'>First divergence: <b>{esc(lw.first_divergence.label)}</b> "
             f"(blob {esc(lw.first_divergence.converted or '-')}, max abs "
             f"{_fmt(lw.first_divergence.max_abs)})</p>") if lw.first_divergence else ""
    skipped = f"<p class='warn'>{esc(lw.skipped)}</p>" if lw.skipped else ""
    outputs = lw.outputs.describe() if lw.outputs else "-"
    fixups = "".join(f"<li>{esc(f)}</li>" for f in data.fixups) or "<li>none</li>"
    notes = "".join(f"<li>{esc(n)}</li>" for n in data.notes + lw.notes) or "<li>none</li>"
    files = "".join(f"<li>{esc(p)}</li>" for p in data.files.values()) or (
        "<li>none: verification failed, so the converted files were not kept</li>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>torch7-migrate report: {esc(data.source)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
.verdict {{ display: inline-block; padding: 4px 12px; color: white; border-radius: 4px;
  background: {verdict_color}; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
th {{ background: #f0f0f0; }} tr.fail td {{ background: #fde4e4; }}
tr.first td {{ background: #ff9b9b; font-weight: bold; }}
p.first {{ color: #b00020; }} p.warn {{ color: #8a6d00; font-weight: bold; }}
</style></head><body>
<h1>{esc(data.source)} &rarr; {esc(data.target)} <span class="verdict">{data.verdict}</span></h1>
<p>Checked with {esc(lw.runtime)} against {esc(lw.reference)}, on
{esc(data.input_description)}; tolerance atol={data.atol:g}, rtol={data.rtol:g}.
Final outputs: {esc(outputs)}. Parameters: {data.parameters:,}.</p>
{skipped}{first}
<h2>Files</h2><ul>{files}</ul>
<h2>Fix-ups applied</h2><ul>{fixups}</ul>
<h2>Notes</h2><ul>{notes}</ul>
<h2>Layers</h2>
<table><tr><th>module</th><th>class</th><th>converted blob</th><th>shape</th><th>max abs</th>
<th>max rel</th><th>cosine</th><th>status</th></tr>
{''.join(rows)}</table>
<h2>Graph</h2>{_graph_svg(data)}
<h2>Output differences |converted - reference| (count per decade)</h2>
{_histogram_svg(histogram(lw.output_differences))}
</body></html>
"""


def write_report(data: ReportData, html_path: str, json_path: str) -> None:
    write_atomically({
        html_path: render_html(data).encode(),
        json_path: (json.dumps(data.to_json(), indent=2) + "\n").encode(),
    })
